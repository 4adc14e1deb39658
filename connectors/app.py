"""The HTTP receiver: POST /webhooks/shopify and POST /webhooks/woocommerce.

For each delivery: size and content type, shop, signature over the raw bytes, then parse.
A delivery whose effect is already in Redis is answered 200 at once. Otherwise it is held
as pending, produced to Kafka, and answered 200 only after the broker acknowledged; 503 when
the broker (or Redis) is unreachable, so the store retries. Deduplication happens only after
the signature is verified, so a forged delivery can never mark an id as seen.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from types import ModuleType

import redis.asyncio as aredis
from aiohttp import web
from redis.exceptions import RedisError

from xsell_stream import events
from xsell_stream.config import Settings
from xsell_stream.store import DeliveryLedger
from xsell_stream.store.privacy import Privacy

from . import compliance, offers, shopify, signing, woocommerce
from .common import UPSELL_PROPERTY, CustomerKeys
from .errors import Rejected
from .producer import BrokerUnavailable, EventProducer

log = logging.getLogger("xsell_stream.connector")

PLATFORMS: dict[str, ModuleType] = {"shopify": shopify, "woocommerce": woocommerce}
# Offers come from the store's upsell app, for a shop of either platform.
ENDPOINTS: dict[str, ModuleType] = {**PLATFORMS, "offers": offers}
# The configured shop a delivery was identified as, for counting its rejections.
SHOP = web.RequestKey("shop", str)


class Receiver:
    def __init__(
        self,
        settings: Settings,
        producer: EventProducer,
        ledger: DeliveryLedger,
        privacy: Privacy,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self._settings = settings
        self._producer = producer
        self._ledger = ledger
        self._privacy = privacy
        self._keys = CustomerKeys(settings.email_key())
        self._clock = clock
        self._topic = settings.kafka_settings.topic

    async def handle(self, platform: str, request: web.Request) -> web.Response:
        try:
            response, _ = await self._receive(platform, request)
            return response
        except Rejected as exc:
            # A configured shop's rejections (a bad signature, say) are counted under its id;
            # a shop id that is not configured is never a label.
            shop = request.get(SHOP, "unknown")
            log.info("%s delivery for %s rejected (%d): %s", platform, shop, exc.status,
                     exc.reason)
            outcome = {401: "unauthorized", 413: "too_large", 415: "bad_content_type"}.get(
                exc.status, "bad_request" if exc.status < 500 else "unavailable"
            )
            await self._count(platform, shop, outcome)
            return web.json_response({"error": exc.reason}, status=exc.status)

    async def _receive(self, platform: str, request: web.Request) -> tuple[web.Response, str]:
        module = ENDPOINTS[platform]
        try:
            raw = await request.read()
        except web.HTTPRequestEntityTooLarge:
            limit = self._settings.connector.max_body_bytes
            raise Rejected(413, f"body larger than {limit} bytes "
                                "(raise [connector].max_body_bytes)") from None
        headers: Mapping[str, str] = request.headers

        if platform == "woocommerce" and woocommerce.is_ping(headers, raw):
            await self._count(platform, "unknown", "ping")
            return web.json_response({"status": "ping acknowledged"}), "unknown"

        shop_id = module.shop_of(headers)
        shop = self._settings.shop(shop_id) if shop_id else None
        if shop is None or (module is not offers and shop.platform != platform):
            shown = repr(shop_id[:100]) if shop_id else f"(no {module.SHOP_HEADER})"
            where = "" if module is offers else f' with platform = "{platform}"'
            raise Rejected(401, f"unknown shop {shown}: add it to [[shops]] in the config{where}")
        request[SHOP] = shop.id
        if not signing.verify(raw, headers.get(module.SIGNATURE_HEADER), shop.secrets):
            raise Rejected(401, f"bad or missing {module.SIGNATURE_HEADER}: the shop's "
                                "secrets in [[shops]] must hold the secret it signs with")
        content_type = request.content_type
        if content_type != "application/json":
            raise Rejected(415, f"content type {content_type!r}, expected application/json")
        header_id = (headers.get(module.DELIVERY_HEADER) or "").strip()
        if not header_id or len(header_id) > 200:
            raise Rejected(400, f"missing or malformed {module.DELIVERY_HEADER}")
        delivery_id = delivery_key(header_id, raw)
        topic = "offers"
        if module is not offers:
            topic = (headers.get(module.TOPIC_HEADER) or "").strip()
            if not topic:
                raise Rejected(400, f"missing {module.TOPIC_HEADER}")

        if module is shopify and topic in compliance.TOPICS:
            try:
                answer = await compliance.handle(topic, raw, shop.id, self._keys,
                                                 self._privacy)
            except RedisError as exc:
                raise Rejected(503, f"Redis unavailable ({type(exc).__name__}); "
                                    "retry later") from None
            return web.json_response(answer), shop.id

        event = parse_delivery(module, topic, raw, shop.id, shop.platform, delivery_id,
                               self._keys, self._clock(), shop.upsell_property)
        if event is None:
            await self._count(platform, shop.id, "ignored")
            return web.json_response({"status": f"topic {topic} ignored"}), shop.id
        _check_amounts(event)

        try:
            if await self._ledger.is_done(shop.id, delivery_id):
                await self._count(platform, shop.id, "duplicate")
                return web.json_response({"status": "duplicate"}), shop.id
            encoded = events.encode(event)
            await self._ledger.hold(shop.id, delivery_id, encoded)
        except RedisError as exc:
            raise Rejected(503, f"Redis unavailable ({type(exc).__name__}); retry later; "
                                "check [redis].url and the Redis server") from None
        try:
            await self._producer.send(self._topic, events.partition_key(event), encoded)
        except BrokerUnavailable as exc:
            try:
                await self._ledger.release(shop.id, delivery_id)
            except RedisError:
                # The hold stays until the store's retry is applied; a 503 all the same.
                log.warning("could not release pending delivery %s: Redis unavailable",
                            delivery_id)
            raise Rejected(503, f"Kafka unavailable ({exc}); retry later; check "
                                "[kafka].bootstrap_servers and the broker") from None
        await self._count(platform, shop.id, "accepted")
        return web.json_response({"status": "accepted"}), shop.id

    async def _count(self, platform: str, shop: str, outcome: str) -> None:
        try:
            await self._ledger.count_webhook(platform, shop, outcome)
        except RedisError:
            log.warning("could not count a %s webhook (%s): Redis unavailable", platform, outcome)


def delivery_key(header_id: str, raw: bytes) -> str:
    """What a delivery is known by: its delivery id and the digest of its body. A store's
    retry sends the same bytes under the same id, so it is a duplicate; but WooCommerce's id
    is `wp_hash(webhook id . current second)`, so two orders one webhook sends in the same
    second share an id, and must both count."""
    return f"{header_id}:{hashlib.sha256(raw).hexdigest()[:16]}"


def parse_delivery(module: ModuleType, topic: str, raw: bytes, shop: str, platform: str,
                   delivery_id: str, keys: CustomerKeys, now: datetime,
                   upsell_property: str = UPSELL_PROPERTY) -> events.Event | None:
    """The platform's parser, with every way it can refuse a body answered 400: a body that
    cannot be parsed must never be a 500, which the store would retry for days."""
    try:
        if module is offers:
            return offers.parse(raw, shop, platform, delivery_id, keys)
        return module.parse(  # type: ignore[no-any-return]
            topic, raw, shop, delivery_id, keys, now, upsell_property)
    except Rejected:
        raise
    except ValueError as exc:  # pydantic's ValidationError: valid JSON, wrong values
        reason = str(exc).splitlines()
        raise Rejected(400, " ".join(line.strip() for line in reason[:3])) from None
    except (TypeError, AttributeError, KeyError, IndexError, ArithmeticError) as exc:
        # A parser bug met a body it did not expect: refuse it, and say so loudly.
        log.error("%s parser failed on a %s body (%s); answered 400", module.__name__, topic,
                  type(exc).__name__, exc_info=True)
        raise Rejected(400, f"{topic} body could not be read ({type(exc).__name__})") from None


def _check_amounts(event: events.Event) -> None:
    """Amounts a store can really send: an order total or a refund is never negative (the
    events' own validation already bounds their size and decimal places)."""
    totals = [("order total", getattr(event, "total", None))]
    refunds = list(getattr(event, "refunds", ()) or ())
    if isinstance(event, events.RefundIssued):
        refunds.append(event.refund)
    totals += [(f"refund {r.refund_id}", r.amount) for r in refunds]
    for what, amount in totals:
        if amount is not None and amount < 0:
            raise Rejected(400, f"{what} is negative: {amount}")


def make_app(settings: Settings, producer: EventProducer, client: aredis.Redis) -> web.Application:
    receiver = Receiver(settings, producer, DeliveryLedger(client), Privacy(client))
    app = web.Application(client_max_size=settings.connector.max_body_bytes)

    async def shopify_webhook(request: web.Request) -> web.Response:
        return await receiver.handle("shopify", request)

    async def woocommerce_webhook(request: web.Request) -> web.Response:
        return await receiver.handle("woocommerce", request)

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app.router.add_post("/webhooks/shopify", shopify_webhook)
    app.router.add_post("/webhooks/woocommerce", woocommerce_webhook)

    async def offers_webhook(request: web.Request) -> web.Response:
        return await receiver.handle("offers", request)

    app.router.add_post("/webhooks/offers", offers_webhook)
    app.router.add_get("/healthz", healthz)
    return app
