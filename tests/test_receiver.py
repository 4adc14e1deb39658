"""The HTTP receiver against a real broker and a real Redis: what reaches Kafka, when it
answers 2xx, and what a duplicate or an outage gets."""

from __future__ import annotations

import asyncio
import json
import uuid
from decimal import Decimal
from pathlib import Path

import redis.asyncio as aredis
from aiohttp.test_utils import TestClient, TestServer
from kafka import KafkaConsumer

from connectors.app import delivery_key, make_app
from connectors.producer import EventProducer
from connectors.signing import sign
from xsell_stream import config as config_module
from xsell_stream import events
from xsell_stream.store import EventApplier, prefix

from .conftest import free_port, write_config

SHOP = "test-shop.myshopify.com"
SECRET = "shpss_receiver_test"
BIG_ORDER_ID = 9007199254740993  # 2**53 + 1: a float would make it ...992
ORDER = {
    "id": BIG_ORDER_ID,
    "created_at": "2024-05-01T10:00:00+01:00",
    "updated_at": "2024-05-01T10:05:00+01:00",
    "currency": "GBP",
    "total_price": "30.10",
    "total_price_set": {"shop_money": {"amount": "30.10", "currency_code": "GBP"},
                        "presentment_money": {"amount": "35.00", "currency_code": "EUR"}},
    "test": False, "cancelled_at": None, "financial_status": "paid",
    "email": "Someone@Example.TEST",
    "customer": {"id": 42, "email": "someone@example.test"},
    "line_items": [{"product_id": 7, "quantity": 1}, {"product_id": 8, "quantity": 2},
                   {"product_id": None, "title": "gift wrap"}],
    "refunds": [],
}


def settings_for(tmp_path: Path, bootstrap: str, redis_url: str) -> config_module.Settings:
    shops = [{"id": SHOP, "platform": "shopify", "timezone": "Europe/London",
              "secrets": ["old-secret", SECRET]}]
    path = write_config(tmp_path, shops, kafka=bootstrap, redis_url=redis_url)
    return config_module.load(path)


def shopify_headers(body: bytes, delivery_id: str, secret: str = SECRET) -> dict[str, str]:
    return {"Content-Type": "application/json", "X-Shopify-Topic": "orders/create",
            "X-Shopify-Shop-Domain": SHOP, "X-Shopify-Webhook-Id": delivery_id,
            "X-Shopify-Hmac-Sha256": sign(secret, body)}


def consume_all(bootstrap: str, topic: str) -> list[bytes]:
    consumer = KafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest",
                             consumer_timeout_ms=4000, group_id=None)
    try:
        return [record.value for record in consumer]
    finally:
        consumer.close()


async def post_all(settings, requests):  # type: ignore[no-untyped-def]
    """Posts (body, headers) pairs to a fresh receiver; returns [(status, json)]."""
    producer = EventProducer(settings.kafka_settings, timeout_seconds=5)
    client = aredis.Redis.from_url(settings.redis_url)
    answers = []
    async with TestClient(TestServer(make_app(settings, producer, client))) as http:
        for body, headers in requests:
            resp = await http.post("/webhooks/" + headers.pop("_platform", "shopify"),
                                   data=body, headers=headers)
            answers.append((resp.status, await resp.json()))
    producer.close()
    await client.aclose()
    return answers


def test_a_verified_order_reaches_kafka_as_one_exact_event(tmp_path, broker, redis_url,
                                                           redis_client):
    settings = settings_for(tmp_path, broker.bootstrap_servers, redis_url)
    body = json.dumps(ORDER).encode()
    answers = asyncio.run(post_all(settings, [(body, shopify_headers(body, "d-1"))]))
    assert answers == [(200, {"status": "accepted"})]

    records = consume_all(broker.bootstrap_servers, settings.kafka_settings.topic)
    assert len(records) == 1
    event = events.decode(records[0])
    assert isinstance(event, events.OrderState)
    assert event.order_id == "9007199254740993"
    assert event.total == Decimal("30.10")  # shop money, not the EUR presentment amount
    assert event.customer_key == "id:42"
    assert event.product_ids == ("7", "8")
    assert event.counts is True
    assert event.created_at.isoformat() == "2024-05-01T09:00:00+00:00"
    assert b"Someone@Example" not in records[0] and b"someone@example" not in records[0]
    # Accepted but not yet applied: the delivery is pending, not done.
    key = delivery_key("d-1", body)
    assert redis_client.hgetall(prefix(SHOP) + "pending") == {key.encode(): b"1"}
    assert redis_client.exists(prefix(SHOP) + "dlv:" + key) == 0


