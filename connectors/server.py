"""Runs the receiver until SIGTERM or Ctrl-C."""

from __future__ import annotations

import asyncio
import logging
import signal

import redis.asyncio as aredis
from aiohttp import web

from xsell_stream.broker import ensure_topics
from xsell_stream.config import Settings

from .app import make_app
from .producer import EventProducer

log = logging.getLogger("xsell_stream.connector")


async def serve(settings: Settings) -> None:
    kafka = settings.kafka_settings
    try:
        await asyncio.to_thread(ensure_topics, kafka, 30.0)
    except RuntimeError as exc:
        # Keep serving: deliveries get 503 until the broker is back, and the store retries.
        log.warning("%s", exc)
    producer = EventProducer(kafka, settings.connector.produce_timeout_seconds)
    client = aredis.Redis.from_url(settings.redis_url)
    runner = web.AppRunner(make_app(settings, producer, client), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.connector.host, settings.connector.port)
    await site.start()
    log.info("connector listening on http://%s:%d", settings.connector.host,
             settings.connector.port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("connector stopping")
    await runner.cleanup()  # finishes the deliveries in flight first
    producer.close()
    await client.aclose()


def run(settings: Settings) -> None:
    asyncio.run(serve(settings))
