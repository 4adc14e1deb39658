"""The real-world delivery cases of issue 3, one small test each, with exact figures.

Store deliveries go through the real HTTP receiver, a real broker and real Redis
(store_harness.HttpPipeline). The textbook examples of case 11 are canonical events applied
with the worker's EventApplier. All values are made up; no personal data."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
import redis

from connectors.signing import sign
from xsell_stream.events import OfferEvent, OrderState

from .conftest import WOO_SECRET
from .store_harness import HttpPipeline, apply_all, figures, settings_for

SHOPIFY = "issue3-north.myshopify.com"
WOO = "issue3-woo.example"
SHOPIFY_SECRET = "shpss_issue3_test"

UNDEFINED = {"average_order_value": None, "revenue_per_customer": None,
             "repeat_purchase_rate": None, "cross_sell_ratio": None,
             "upsell_conversion_rate": None, "customer_lifetime_value": None}
NOTHING = {"orders": 0, "revenue": Decimal("0.00"), "customers": 0, "repeat_customers": 0,
           "multi_product_customers": 0, "upsell_offered_customers": 0,
           "upsell_accepted_customers": 0, **UNDEFINED}


def one_order(revenue: str, customers: int = 1, products: int = 1,
              lifespan: int = 3) -> dict[str, Any]:
    """The figures of a period holding exactly one counting order."""
    money = Decimal(revenue)
    named = customers == 1
    return {
        "orders": 1, "revenue": money, "customers": customers,
        "average_order_value": money,
        "revenue_per_customer": money if named else None,
        "repeat_customers": 0, "repeat_purchase_rate": 0.0 if named else None,
        "multi_product_customers": int(named and products >= 2),
        "cross_sell_ratio": (1.0 if products >= 2 else 0.0) if named else None,
        "upsell_offered_customers": 0, "upsell_accepted_customers": 0,
        "upsell_conversion_rate": None,
        "customer_lifetime_value": (money * lifespan).quantize(Decimal("0.01"))
        if named else None,
    }


# --- store payloads ---------------------------------------------------------------------

def money_set(shop: str, presentment: str | None = None, shop_currency: str = "GBP",
              presentment_currency: str = "GBP") -> dict[str, Any]:
    return {"shop_money": {"amount": shop, "currency_code": shop_currency},
            "presentment_money": {"amount": presentment or shop,
                                  "currency_code": presentment_currency}}


def shopify_order(order_id: int, total: str, created: str = "2025-01-15T10:00:00+00:00",
                  updated: str | None = None, customer_id: int | None = 501,
                  email: str | None = None, products: tuple[int, ...] = (9001,),
                  refunds: tuple[dict[str, Any], ...] = (), **extra: Any) -> dict[str, Any]:
    return {
        "id": order_id, "created_at": created, "updated_at": updated or created,
        "currency": "GBP", "presentment_currency": "GBP", "test": False,
        "cancelled_at": None, "financial_status": "paid", "email": email,
        "total_price": total, "total_price_set": money_set(total),
        "customer": {"id": customer_id} if customer_id is not None else None,
        "line_items": [{"id": 70000 + i, "product_id": p, "quantity": 1}
                       for i, p in enumerate(products)],
        "refunds": list(refunds), **extra,
    }


def shopify_refund(refund_id: int, order_id: int, amount: str,
                   created: str = "2025-02-20T09:00:00+00:00") -> dict[str, Any]:
    return {"id": refund_id, "order_id": order_id, "created_at": created,
            "refund_line_items": [], "order_adjustments": [],
            "transactions": [{"id": refund_id + 1, "order_id": order_id, "kind": "refund",
                              "status": "success", "amount": amount, "currency": "GBP"}]}


def woo_order(order_id: int, total: str, status: str = "processing",
              created_gmt: str = "2025-03-10T08:00:00", modified_gmt: str | None = None,
              customer_id: int = 77, products: tuple[int, ...] = (31,),
              refunds: tuple[dict[str, Any], ...] = (), **extra: Any) -> dict[str, Any]:
    return {
        "id": order_id, "status": status, "currency": "GBP",
        "date_created": created_gmt, "date_created_gmt": created_gmt,
        "date_modified": modified_gmt or created_gmt,
        "date_modified_gmt": modified_gmt or created_gmt,
        "total": total, "customer_id": customer_id, "billing": {"email": ""},
        "line_items": [{"id": 500 + i, "product_id": p, "quantity": 1}
                       for i, p in enumerate(products)],
        "refunds": list(refunds), **extra,
    }


def raw(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


def shopify(topic: str, body: bytes, delivery: str,
            secret: str = SHOPIFY_SECRET) -> tuple[str, bytes, dict[str, str]]:
    return "/webhooks/shopify", body, {
        "Content-Type": "application/json", "X-Shopify-Topic": topic,
        "X-Shopify-Hmac-Sha256": sign(secret, body), "X-Shopify-Shop-Domain": SHOPIFY,
        "X-Shopify-Webhook-Id": delivery}


def woo(topic: str, body: bytes, delivery: str,
        secret: str = WOO_SECRET) -> tuple[str, bytes, dict[str, str]]:
    return "/webhooks/woocommerce", body, {
        "Content-Type": "application/json", "X-WC-Webhook-Source": f"https://{WOO}/",
        "X-WC-Webhook-Topic": topic, "X-WC-Webhook-Signature": sign(secret, body),
        "X-WC-Webhook-Delivery-ID": delivery}


# --- fixtures ---------------------------------------------------------------------------

@pytest.fixture
def shopify_pipe(redis_client: redis.Redis, redis_url: str, broker) -> Iterator[HttpPipeline]:
    pipe = HttpPipeline(settings_for(SHOPIFY, "shopify", "Europe/London",
                                     secret=SHOPIFY_SECRET), redis_url, broker.bootstrap_servers)
    yield pipe
    pipe.close()


def woo_pipe_for(redis_url: str, broker, timezone: str = "Europe/Berlin") -> HttpPipeline:
    return HttpPipeline(settings_for(WOO, "woocommerce", timezone, secret=WOO_SECRET),
                        redis_url, broker.bootstrap_servers)


@pytest.fixture
def woo_pipe(redis_client: redis.Redis, redis_url: str, broker) -> Iterator[HttpPipeline]:
    pipe = woo_pipe_for(redis_url, broker)
    yield pipe
    pipe.close()


def statuses(answers: list[tuple[int, str]]) -> list[int]:
    return [status for status, _ in answers]


# --- 1-10: real deliveries --------------------------------------------------------------

def test_1_escaped_body_verifies_only_over_the_raw_bytes(shopify_pipe, redis_client):
    body = (b'{"id":4100000000001,"landing_site":"\\/collections\\/mugs?a=1\\u0026b=2",'
            b'"created_at":"2025-01-15T10:00:00+00:00","updated_at":"2025-01-15T10:00:00+00:00",'
            b'"currency":"GBP","total_price":"42.50","test":false,"cancelled_at":null,'
            b'"financial_status":"paid","customer":{"id":501},'
            b'"line_items":[{"id":1,"product_id":9001}],"refunds":[]}')
    reserialised = json.dumps(json.loads(body), separators=(",", ":")).encode()
    assert reserialised != body  # the same JSON, other bytes: `/` and `&` unescaped
    path, _, headers = shopify("orders/create", body, "d-escaped")
    answers = shopify_pipe.post([(path, reserialised, {**headers, "X-Shopify-Webhook-Id": "d2"}),
                                 (path, body, headers)])
    assert statuses(answers) == [401, 200]
    got = figures(redis_client, shopify_pipe.settings, SHOPIFY, "month", "2025-01-15")
    assert got == one_order("42.50")


def test_2_same_delivery_twice_then_a_second_subscription_is_one_order(shopify_pipe,
                                                                        redis_client):
    body = raw(shopify_order(4100000000002, "30.00"))
    answers = shopify_pipe.post([
        shopify("orders/create", body, "sub-a-delivery-1"),
        shopify("orders/create", body, "sub-a-delivery-1"),  # the store's retry
        shopify("orders/create", body, "sub-b-delivery-1"),  # a second subscription
    ])
    assert statuses(answers) == [200, 200, 200]
    assert [json.loads(text)["status"] for _, text in answers] == [
        "accepted", "duplicate", "accepted"]
    got = figures(redis_client, shopify_pipe.settings, SHOPIFY, "month", "2025-01-15")
    assert got == one_order("30.00")
    stats = {k.decode(): int(v) for k, v in
             redis_client.hgetall(f"xs:{{{SHOPIFY}}}:stats").items() if k != b"last_event_unix"}
    assert stats == {"events_applied": 1, "events_unchanged": 1}


def test_3_update_before_create_keeps_the_newest_state(shopify_pipe, redis_client):
    created = shopify_order(4100000000003, "100.00", financial_status="pending")
    paid = shopify_order(4100000000003, "120.00", updated="2025-01-15T11:30:00+00:00",
                         products=(9001, 9002))
    answers = shopify_pipe.post([shopify("orders/updated", raw(paid), "d-upd"),
                                 shopify("orders/create", raw(created), "d-create")])
    assert statuses(answers) == [200, 200]
    got = figures(redis_client, shopify_pipe.settings, SHOPIFY, "month", "2025-01-15")
    assert got == one_order("120.00", products=2)


def test_3b_cancellation_before_create_is_kept(shopify_pipe, redis_client):
    order_id = 4100000000013
    cancelled = shopify_order(order_id, "64.00", updated="2025-01-16T08:00:00+00:00",
                              cancelled_at="2025-01-16T08:00:00+00:00")
    answers = shopify_pipe.post([
        shopify("orders/cancelled", raw(cancelled), "d-cancel"),
        shopify("orders/create", raw(shopify_order(order_id, "64.00")), "d-create"),
        shopify("orders/paid", raw(shopify_order(order_id, "64.00")), "d-paid"),
    ])
    assert statuses(answers) == [200, 200, 200]
    assert figures(redis_client, shopify_pipe.settings, SHOPIFY, "month", "2025-01-15") == \
        NOTHING


@pytest.mark.parametrize("cancel_first", [False, True])
def test_3c_a_cancellation_with_the_same_updated_at_as_the_order_wins(shopify_pipe, redis_client,
                                                                     cancel_first):
    order_id = 4100000000023
    when = "2025-01-15T10:00:00+00:00"
    placed = raw(shopify_order(order_id, "64.00", updated=when))
    cancelled = raw(shopify_order(order_id, "64.00", updated=when, cancelled_at=when))
    states = [shopify("orders/create", placed, "d-3c-create"),
              shopify("orders/cancelled", cancelled, "d-3c-cancel")]
    if cancel_first:
        states.reverse()
    assert statuses(shopify_pipe.post(states)) == [200, 200]
    got = figures(redis_client, shopify_pipe.settings, SHOPIFY, "month", "2025-01-15")
    assert got == NOTHING


def test_4_guest_order_counts_only_in_orders_revenue_and_average(shopify_pipe, redis_client):
    guest = shopify_order(4100000000004, "18.20", customer_id=None, email=None,
                          products=(9001, 9002))
    guest["contact_email"] = "   "
    shopify_pipe.post([shopify("orders/create", raw(guest), "d-guest")])
    got = figures(redis_client, shopify_pipe.settings, SHOPIFY, "month", "2025-01-15")
    assert got == {**NOTHING, "orders": 1, "revenue": Decimal("18.20"),
                   "average_order_value": Decimal("18.20")}


def test_5_presentment_currency_is_never_summed(shopify_pipe, redis_client):
    order = shopify_order(4100000000005, "80.00", presentment_currency="EUR",
                          total_price_set=money_set("80.00", "93.60", "GBP", "EUR"))
    refund = {
        "id": 880001, "order_id": 4100000000005,
        "refund_line_items": [{"id": 1, "quantity": 1, "subtotal_set": money_set(
            "20.00", "23.40", "GBP", "EUR"), "total_tax_set": money_set("0.00", "0.00")}],
        "order_adjustments": [],
        # Shopify creates refund transactions in the presentment currency.
        "transactions": [{"id": 880002, "kind": "refund", "status": "success",
                          "amount": "23.40", "currency": "EUR"}],
    }
    shopify_pipe.post([shopify("orders/create", raw(order), "d-eur"),
                       shopify("refunds/create", raw(refund), "d-eur-refund")])
    got = figures(redis_client, shopify_pipe.settings, SHOPIFY, "month", "2025-01-15")
    assert got == one_order("60.00")  # GBP 80.00 - GBP 20.00


def test_6_woocommerce_secret_with_markup_characters_is_used_literally(woo_pipe, redis_client):
    assert set('&<>"') <= set(WOO_SECRET)
    body = raw(woo_order(61, "25.00"))
    escaped = WOO_SECRET.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    escaped = escaped.replace('"', "&quot;")
    answers = woo_pipe.post([woo("order.created", body, "w-escaped", secret=escaped),
                             woo("order.created", body, "w-literal")])
    assert statuses(answers) == [401, 200]
    got = figures(redis_client, woo_pipe.settings, WOO, "month", "2025-03-10")
    assert got == one_order("25.00")


def test_7_order_updated_fired_three_times_for_one_edit_is_one_order(woo_pipe, redis_client):
    first = woo_order(71, "40.00", status="pending")
    edit = woo_order(71, "44.00", modified_gmt="2025-03-10T09:15:00", products=(31, 32))
    answers = woo_pipe.post([woo("order.created", raw(first), "w-71-c")]
                            + [woo("order.updated", raw(edit), f"w-71-u{i}") for i in range(3)])
    assert statuses(answers) == [200, 200, 200, 200]
    got = figures(redis_client, woo_pipe.settings, WOO, "month", "2025-03-10")
    assert got == one_order("44.00", products=2)


def test_7b_two_orders_one_webhook_sends_in_one_second_share_a_delivery_id(woo_pipe,
                                                                           redis_client):
    # WooCommerce's delivery id is wp_hash(webhook id . current second): a bulk action
    # sends several orders under one id. Each counts; a retry of one (same bytes) does not.
    first = raw(woo_order(72, "30.00", customer_id=78))
    second = raw(woo_order(73, "50.00", customer_id=79))
    answers = woo_pipe.post([woo("order.updated", first, "wc-same-second"),
                             woo("order.updated", second, "wc-same-second"),
                             woo("order.updated", second, "wc-same-second")])
    assert [(status, json.loads(text)["status"]) for status, text in answers] == [
        (200, "accepted"), (200, "accepted"), (200, "duplicate")]
    got = figures(redis_client, woo_pipe.settings, WOO, "month", "2025-03-10")
    assert (got["orders"], got["revenue"], got["customers"]) == (2, Decimal("80.00"), 2)


@pytest.mark.parametrize("paid_first", [False, True])
def test_7c_pending_and_processing_in_the_same_second_end_as_processing(woo_pipe, redis_client,
                                                                        paid_first):
    # A checkout creates the order (pending) and takes the payment (processing) within one
    # second: both states carry the same date_modified_gmt. The later stage wins.
    pending = raw(woo_order(74, "35.00", status="pending"))
    processing = raw(woo_order(74, "35.00", status="processing"))
    states = [("order.created", pending, "wc-74-c"), ("order.updated", processing, "wc-74-u")]
    if paid_first:
        states.reverse()
    answers = woo_pipe.post([woo(topic, body, delivery) for topic, body, delivery in states])
    assert statuses(answers) == [200, 200]
    got = figures(redis_client, woo_pipe.settings, WOO, "month", "2025-03-10")
    assert got == one_order("35.00")


def test_8_deleted_with_only_the_id_then_restored_counts_again(woo_pipe, redis_client):
    order = woo_order(81, "55.00")
    woo_pipe.post([woo("order.created", raw(order), "w-81-c"),
                   woo("order.deleted", raw({"id": 81}), "w-81-del")])
    assert figures(redis_client, woo_pipe.settings, WOO, "month", "2025-03-10") == NOTHING
    # The restored body's date_modified_gmt is older than our receipt of the deletion (the
    # shop clock, or a replay of old deliveries); it still comes back, received later.
    restored = woo_order(81, "55.00", modified_gmt="2025-03-12T10:00:00")
    woo_pipe.post([woo("order.restored", raw(restored), "w-81-res")])
    assert figures(redis_client, woo_pipe.settings, WOO, "month", "2025-03-10") == \
        one_order("55.00")


def test_8b_woocommerce_create_arriving_after_its_deletion_stays_deleted(woo_pipe,
                                                                       redis_client):
    woo_pipe.post([woo("order.deleted", raw({"id": 82}), "w-82-del"),
                   woo("order.created", raw(woo_order(82, "12.00")), "w-82-c")])
    assert figures(redis_client, woo_pipe.settings, WOO, "month", "2025-03-10") == NOTHING


def test_8c_shopify_delete_is_final_even_against_a_newer_state(shopify_pipe, redis_client):
    order_id = 4100000000008
    later = shopify_order(order_id, "70.00", updated="2099-01-01T00:00:00+00:00")
    shopify_pipe.post([shopify("orders/create", raw(shopify_order(order_id, "70.00")), "c"),
                       shopify("orders/delete", raw({"id": order_id}), "del"),
                       shopify("orders/updated", raw(later), "late-update")])
    assert figures(redis_client, shopify_pipe.settings, SHOPIFY, "month", "2025-01-15") == \
        NOTHING


def test_9_far_from_utc_the_order_lands_on_its_local_day(redis_client, redis_url, broker):
    pipe = woo_pipe_for(redis_url, broker, timezone="Australia/Melbourne")
    try:
        # 14:30 UTC on 31 March is 01:30 on 1 April in Melbourne (UTC+11). date_created
        # (site-local, no zone) says otherwise on purpose: only the _gmt field is used.
        order = woo_order(91, "19.99", created_gmt="2025-03-31T14:30:00",
                          date_created="2025-03-30T00:00:00")
        pipe.post([woo("order.created", raw(order), "w-91")])
        settings = pipe.settings
        assert figures(redis_client, settings, WOO, "day", "2025-03-31") == NOTHING
        assert figures(redis_client, settings, WOO, "month", "2025-03-31") == NOTHING
        assert figures(redis_client, settings, WOO, "quarter", "2025-03-31") == NOTHING
        assert figures(redis_client, settings, WOO, "day", "2025-04-01") == one_order("19.99")
        assert figures(redis_client, settings, WOO, "quarter", "2025-04-01") == \
            one_order("19.99")
        assert figures(redis_client, settings, WOO, "7d", "2025-04-07") == one_order("19.99")
        # Out of the 7 days ending 8 April, still inside the 365 days behind its CLV.
        assert figures(redis_client, settings, WOO, "7d", "2025-04-08") == {
            **NOTHING, "customer_lifetime_value": Decimal("59.97")}
    finally:
        pipe.close()


def test_10_refund_before_its_order_is_subtracted_once_in_the_orders_period(shopify_pipe,
                                                                            redis_client):
    order_id = 4100000000010
    refund = shopify_refund(990010, order_id, "15.00")  # issued in February
    with_refund = shopify_order(order_id, "90.00", updated="2025-02-20T09:00:00+00:00",
                                refunds=(refund,))
    answers = shopify_pipe.post([
        shopify("refunds/create", raw(refund), "r-first"),
        shopify("orders/create", raw(shopify_order(order_id, "90.00")), "o-create"),
        shopify("orders/updated", raw(with_refund), "o-updated-with-refund"),
    ])
    assert statuses(answers) == [200, 200, 200]
    settings = shopify_pipe.settings
    assert figures(redis_client, settings, SHOPIFY, "month", "2025-01-15") == one_order("75.00")
    # February holds no order; its CLV window (365 days) still sees January's 75.00 x 3.
    assert figures(redis_client, settings, SHOPIFY, "month", "2025-02-20") == {
        **NOTHING, "customer_lifetime_value": Decimal("225.00")}


def test_10b_woocommerce_refunds_are_negative_strings_subtracted_once(woo_pipe, redis_client):
    refunds = ({"id": 1201, "reason": "", "total": "-5.50"},)
    woo_pipe.post([
        woo("order.created", raw(woo_order(101, "60.00")), "w-101-c"),
        woo("order.updated", raw(woo_order(101, "60.00", status="refunded",
                                           modified_gmt="2025-04-02T10:00:00",
                                           refunds=refunds)), "w-101-u1"),
        woo("order.updated", raw(woo_order(101, "60.00", status="refunded",
                                           modified_gmt="2025-04-03T10:00:00",
                                           refunds=refunds)), "w-101-u2"),
    ])
    assert figures(redis_client, woo_pipe.settings, WOO, "month", "2025-03-10") == \
        one_order("54.50")


@pytest.mark.parametrize("in_delivery_order", [True, False])
def test_10c_a_woocommerce_refund_deleted_in_the_store_is_given_back(woo_pipe, redis_client,
                                                                     in_delivery_order):
    # WooCommerce lets a refund be deleted (order screen, or DELETE /orders/<id>/refunds/<id>);
    # the order's newest refunds[] no longer lists it, so it no longer reduces the revenue.
    states = [
        woo("order.created", raw(woo_order(102, "100.00")), "w-102-c"),
        woo("order.updated", raw(woo_order(102, "100.00", modified_gmt="2025-03-11T10:00:00",
                                           refunds=({"id": 1202, "total": "-40.00"},
                                                    {"id": 1203, "total": "-5.00"}))),
            "w-102-u1"),
        woo("order.updated", raw(woo_order(102, "100.00", modified_gmt="2025-03-12T10:00:00",
                                           refunds=({"id": 1203, "total": "-5.00"},))),
            "w-102-u2"),
    ]
    woo_pipe.post(states if in_delivery_order else [states[2], states[1], states[0]])
    assert figures(redis_client, woo_pipe.settings, WOO, "month", "2025-03-10") == \
        one_order("95.00")


def test_big_ids_survive_exactly(shopify_pipe, redis_client):
    big = 2**53 + 1  # a float would turn it into 2**53
    one = shopify_order(big, "10.00", customer_id=2**63 - 1, products=(2**53 + 3,))
    two = shopify_order(big + 2, "10.00", customer_id=2**63 - 1, products=(2**53 + 5,))
    shopify_pipe.post([shopify("orders/create", raw(one), "b1"),
                       shopify("orders/create", raw(two), "b2")])
    assert redis_client.exists(f"xs:{{{SHOPIFY}}}:o:{big}")
    assert redis_client.exists(f"xs:{{{SHOPIFY}}}:o:{big + 2}")
    got = figures(redis_client, shopify_pipe.settings, SHOPIFY, "month", "2025-01-15")
    # One customer, two orders of two distinct products: ids did not collapse.
    assert (got["orders"], got["customers"], got["repeat_customers"],
            got["multi_product_customers"]) == (2, 1, 1, 1)


def test_which_orders_count(shopify_pipe, woo_pipe, redis_client):
    shopify_pipe.post([
        shopify("orders/create", raw(shopify_order(4100000000020, "1.00", test=True)), "t"),
        shopify("orders/cancelled", raw(shopify_order(4100000000021, "2.00")), "c"),
        shopify("orders/updated", raw(shopify_order(
            4100000000022, "4.00", cancelled_at="2025-01-15T12:00:00+00:00")), "ca"),
        shopify("orders/updated", raw(shopify_order(
            4100000000023, "8.00", financial_status="voided")), "v"),
        shopify("orders/create", raw(shopify_order(4100000000024, "16.00")), "ok"),
    ])
    statuses_seen = ("cancelled", "failed", "trash", "pending", "checkout-draft", "draft",
                     "auto-draft", "processing", "on-hold", "completed", "refunded")
    woo_pipe.post([woo("order.created", raw(woo_order(200 + i, "1.00", status=status,
                                                      customer_id=0)), f"w-{status}")
                   for i, status in enumerate(statuses_seen)])
    assert figures(redis_client, shopify_pipe.settings, SHOPIFY, "month", "2025-01-15") == \
        one_order("16.00")
    got = figures(redis_client, woo_pipe.settings, WOO, "month", "2025-03-10")
    assert (got["orders"], got["revenue"], got["customers"]) == (4, Decimal("4.00"), 0)


def test_customer_keys_id_else_normalised_email_hash_else_anonymous(shopify_pipe, redis_client):
    shopify_pipe.post([
        shopify("orders/create", raw(shopify_order(4100000000030, "5.00", customer_id=None,
                                                   email=" Someone@Example.TEST ")), "e1"),
        shopify("orders/create", raw(shopify_order(4100000000031, "5.00", customer_id=None,
                                                   email="someone@example.test")), "e2"),
        shopify("orders/create", raw(shopify_order(4100000000032, "5.00", customer_id=0,
                                                   email=None)), "anon"),
    ])
    got = figures(redis_client, shopify_pipe.settings, SHOPIFY, "month", "2025-01-15")
    assert (got["orders"], got["customers"], got["repeat_customers"]) == (3, 1, 1)
    stored = b" ".join(k + b" " + b" ".join(redis_client.hkeys(k)) if
                       redis_client.type(k) == b"hash" else k for k in redis_client.keys("*"))
    assert b"@" not in stored and b"someone" not in stored.lower()


# --- 11: the textbook examples, each its own scenario -------------------------------------

SHOP = "textbook.example"
DAY = datetime(2025, 6, 10, 12, 0, tzinfo=UTC)


def state(n: int, customer: str | None, total: str, products: tuple[str, ...] = ("1",),
          at: datetime = DAY) -> OrderState:
    return OrderState(shop=SHOP, platform="shopify", delivery_id=f"d{n}", topic="orders/create",
                      order_id=str(n), updated_at=at, created_at=at, counts=True,
                      customer_key=customer, currency="GBP", total=Decimal(total),
                      product_ids=products)


def textbook(redis_url: str, client: redis.Redis, events: list[Any], period: str = "month",
             lifespan: float = 3) -> dict[str, Any]:
    settings = settings_for(SHOP, lifespan_years=lifespan)
    apply_all(redis_url, events, settings)
    return figures(client, settings, SHOP, period, DAY.date())


def test_11_cross_sell_200_of_1000_customers_is_20_percent(redis_url, redis_client):
    events = [state(i, f"id:{i}", "10.00", ("1", "2") if i < 100 else ("1",))
              for i in range(1000)]
    # 100 more reach two products over two single-product orders.
    events += [state(5000 + i, f"id:{i}", "10.00", ("2",)) for i in range(100, 200)]
    got = textbook(redis_url, redis_client, events)
    assert (got["customers"], got["multi_product_customers"]) == (1000, 200)
    assert got["cross_sell_ratio"] == 0.2


def test_11_upsell_100_of_500_offered_is_20_percent(redis_url, redis_client):
    events = [OfferEvent(shop=SHOP, platform="shopify", delivery_id=f"o{i}", topic="offers",
                         offer_id="bundle", customer_key=f"id:{i}",
                         action="accepted" if i < 100 else ("declined" if i < 300
                                                            else "presented"),
                         at=DAY) for i in range(500)]
    got = textbook(redis_url, redis_client, events)
    assert (got["upsell_offered_customers"], got["upsell_accepted_customers"]) == (500, 100)
    assert got["upsell_conversion_rate"] == 0.2


def test_11_average_order_value_50000_over_1000_orders_is_50(redis_url, redis_client):
    events = [state(i, None, "30.00" if i % 2 else "70.00") for i in range(1000)]
    got = textbook(redis_url, redis_client, events)
    assert (got["orders"], got["revenue"]) == (1000, Decimal("50000.00"))
    assert got["average_order_value"] == Decimal("50.00")


def test_11_revenue_per_customer_100000_over_2000_customers_is_50(redis_url, redis_client):
    events = [state(i, f"id:{i % 2000}", "25.00") for i in range(4000)]
    got = textbook(redis_url, redis_client, events)
    assert (got["customers"], got["revenue"]) == (2000, Decimal("100000.00"))
    assert got["revenue_per_customer"] == Decimal("50.00")


def test_11_repeat_300_of_1000_customers_is_30_percent(redis_url, redis_client):
    events = [state(i, f"id:{i}", "10.00") for i in range(1000)]
    events += [state(5000 + i, f"id:{i}", "10.00") for i in range(300)]
    got = textbook(redis_url, redis_client, events)
    assert (got["customers"], got["repeat_customers"]) == (1000, 300)
    assert got["repeat_purchase_rate"] == 0.3


def test_11_clv_aov_50_times_3_orders_a_year_times_5_years_is_750(redis_url, redis_client):
    # 40 customers, 3 orders each spread over the year before DAY, 50 each on average.
    events = []
    for c in range(40):
        for k, total in enumerate(("40.00", "50.00", "60.00")):
            events.append(state(3 * c + k, f"id:{c}", total,
                                at=DAY - timedelta(days=120 * k + c)))
    events.append(state(9999, f"id:{99}", "500.00", at=DAY - timedelta(days=365)))  # outside
    got = textbook(redis_url, redis_client, events, period="day", lifespan=5)
    assert got["customer_lifetime_value"] == Decimal("750.00")
    settings = settings_for(SHOP, lifespan_years=5)
    year = figures(redis_client, settings, SHOP, "365d", DAY.date())
    assert (year["orders"], year["customers"], year["average_order_value"]) == (
        120, 40, Decimal("50.00"))


# --- 12: upsells marked on the order's line items (METRICS.md §5) -------------------------

def offer_delivery(shop: str, secret: str, delivery: str, customer_id: int, action: str,
                   at: str = "2025-01-15T09:00:00Z") -> tuple[str, bytes, dict[str, str]]:
    body = raw({"offer_id": "bundle-7", "action": action, "at": at, "customer_id": customer_id})
    return "/webhooks/offers", body, {
        "Content-Type": "application/json", "X-Xsell-Shop": shop,
        "X-Xsell-Delivery-Id": delivery, "X-Xsell-Hmac-Sha256": sign(secret, body)}


def test_12_shopify_line_item_property_is_an_accepted_upsell_while_the_order_counts(
        shopify_pipe, redis_client):
    upsold = shopify_order(4100000000120, "40.00", customer_id=501)
    upsold["line_items"][0]["properties"] = [{"name": "gift_note", "value": "hi"},
                                             {"name": "_xsell_upsell", "value": "bundle-7"}]
    not_upsold = shopify_order(4100000000121, "25.00", customer_id=503)
    not_upsold["line_items"][0]["properties"] = [{"name": "_xsell_upsell", "value": "false"}]
    later = {**upsold, "updated_at": "2025-01-15T12:00:00+00:00"}
    cancelled = {**upsold, "updated_at": "2025-01-16T08:00:00+00:00",
                 "cancelled_at": "2025-01-16T08:00:00+00:00"}
    answers = shopify_pipe.post([
        shopify("orders/create", raw(upsold), "d-up-1"),
        shopify("orders/create", raw(not_upsold), "d-up-2"),
        offer_delivery(SHOPIFY, SHOPIFY_SECRET, "o-up-1", 502, "presented"),
        offer_delivery(SHOPIFY, SHOPIFY_SECRET, "o-up-2", 501, "presented"),
        shopify("orders/updated", raw(later), "d-up-3"),  # a newer state, same upsell
    ])
    assert statuses(answers) == [200] * 5
    both = {"orders": 2, "revenue": Decimal("65.00"), "customers": 2,
            "average_order_value": Decimal("32.50"), "revenue_per_customer": Decimal("32.50"),
            "repeat_customers": 0, "repeat_purchase_rate": 0.0,
            "multi_product_customers": 0, "cross_sell_ratio": 0.0,
            "upsell_offered_customers": 2, "upsell_accepted_customers": 1,
            "upsell_conversion_rate": 0.5, "customer_lifetime_value": Decimal("97.50")}
    assert figures(redis_client, shopify_pipe.settings, SHOPIFY, "month", "2025-01-15") == both

    # Cancelled: the order and its accepted upsell leave the figures; customer 501 was still
    # presented the offer (the offers endpoint said so), 502 too.
    assert statuses(shopify_pipe.post([shopify("orders/cancelled", raw(cancelled),
                                               "d-up-4")])) == [200]
    assert figures(redis_client, shopify_pipe.settings, SHOPIFY, "month", "2025-01-15") == {
        **one_order("25.00"), "upsell_offered_customers": 2, "upsell_accepted_customers": 0,
        "upsell_conversion_rate": 0.0}


def test_12b_woocommerce_meta_key_is_an_accepted_upsell(woo_pipe, redis_client):
    order = woo_order(9120, "55.00", products=(31, 32))
    order["line_items"][1]["meta_data"] = [
        {"id": 4001, "key": "_xsell_upsell", "value": "yes", "display_key": "",
         "display_value": ""}]
    assert statuses(woo_pipe.post([woo("order.created", raw(order), "w-up-1")])) == [200]
    assert figures(redis_client, woo_pipe.settings, WOO, "month", "2025-03-10") == {
        **one_order("55.00", products=2), "upsell_offered_customers": 1,
        "upsell_accepted_customers": 1, "upsell_conversion_rate": 1.0}


def test_12c_which_line_items_are_marked():
    from connectors.common import upsell_line_items

    items = [
        {"id": 1, "properties": [{"name": "_xsell_upsell", "value": "1"}]},
        {"id": 2, "properties": [{"name": "_xsell_upsell", "value": " No "}]},
        {"id": 3, "properties": [{"name": "_xsell_upsell", "value": False}]},
        {"id": 4, "properties": [{"name": "_xsell_upsell", "value": None}]},
        {"id": 5, "properties": {"_xsell_upsell": "1"}},         # not a list: ignored
        {"id": 6, "properties": ["_xsell_upsell", {"name": "x"}]},  # not name/value: ignored
        {"properties": [{"name": "_xsell_upsell", "value": True}]},  # no id: its position
        {"id": 9007199254740993, "properties": [{"name": "_xsell_upsell", "value": 0},
                                                 {"name": "_xsell_upsell", "value": "on"}]},
    ]
    assert upsell_line_items(items, "properties", "name", "_xsell_upsell") == (
        "1", "#6", "9007199254740993")
    assert upsell_line_items(items, "properties", "name", "") == ()
    assert upsell_line_items(items, "meta_data", "key", "_xsell_upsell") == ()
