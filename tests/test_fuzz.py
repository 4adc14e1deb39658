"""Fuzzing the connectors' parsing (hypothesis, a bounded number of examples per target).

Whatever the bytes, a parser either returns an event (or None for a topic without figures)
or refuses with `Rejected` / a validation error, which the receiver answers 400; never any
other exception (a 500, and a store retrying forever). And whatever it accepts, the worker can
apply: the event survives the trip through Kafka's encoding and maps to its Redis script
(a parsed event that could not would be a poison event made by our own connector).
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from connectors import app, compliance, offers, shopify, woocommerce
from connectors.common import CustomerKeys
from connectors.errors import Rejected
from xsell_stream import events
from xsell_stream.store import script_args

KEYS = CustomerKeys(b"fuzz-key")
NOW = datetime(2026, 1, 1, tzinfo=UTC)
ZONE = ZoneInfo("Europe/Berlin")
FUZZ = settings(max_examples=300, deadline=None, derandomize=False,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])

numbers_as_text = st.sampled_from(["0", "-0", "1e999", "-1e-999", "NaN", "Infinity", "1_0",
                                   " 12.5 ", "0x10", "١٢", "12.50", "-45.00", "99999999999.9999",
                                   "1e11", "0.00001", ""])
scalars = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                    st.decimals(allow_nan=False, allow_infinity=False, places=6),
                    st.text(max_size=20), numbers_as_text,
                    st.sampled_from(["2026-01-05T10:00:00+00:00", "2026-01-05T10:00:00",
                                     "2026-13-45T99:00:00Z", "yesterday"]))
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4)
    | st.dictionaries(st.text(max_size=12), inner, max_size=4), max_leaves=12)


def to_json(value: Any) -> bytes:
    return json.dumps(value, default=str).encode()


SHOPIFY_ORDER: dict[str, Any] = {
    "id": 1001, "created_at": "2026-01-05T10:00:00+00:00",
    "updated_at": "2026-01-05T11:00:00+00:00", "currency": "GBP", "total_price": "12.50",
    "customer": {"id": 7}, "email": "a@example.test",
    "line_items": [{"product_id": 1}, {"product_id": 2}],
    "refunds": [{"id": 5, "transactions": [{"kind": "refund", "status": "success",
                                            "amount": "2.00"}]}],
}
WOO_ORDER: dict[str, Any] = {
    "id": 77, "status": "processing", "currency": "GBP", "total": "9.90",
    "date_created_gmt": "2026-01-05T10:00:00", "date_modified_gmt": "2026-01-05T10:30:00",
    "customer_id": 3, "billing": {"email": "b@example.test"},
    "line_items": [{"product_id": 4}], "refunds": [{"id": 8, "total": "-1.00"}],
}
OFFER: dict[str, Any] = {"offer_id": "o-1", "action": "accepted", "customer_id": 7,
                         "at": "2026-01-05T10:00:00+00:00", "order_id": 1001}


def mutated(base: dict[str, Any]) -> st.SearchStrategy[dict[str, Any]]:
    """The base object with some fields replaced by anything, deleted, or added."""
    keys = st.sampled_from(sorted(base))
    return st.tuples(st.dictionaries(keys | st.text(max_size=8), json_values, max_size=4),
                     st.lists(keys, max_size=2)).map(
        lambda ch: {k: v for k, v in (base | ch[0]).items() if k not in ch[1]})


def accepted(event: events.Event | None) -> None:
    """What the receiver does with a parsed event, then what the worker does with it."""
    if event is None:
        return
    try:
        app._check_amounts(event)
    except Rejected as exc:
        assert exc.status == 400
        return
    again = events.decode(events.encode(event))
    assert again == event
    script_args(again, ZONE)


def parse_or_refuse(parse: Any, *args: Any) -> None:
    try:
        event = parse(*args)
    except Rejected as exc:
        assert exc.status == 400 and exc.reason
        return
    except ValueError as exc:  # pydantic's ValidationError: answered 400 by the receiver
        assert str(exc)
        return
    accepted(event)


@FUZZ
@given(raw=st.binary(max_size=300) | json_values.map(to_json),
       topic=st.sampled_from(sorted(shopify.ORDER_TOPICS | {"orders/delete", "refunds/create"})))
def test_shopify_parse_takes_any_bytes(raw, topic):
    parse_or_refuse(shopify.parse, topic, raw, "s.myshopify.com", "d-1", KEYS, NOW)


@FUZZ
@given(body=mutated(SHOPIFY_ORDER),
       topic=st.sampled_from(sorted(shopify.ORDER_TOPICS | {"refunds/create"})))
# Found by review: a refund's transactions or money parts as a number were a TypeError.
@example(body=SHOPIFY_ORDER | {"refunds": 5}, topic="refunds/create")
@example(body=SHOPIFY_ORDER | {"refunds": [{"id": 5, "transactions": 5}]},
         topic="orders/updated")
@example(body=SHOPIFY_ORDER | {"refunds": [{"id": 5, "refund_line_items": 3,
                                            "transactions": []}]}, topic="orders/updated")
def test_shopify_parse_takes_any_order_shape(body, topic):
    if topic == "refunds/create":
        body = body | {"order_id": body.get("id"), "transactions": body.get("refunds")}
    parse_or_refuse(shopify.parse, topic, to_json(body), "s.myshopify.com", "d-1", KEYS, NOW)


@FUZZ
@given(raw=st.binary(max_size=300) | json_values.map(to_json) | mutated(WOO_ORDER).map(to_json),
       topic=st.sampled_from(sorted(woocommerce.ORDER_TOPICS | {"order.deleted"})))
def test_woocommerce_parse_takes_anything(raw, topic):
    parse_or_refuse(woocommerce.parse, topic, raw, "w.example", "d-2", KEYS, NOW)


@FUZZ
@given(raw=st.binary(max_size=200) | json_values.map(to_json) | mutated(OFFER).map(to_json))
def test_offer_bodies_are_refused_or_accepted_never_a_crash(raw):
    # Through the receiver's parse step, as a delivery would reach it.
    parse_or_refuse(app.parse_delivery, offers, "offers", raw, "s.myshopify.com", "shopify",
                    "d-3", KEYS, NOW)


def test_offer_parse_refuses_an_action_that_is_a_list():
    with pytest.raises(Rejected):
        offers.parse(b'{"offer_id": "o", "action": []}', "s", "shopify", "d", KEYS)


@FUZZ
@given(body=json_values | mutated({"shop_domain": "s.myshopify.com",
                                   "customer": {"id": 7, "email": "c@example.test"}}))
def test_compliance_customer_keys_take_anything(body):
    if not isinstance(body, dict):
        return
    try:
        found = compliance.customer_keys("customers/redact", body, KEYS)
    except Rejected as exc:
        assert exc.status == 400
        return
    assert found and all(k.startswith(("id:", "email:")) for k in found)
    assert not any("@" in k for k in found)


def test_the_fuzzed_bases_are_accepted():
    """The seeds the mutations start from parse: the fuzzers explore around valid input."""
    order = shopify.parse("orders/create", to_json(SHOPIFY_ORDER), "s", "d", KEYS, NOW)
    assert isinstance(order, events.OrderState) and order.total == Decimal("12.50")
    woo = woocommerce.parse("order.created", to_json(WOO_ORDER), "w", "d", KEYS, NOW)
    assert isinstance(woo, events.OrderState) and woo.total == Decimal("9.90")
    offer = offers.parse(to_json(OFFER), "s", "shopify", "d", KEYS)
    assert isinstance(offer, events.OfferEvent)