def test_a_delivery_whose_effect_is_in_redis_is_not_produced_again(tmp_path, broker, redis_url,
                                                                   redis_client):
    settings = settings_for(tmp_path, broker.bootstrap_servers, redis_url)
    body = json.dumps(ORDER).encode()
    first = asyncio.run(post_all(settings, [(body, shopify_headers(body, "d-2"))]))
    assert first == [(200, {"status": "accepted"})]
    [record] = consume_all(broker.bootstrap_servers, settings.kafka_settings.topic)

    async def apply() -> str:  # what the worker does with the record
        client = aredis.Redis.from_url(redis_url)
        try:
            return await EventApplier(client).apply(events.decode(record),
                                                    settings.shops[0].zone)
        finally:
            await client.aclose()

    assert asyncio.run(apply()) == "applied"
    assert redis_client.hlen(prefix(SHOP) + "pending") == 0

    again = asyncio.run(post_all(settings, [(body, shopify_headers(body, "d-2"))]))
    assert again == [(200, {"status": "duplicate"})]
    assert len(consume_all(broker.bootstrap_servers, settings.kafka_settings.topic)) == 1


def test_a_forged_delivery_with_the_real_id_does_not_block_the_real_one(tmp_path, broker,
                                                                        redis_url, redis_client):
    settings = settings_for(tmp_path, broker.bootstrap_servers, redis_url)
    body = json.dumps(ORDER).encode()
    forged = json.dumps({**ORDER, "total_price": "0.01"}).encode()
    answers = asyncio.run(post_all(settings, [
        (forged, shopify_headers(forged, "d-3", secret="guessed")),
        (body, shopify_headers(body, "d-3")),
    ]))
    assert answers[0] == (401, {"error": "bad or missing X-Shopify-Hmac-Sha256: the shop's "
                                         "secrets in [[shops]] must hold the secret it signs with"})
    assert answers[1] == (200, {"status": "accepted"})
    [record] = consume_all(broker.bootstrap_servers, settings.kafka_settings.topic)
    assert events.decode(record).total == Decimal("30.10")


def test_the_woocommerce_creation_ping_is_acknowledged_without_an_event(tmp_path, broker,
                                                                        redis_url, redis_client):
    settings = settings_for(tmp_path, broker.bootstrap_servers, redis_url)
    ping = {"Content-Type": "application/x-www-form-urlencoded", "_platform": "woocommerce"}
    answers = asyncio.run(post_all(settings, [(b"webhook_id=7", ping)]))
    assert answers == [(200, {"status": "ping acknowledged"})]
    assert consume_all(broker.bootstrap_servers, settings.kafka_settings.topic) == []


def test_unreachable_broker_answers_503_and_leaves_nothing_pending(tmp_path, redis_url,
                                                                   redis_client):
    settings = settings_for(tmp_path, f"127.0.0.1:{free_port()}", redis_url)
    body = json.dumps(ORDER).encode()
    delivery = str(uuid.uuid4())
    [(status, answer)] = asyncio.run(post_all(settings, [(body, shopify_headers(body, delivery))]))
    assert status == 503
    assert answer["error"].startswith("Kafka unavailable")
    assert answer["error"].endswith("retry later; check [kafka].bootstrap_servers and the broker")
    assert redis_client.hlen(prefix(SHOP) + "pending") == 0
    assert redis_client.hgetall("xs:webhooks") == {f"shopify|{SHOP}|unavailable".encode(): b"1"}


def test_rejections_are_counted_under_a_configured_shop_never_an_unknown_one(
        tmp_path, broker, redis_url, redis_client):
    settings = settings_for(tmp_path, broker.bootstrap_servers, redis_url)
    body = json.dumps(ORDER).encode()
    stranger = {**shopify_headers(body, "d-5"), "X-Shopify-Shop-Domain": "stranger.myshopify.com"}
    answers = asyncio.run(post_all(settings, [
        (body, shopify_headers(body, "d-4", secret="wrong")),
        (body, stranger),
    ]))
    assert answers == [
        (401, {"error": "bad or missing X-Shopify-Hmac-Sha256: the shop's secrets in "
                             "[[shops]] must hold the secret it signs with"}),
        (401, {"error": "unknown shop 'stranger.myshopify.com': add it to [[shops]] in the "
                        'config with platform = "shopify"'}),
    ]
    assert redis_client.hgetall("xs:webhooks") == {
        f"shopify|{SHOP}|unauthorized".encode(): b"1", b"shopify|unknown|unauthorized": b"1"}
