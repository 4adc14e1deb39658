"""Shopify's mandatory compliance webhooks against the running stack (real broker, real
Redis). Two shops get the same orders; only `alpha` is asked to forget, `beta` is the control
whose totals alpha's must keep equalling, even after a later change to a redacted order."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors.common import CustomerKeys
from connectors.signing import sign
from xsell_stream.store import WEBHOOKS_KEY, prefix

from .conftest import RunningStack
from .faults import support
from .test_bad_input import order, post, shopify_headers

ALPHA, BETA = "alpha-gifts.myshopify.com", "beta-gifts.myshopify.com"
SECRETS = {ALPHA: "shpss_alpha_compliance", BETA: "shpss_beta_compliance"}
SHOPS: list[dict[str, object]] = [
    {"id": shop, "platform": "shopify", "timezone": "Europe/London", "secrets": [secret]}
    for shop, secret in SECRETS.items()
]
ANNA_EMAIL, GUEST_EMAIL = "Anna.Private@Example.TEST", "guest.person@example.test"


def anna(order_id: int, total: str, products: list[int], **extra: object) -> dict[str, object]:
    fields: dict[str, object] = {"email": ANNA_EMAIL,
                                 "customer": {"id": 501, "email": ANNA_EMAIL},
                                 "line_items": [{"product_id": p} for p in products]}
    return order(order_id, total=total, **(fields | extra))


ORDERS = [
    anna(1, "10.00", [1]),
    anna(2, "20.00", [2]),
    order(3, total="30.00", email="bob@example.test", customer={"id": 502}),
    order(4, total="40.00", email=GUEST_EMAIL, customer=None, line_items=[{"product_id": 1}]),
]


def deliver(stack: RunningStack, shop: str, topic: str, body: dict[str, object],
            delivery_id: str, secret: str | None = None) -> tuple[int, dict[str, object]]:
    raw = json.dumps(body).encode()
    headers = shopify_headers(raw, delivery_id, secret=secret or SECRETS[shop], shop=shop,
                              topic=topic)
    return post(stack, "/webhooks/shopify", raw, headers)


def deliver_offer(stack: RunningStack, shop: str, offer_id: str, action: str,
                  delivery_id: str) -> tuple[int, dict[str, object]]:
    """Anna's upsell offers: an offer id with the separator in it, as an app may send."""
    raw = json.dumps({"offer_id": offer_id, "action": action, "customer_id": 501,
                      "at": "2026-01-05T10:00:00Z"}).encode()
    headers = {"Content-Type": "application/json", "X-Xsell-Shop": shop,
               "X-Xsell-Delivery-Id": delivery_id,
               "X-Xsell-Hmac-Sha256": sign(SECRETS[shop], raw)}
    return post(stack, "/webhooks/offers", raw, headers)


OFFERS = [("bundle|7", "presented"), ("bundle|7", "accepted")]


def totals(stack: RunningStack, shop: str) -> dict[str, dict[bytes, bytes]]:
    """The shop's totals: every bucket hash itself, not the per-customer ones."""
    snap = support.snapshot(stack)[shop]
    return {k: v for k, v in snap.items() if k.count(":") == 2}


def dump(stack: RunningStack, shop: str) -> str:
    client = support.redis_of(stack)
    out = []
    for key in client.scan_iter(match=f"{prefix(shop)}*"):
        kind = client.type(key).decode()
        value = {"hash": client.hgetall, "string": client.get}.get(kind, lambda k: b"")(key)
        out.append(f"{key!r} {value!r}")
    return "\n".join(out)


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    running = support.start(tmp_path_factory.mktemp("compliance"), shops=SHOPS)
    for shop in (ALPHA, BETA):
        for n, body in enumerate(ORDERS):
            assert deliver(running, shop, "orders/create", body, f"{shop}-o{n}")[0] == 200
        for n, (offer_id, action) in enumerate(OFFERS):
            assert deliver_offer(running, shop, offer_id, action, f"{shop}-u{n}")[0] == 200
    support.settle(running, 120)
    yield running
    support.stop(running)


def redact_body(shop: str) -> dict[str, object]:
    return {"shop_id": 1, "shop_domain": shop, "orders_to_redact": [1, 2],
            "customer": {"id": 501, "email": ANNA_EMAIL, "phone": "555-0100"}}


@pytest.mark.parametrize("topic", ["customers/redact", "shop/redact", "customers/data_request"])
def test_compliance_webhooks_verify_the_signature(stack, topic):
    before = dump(stack, ALPHA)
    for secret in ("forged", SECRETS[BETA]):
        status, answer = deliver(stack, ALPHA, topic, redact_body(ALPHA), "c-forged", secret)
        assert status == 401, answer
    assert dump(stack, ALPHA) == before


