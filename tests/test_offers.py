"""Upsell offers through POST /webhooks/offers, to the upsell figures, with a real broker and
a real Redis: the same offer event twice counts once; accepted counts as presented."""

from __future__ import annotations

import asyncio
import json

import redis
import redis.asyncio as aredis

from connectors.signing import sign
from xsell_stream import events
from xsell_stream.report import figures_for
from xsell_stream.store import AggregateReader, EventApplier

from .test_receiver import SECRET, SHOP, consume_all, post_all, settings_for


def offer(delivery: str, offer_id: str, action: str, customer: int | None, day: int = 1,
          email: str | None = None) -> tuple[bytes, dict[str, str]]:
    body = json.dumps({"offer_id": offer_id, "action": action,
                       "at": f"2024-05-{day:02d}T10:00:00Z", "customer_id": customer,
                       "email": email}).encode()
    return body, {"_platform": "offers", "Content-Type": "application/json",
                  "X-Xsell-Shop": SHOP, "X-Xsell-Delivery-Id": delivery,
                  "X-Xsell-Hmac-Sha256": sign(SECRET, body)}


def test_offers_give_the_upsell_conversion_rate(tmp_path, broker, redis_url, redis_client):
    settings = settings_for(tmp_path, broker.bootstrap_servers, redis_url)
    answers = asyncio.run(post_all(settings, [
        offer("o-1", "bundle", "presented", 1),
        offer("o-2", "bundle", "accepted", 1),
        offer("o-3", "bundle", "presented", 2),
        offer("o-4", "bundle", "presented", 2),            # another delivery, same offer event
        offer("o-5", "socks", "declined", 3),
        offer("o-6", "socks", "presented", None, email="  Four@Example.TEST "),
        offer("o-7", "socks", "accepted", None, email="four@example.test"),
        offer("o-8", "socks", "presented", None),          # anonymous: no customer figure
        offer("o-9", "socks", "accepted", 5, day=20),      # other period
    ]))
    assert [status for status, _ in answers] == [200] * 9
    assert answers[7][1] == {"status": "topic offers ignored"}

    records = consume_all(broker.bootstrap_servers, settings.kafka_settings.topic)
    assert len(records) == 8

    async def apply_all() -> list[str]:
        client = aredis.Redis.from_url(redis_url)
        applier = EventApplier(client)
        zone = settings.shops[0].zone
        outcomes = [await applier.apply(events.decode(r), zone) for r in records]
        outcomes.append(await applier.apply(events.decode(records[1]), zone))  # redelivered
        await client.aclose()
        return outcomes

    outcomes = asyncio.run(apply_all())
    # Records of several partitions arrive in any order: count the outcomes. The two
    # deliveries of one offer event, and the redelivered record, are "unchanged".
    assert sorted(outcomes[:-1]) == ["applied"] * 7 + ["unchanged"]
    assert outcomes[-1] == "unchanged"
    reader = AggregateReader(redis.Redis.from_url(redis_url))
    from datetime import date

    week = figures_for(settings, reader, SHOP, "week", date(2024, 5, 1))
    # presented: customers 1, 2, 3 (declined was presented) and the e-mail one;
    # accepted: customer 1 and the e-mail one
    assert week["upsell_offered_customers"] == 4
    assert week["upsell_accepted_customers"] == 2
    assert week["upsell_conversion_rate"] == 0.5
    month = figures_for(settings, reader, SHOP, "month", date(2024, 5, 1))
    assert (month["upsell_offered_customers"], month["upsell_accepted_customers"]) == (5, 3)
    assert month["upsell_conversion_rate"] == 0.6


def test_an_offer_with_an_unknown_action_is_rejected(tmp_path, broker, redis_url, redis_client):
    settings = settings_for(tmp_path, broker.bootstrap_servers, redis_url)
    [(status, answer)] = asyncio.run(post_all(settings, [offer("o-1", "x", "clicked", 1)]))
    assert status == 400
    assert answer == {"error": "offer action must be one of accepted, declined, presented"}
    assert consume_all(broker.bootstrap_servers, settings.kafka_settings.topic) == []
