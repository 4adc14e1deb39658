"""Hostile and broken deliveries against the running stack (`xsell-stream up`, real broker,
real Redis): each gets a clear error, nothing reaches the store, and the connector keeps
serving. A valid delivery sent last proves the pipeline still works and is the only effect."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from connectors.app import delivery_key
from connectors.signing import sign
from xsell_stream.store import prefix

from .conftest import SHOPIFY_SECRET, SHOPIFY_SHOP, WOO_SECRET, WOO_SHOP, RunningStack
from .faults import support

MAX_BODY = 4096
EMAIL = "Private.Person@Example.TEST"


def order(order_id: int, total: str = "12.50", **extra: object) -> dict[str, object]:
    body: dict[str, object] = {
        "id": order_id, "created_at": "2026-01-05T10:00:00+00:00",
        "updated_at": "2026-01-05T10:00:00+00:00", "currency": "GBP", "total_price": total,
        "email": EMAIL, "customer": {"id": 4242, "email": EMAIL},
        "line_items": [{"product_id": 11}, {"product_id": 12}], "refunds": [],
    }
    body.update(extra)
    return body


def shopify_headers(body: bytes, delivery_id: str, secret: str | None = SHOPIFY_SECRET,
                    shop: str = SHOPIFY_SHOP, content_type: str = "application/json",
                    topic: str = "orders/create") -> dict[str, str]:
    headers = {"Content-Type": content_type, "X-Shopify-Topic": topic,
               "X-Shopify-Shop-Domain": shop, "X-Shopify-Webhook-Id": delivery_id}
    if secret is not None:
        headers["X-Shopify-Hmac-Sha256"] = sign(secret, body)
    return headers


def post(stack: RunningStack, path: str, body: bytes,
         headers: dict[str, str]) -> tuple[int, dict[str, object]]:
    request = urllib.request.Request(stack.connector_url + path, data=body, headers=headers,
                                     method="POST")
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def post_shopify(stack: RunningStack, body: bytes, delivery_id: str,
                 **kwargs: str | None) -> tuple[int, dict[str, object]]:
    return post(stack, "/webhooks/shopify", body, shopify_headers(body, delivery_id, **kwargs))


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    running = support.start(tmp_path_factory.mktemp("bad-input"),
                            {"max_body_bytes": MAX_BODY, "produce_timeout_seconds": 5.0})
    yield running
    support.stop(running)


def store_keys(stack: RunningStack) -> set[str]:
    """Every key of the shops (orders, buckets, deliveries, pending), not the counters."""
    client = support.redis_of(stack)
    keys: set[str] = set()
    for shop in (SHOPIFY_SHOP, WOO_SHOP):
        keys |= {k.decode() for k in client.scan_iter(match=f"{prefix(shop)}*")}
    return keys


def json_bytes(obj: object) -> bytes:
    return json.dumps(obj).encode()


GOOD = json_bytes(order(5001))

BAD_SHOPIFY: list[tuple[str, bytes, dict[str, object], int, str]] = [
    # (case, body, header overrides, status, words in the error)
    ("missing signature", GOOD, {"secret": None}, 401, "X-Shopify-Hmac-Sha256"),
    ("wrong signature", GOOD, {"secret": "not-the-secret"}, 401, "X-Shopify-Hmac-Sha256"),
    ("unknown shop", GOOD, {"shop": "stranger.myshopify.com"}, 401, "unknown shop"),
    ("wrong content type", GOOD, {"content_type": "text/plain"}, 415, "content type"),
    ("form body", b"a=1&b=2", {"content_type": "application/x-www-form-urlencoded"}, 415,
     "content type"),
    ("invalid JSON", b'{"id": 5001, "total_price": ', {}, 400, "not valid JSON"),
    ("not UTF-8", b"\xff\xfe{}", {}, 400, "not valid JSON"),
    ("JSON array", b"[1, 2, 3]", {}, 400, "not a JSON object"),
    ("JSON string", b'"orders"', {}, 400, "not a JSON object"),
    ("order without id", json_bytes({k: v for k, v in order(5001).items() if k != "id"}), {},
     400, "'id'"),
    ("id is an object", json_bytes(order(5001) | {"id": {"x": 1}}), {}, 400, "not an id"),
    ("line_items is a string", json_bytes(order(5001) | {"line_items": "many"}), {}, 400,
     "line_items"),
    ("created_at is garbage", json_bytes(order(5001) | {"created_at": "yesterday"}), {}, 400,
     "created_at"),
    ("negative total", json_bytes(order(5001, total="-12.50")), {}, 400, "negative"),
    ("absurd total", json_bytes(order(5001, total="1e30")), {}, 400, "out of range"),
    ("total is NaN", json_bytes(order(5001, total="NaN")), {}, 400, "amount"),
    ("too many decimals", json_bytes(order(5001, total="1.000001")), {}, 400, "decimal"),
    ("negative refund", json_bytes(order(5001, refunds=[{"id": 9, "transactions": [
        {"kind": "refund", "status": "success", "amount": "-3.00"}]}])), {}, 400, "negative"),
]


@pytest.mark.parametrize("case,body,overrides,status,words",
                         BAD_SHOPIFY, ids=[c[0] for c in BAD_SHOPIFY])
def test_a_bad_shopify_delivery_gets_a_clear_error_and_stores_nothing(
        stack, case, body, overrides, status, words):
    before = store_keys(stack)
    got, answer = post_shopify(stack, body, f"bad-{case}", **overrides)
    assert got == status, answer
    assert words in str(answer["error"]), answer
    assert store_keys(stack) == before


def test_an_oversized_body_gets_413_with_the_configured_limit(stack):
    body = json_bytes(order(5002, note="x" * MAX_BODY))
    got, answer = post_shopify(stack, body, "bad-oversized")
    assert got == 413
    assert f"larger than {MAX_BODY} bytes" in str(answer["error"])
    assert "max_body_bytes" in str(answer["error"])


def test_bad_woocommerce_deliveries_are_refused(stack):
    body = json_bytes({"id": 77, "status": "processing", "total": "5.00"})
    base = {"Content-Type": "application/json", "X-WC-Webhook-Topic": "order.created",
            "X-WC-Webhook-Source": f"https://{WOO_SHOP}/", "X-WC-Webhook-Delivery-ID": "w-bad"}
    cases = [
        ({**base}, 401),
        ({**base, "X-WC-Webhook-Signature": sign("wrong", body)}, 401),
        ({**base, "X-WC-Webhook-Signature": sign(WOO_SECRET, body),
          "X-WC-Webhook-Source": "https://elsewhere.example/"}, 401),
        ({**base, "X-WC-Webhook-Signature": sign(WOO_SECRET, body),
          "Content-Type": "text/html"}, 415),
        ({**base, "X-WC-Webhook-Signature": sign(WOO_SECRET, body)}, 400),  # no dates etc.
    ]
    before = store_keys(stack)
    for headers, status in cases:
        got, answer = post(stack, "/webhooks/woocommerce", body, headers)
        assert (got, "error" in answer) == (status, True), answer
    assert store_keys(stack) == before


def test_a_forged_delivery_reusing_the_real_id_does_not_stop_the_real_one(stack):
    real = json_bytes(order(5003, total="40.00"))
    forged = json_bytes(order(5003, total="99999.00"))
    assert post_shopify(stack, forged, "reused-id", secret="attacker-guess")[0] == 401
    assert post_shopify(stack, forged, "reused-id", secret=None)[0] == 401
    status, answer = post_shopify(stack, real, "reused-id")
    assert (status, answer) == (200, {"status": "accepted"})
    support.settle(stack, 120)
    client = support.redis_of(stack)
    stored = client.hgetall(f"{prefix(SHOPIFY_SHOP)}o:5003")
    assert stored[b"t"] == b"400000"  # 40.00 in 1/10000 units: the real one counted
    assert client.exists(f"{prefix(SHOPIFY_SHOP)}dlv:{delivery_key('reused-id', real)}") == 1


def test_after_all_that_the_connector_still_serves_and_only_good_data_is_stored(stack):
    pid = support.process_of(stack, "connector")
    status, answer = post_shopify(stack, GOOD, "good-5001")
    assert (status, answer) == (200, {"status": "accepted"})
    support.settle(stack, 120)
    assert support.process_of(stack, "connector") == pid  # never crashed, never restarted
    client = support.redis_of(stack)
    orders = {k.decode() for k in client.scan_iter(match=f"{prefix(SHOPIFY_SHOP)}o:*")}
    assert orders == {f"{prefix(SHOPIFY_SHOP)}o:5001", f"{prefix(SHOPIFY_SHOP)}o:5003"}
    assert client.hgetall(f"{prefix(SHOPIFY_SHOP)}b:month:2026-01")[b"orders"] == b"2"
    assert client.keys(f"{prefix(WOO_SHOP)}o:*") == []


def test_no_email_in_clear_and_no_secret_in_answers_or_logs(stack):
    """Runs after the deliveries above: the whole Redis and every log of the stack."""
    status, answer = post_shopify(stack, GOOD, "leak-check", secret="wrong-secret")
    assert status == 401 and SHOPIFY_SECRET not in json.dumps(answer)
    client = support.redis_of(stack)
    dump = []
    for key in client.scan_iter(match="*"):
        kind = client.type(key).decode()
        value = {"string": client.get, "hash": client.hgetall}.get(kind, lambda k: b"")(key)
        dump.append(repr(key) + repr(value))
    text = "\n".join(dump).lower()
    assert len(dump) > 5
    assert EMAIL.lower() not in text and "@" not in text
    logs = "".join(p.read_text(errors="replace")
                   for p in Path(stack.settings.data_dir / "logs").glob("*.log"))
    assert "rejected (401)" in logs  # the log is there and says what happened
    for secret in (SHOPIFY_SECRET, WOO_SECRET, "not-the-secret", "attacker-guess", "test-key"):
        assert secret not in logs and secret.lower() not in text
    assert EMAIL.lower() not in logs.lower()
