"""Hands events to Kafka with kafka-python (acks=all, idempotent) without blocking the
event loop: the blocking client lives on its own thread, and its delivery callbacks resolve
asyncio futures. A delivery is answered 2xx only once its future says the broker has it."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from kafka import KafkaProducer

from xsell_stream.config import KafkaSettings

log = logging.getLogger(__name__)


class BrokerUnavailable(Exception):
    """The broker did not acknowledge in time; the store should retry."""


class EventProducer:
    def __init__(self, kafka: KafkaSettings, timeout_seconds: float) -> None:
        self._kafka = kafka
        self._timeout = timeout_seconds
        self._producer: KafkaProducer | None = None
        # When the client last proved it works (an acknowledgement) or was made.
        self._healthy_at = time.monotonic()
        self._lock = threading.Lock()
        # One thread: kafka-python's send() may block on metadata while the broker is away.
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="kafka-send")

    def _client(self) -> KafkaProducer:
        with self._lock:
            if self._producer is None:
                self._healthy_at = time.monotonic()
                self._producer = KafkaProducer(
                    bootstrap_servers=self._kafka.bootstrap_servers,
                    client_id="xsell-stream-connector",
                    acks="all",
                    enable_idempotence=True,
                    linger_ms=2,
                    max_block_ms=int(self._timeout * 1000),
                    request_timeout_ms=int(self._timeout * 1000),
                    delivery_timeout_ms=int(self._timeout * 1000) + 1000,
                    # Without a broker the constructor itself blocks this long.
                    bootstrap_timeout_ms=int(self._timeout * 1000),
                )
            return self._producer

    def _drop_client(self) -> None:
        with self._lock:
            producer, self._producer = self._producer, None
        if producer is not None:
            try:
                producer.close(timeout=1)
            except Exception:  # noqa: BLE001 - closing a broken client must not raise
                log.debug("closing a broken producer failed", exc_info=True)

    async def send(self, topic: str, key: bytes, value: bytes) -> Any:
        """Produce one record and wait for the broker's acknowledgement."""
        loop = asyncio.get_running_loop()
        acked: asyncio.Future[Any] = loop.create_future()

        def resolve(result: Any, failed: bool) -> None:
            if acked.done():
                return
            if failed:
                acked.set_exception(BrokerUnavailable(str(result)))
            else:
                self._healthy_at = time.monotonic()
                acked.set_result(result)

        def submit() -> None:
            future = self._client().send(topic, key=key, value=value)
            future.add_callback(lambda md: loop.call_soon_threadsafe(resolve, md, False))
            future.add_errback(lambda exc: loop.call_soon_threadsafe(resolve, exc, True))

        try:
            async with asyncio.timeout(self._timeout):
                await loop.run_in_executor(self._thread, submit)
                return await acked
        except (TimeoutError, BrokerUnavailable) as exc:
            # After a broker restart kafka-python's idempotent producer can stay wedged,
            # timing out forever (seen with Apache Kafka 4.1): with no acknowledgement for
            # two timeouts, start over with a fresh client.
            if time.monotonic() - self._healthy_at > 2 * self._timeout:
                log.warning("no acknowledgement from Kafka for %.0fs; reconnecting",
                            time.monotonic() - self._healthy_at)
                await loop.run_in_executor(None, self._drop_client)
            raise BrokerUnavailable(str(exc) or "no acknowledgement in time") from exc
        except Exception as exc:  # noqa: BLE001 - any client failure means "not handed over"
            # NoBrokersAvailable and friends: start over with a fresh client next time.
            await loop.run_in_executor(None, self._drop_client)
            raise BrokerUnavailable(f"{type(exc).__name__}: {exc}") from exc

    def close(self) -> None:
        self._drop_client()
        self._thread.shutdown(wait=False)
