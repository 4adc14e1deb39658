"""`replay`: posts recorded deliveries (`.jsonl` or `.jsonl.gz`, one delivery a line:
{"seq", "platform", "path", "headers", "body"}) with their headers and exact body bytes.

Files are merged by `seq`, the order the stores sent them. A delivery answered 5xx or not at
all is retried with a growing pause, as a store would; 4xx is final.
"""

from __future__ import annotations

import asyncio
import gzip
import heapq
import json
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp


@dataclass(frozen=True)
class Delivery:
    seq: int
    path: str
    headers: dict[str, str]
    body: bytes


def read_deliveries(path: Path) -> Iterator[Delivery]:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8") as lines:  # type: ignore[operator]
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                d = json.loads(line)
                yield Delivery(int(d["seq"]), str(d["path"]), dict(d["headers"]),
                               d["body"].encode("utf-8"))
            except (ValueError, KeyError, TypeError) as exc:
                raise ValueError(f"{path}:{number}: not a recorded delivery ({exc})") from None


def merged(paths: Iterable[Path]) -> Iterator[Delivery]:
    return heapq.merge(*(read_deliveries(p) for p in paths), key=lambda d: d.seq)


@dataclass
class Progress:
    """Prints a line at most every `every` seconds."""

    out: Any = sys.stderr
    every: float = 2.0
    done: int = 0
    started: float = 0.0
    _last: float = 0.0

    def tick(self, force: bool = False) -> None:
        now = time.monotonic()
        if not self.started:
            self.started = self._last = now
        if force or now - self._last >= self.every:
            self._last = now
            rate = self.done / max(now - self.started, 1e-9)
            print(f"replayed {self.done} deliveries ({rate:,.0f}/s)", file=self.out, flush=True)


async def replay(
    deliveries: Iterable[Delivery],
    url: str,
    concurrency: int = 8,
    retries: int = 8,
    progress: Progress | None = None,
    transform: Callable[[Delivery], Delivery] | None = None,
    rate: float = 0.0,
) -> Counter[int | str]:
    """Posts every delivery, at most `rate` a second when it is above 0 (a backfill that
    must not crowd out a shop's live webhooks); returns the count of final answers per HTTP
    status ("no answer" when the receiver never answered)."""
    statuses: Counter[int | str] = Counter()
    queue: asyncio.Queue[Delivery | None] = asyncio.Queue(maxsize=concurrency * 4)
    base = url.rstrip("/")
    progress = progress or Progress()
    timeout = aiohttp.ClientTimeout(total=60)

    async def post(session: aiohttp.ClientSession, d: Delivery) -> int | str:
        pause = 0.2
        status: int | str = "no answer"
        for attempt in range(retries + 1):
            try:
                async with session.post(base + d.path, data=d.body, headers=d.headers) as resp:
                    await resp.read()
                    status = resp.status
                    if status < 500:
                        return status
            except (aiohttp.ClientError, TimeoutError):
                status = "no answer"
            if attempt < retries:
                await asyncio.sleep(pause)
                pause = min(pause * 2, 10.0)
        return status

    async def sender(session: aiohttp.ClientSession) -> None:
        while (d := await queue.get()) is not None:
            statuses[await post(session, d)] += 1
            progress.done += 1
            progress.tick()

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout,
                                     skip_auto_headers=["Content-Type"]) as session:
        senders = [asyncio.create_task(sender(session)) for _ in range(concurrency)]
        started = time.monotonic()
        for n, d in enumerate(deliveries):
            if rate > 0 and (ahead := started + n / rate - time.monotonic()) > 0:
                await asyncio.sleep(ahead)
            await queue.put(transform(d) if transform else d)
        for _ in senders:
            await queue.put(None)
        await asyncio.gather(*senders)
    progress.tick(force=True)
    return statuses


def check_base_url(url: str) -> None:
    """The connector's base URL, or a ValueError saying what to give instead."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"--url {url!r} is not an http(s) URL; give the connector's base "
                         "URL, e.g. http://127.0.0.1:8080")
    if parts.path.strip("/") or parts.query:
        raise ValueError(f"--url {url!r} has a path; give the connector's base URL (e.g. "
                         f"{parts.scheme}://{parts.netloc}): the recordings carry the "
                         "/webhooks/... path")


async def _probe(url: str, seconds: float = 10.0) -> None:
    """Fails fast, with advice, when no connector answers: otherwise every delivery would
    wait out its retries first (minutes) before the replay could say so."""
    health = url.rstrip("/") + "/healthz"
    deadline = time.monotonic() + seconds
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        while True:
            try:
                async with session.get(health) as resp:
                    await resp.read()
                    return  # any answer: something listens there
            except (aiohttp.ClientError, TimeoutError) as exc:
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"no connector answers at {url} ({type(exc).__name__}); start it with "
                        "`xsell-stream up --config FILE`, or check --url against [connector] "
                        "host and port") from None
            await asyncio.sleep(0.5)


def replay_files(paths: list[Path], url: str, concurrency: int = 8,
                 retries: int = 8, rate: float = 0.0) -> Counter[int | str]:
    check_base_url(url)
    for p in paths:
        if not p.exists():
            raise FileNotFoundError(f"{p} not found")

    async def run() -> Counter[int | str]:
        await _probe(url)
        return await replay(merged(paths), url, concurrency, retries, rate=rate)

    return asyncio.run(run())