def test_a_compliance_body_for_another_shop_is_refused(stack):
    before = dump(stack, ALPHA)
    status, answer = deliver(stack, ALPHA, "shop/redact", {"shop_domain": BETA}, "c-other")
    assert status == 400 and "shop_domain" in str(answer["error"])
    assert dump(stack, ALPHA) == before


def test_data_request_is_acknowledged_and_logs_what_is_held(stack):
    body = redact_body(ALPHA) | {"data_request": {"id": 9999}}
    status, answer = deliver(stack, ALPHA, "customers/data_request", body, "c-data")
    assert (status, answer) == (200, {"status": "data request acknowledged", "orders": 2})
    log = (stack.settings.data_dir / "logs" / "connector.log").read_text()
    line = next(x for x in log.splitlines() if "customers/data_request" in x)
    held = json.loads(line.split("data held: ", 1)[1])
    assert held["customer_keys"][0] == "id:501"
    assert held["customer_keys"][1].startswith("email:")
    assert sorted(held["orders"]) == ["1", "2"]
    assert held["offer_events"] == 2
    assert held["orders"]["1"]["total_units"] == "100000"
    assert "request 9999" in line
    assert ANNA_EMAIL.lower() not in log.lower()


def test_customers_redact_forgets_the_customer_and_keeps_the_totals(stack):
    keys = CustomerKeys(b"test-key")  # the email_hash_key of tests' configs
    anna_keys = ["id:501", keys.key(None, ANNA_EMAIL)]
    assert anna_keys[0] in dump(stack, ALPHA)
    before = totals(stack, ALPHA)
    assert before == totals(stack, BETA)
    month = before["b:month:2026-01"]
    assert (month[b"orders"], month[b"customers"], month[b"repeat_customers"]) == (
        b"4", b"3", b"1")  # Anna (twice), Bob, the guest by e-mail
    assert (month[b"upsell_offered_customers"], month[b"upsell_accepted_customers"]) == (
        b"1", b"1")

    status, answer = deliver(stack, ALPHA, "customers/redact", redact_body(ALPHA), "c-redact")
    assert status == 200, answer
    assert answer["status"] == "customer redacted"
    assert answer["orders"] == 2  # orders 1 and 2 no longer name Anna
    assert answer["offer_events"] == 2  # her presented and accepted offer
    text = dump(stack, ALPHA)
    assert "id:501" not in text and anna_keys[1] not in text
    assert "id:502" in text and "redacted:" in text  # Bob stays; Anna is a pseudonym now
    assert totals(stack, ALPHA) == before

    # A redacted order changes later (Shopify sends it without the customer): both shops
    # move exactly alike, so nothing the redaction did left the arithmetic inexact.
    cancelled = anna(2, "20.00", [2], customer=None, email=None,
                     cancelled_at="2026-01-06T09:00:00+00:00",
                     updated_at="2026-01-06T09:00:00+00:00")
    for shop in (ALPHA, BETA):
        assert deliver(stack, shop, "orders/cancelled", cancelled, f"{shop}-cancel")[0] == 200
    support.settle(stack, 120)
    assert totals(stack, ALPHA) == totals(stack, BETA)
    month = totals(stack, ALPHA)["b:month:2026-01"]
    assert (month[b"orders"], month[b"revenue"], month[b"repeat_customers"]) == (
        b"3", b"800000", b"0")


def test_shop_redact_removes_everything_of_the_shop_only(stack):
    client = support.redis_of(stack)
    status, answer = deliver(stack, ALPHA, "shop/redact", {"shop_id": 1, "shop_domain": ALPHA},
                             "c-shop")
    assert status == 200 and answer["status"] == "shop redacted", answer
    assert list(client.scan_iter(match=f"{prefix(ALPHA)}*")) == []
    fields = [f.decode() for f in client.hkeys(WEBHOOKS_KEY)]
    assert not any(f"|{ALPHA}|" in f for f in fields)
    assert any(f"|{BETA}|" in f for f in fields)
    assert totals(stack, BETA)["b:month:2026-01"][b"orders"] == b"3"


def test_the_connector_log_names_no_secret(stack):
    log = "".join(p.read_text() for p in Path(stack.settings.data_dir / "logs").glob("*.log"))
    assert "customers/redact" in log
    for secret in SECRETS.values():
        assert secret not in log
