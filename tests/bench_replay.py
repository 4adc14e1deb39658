"""Benchmark: the full replay of the shared recordings through a running stack.

Prints wall time, throughput, and the peak resident memory (VmHWM) of every process of the
stack. Run with `make bench` (not part of `make test`: figures, not assertions)."""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

from tests.conftest import (
    RECORDED_SHOPS,
    RECORDINGS,
    run_cli,
    start_stack,
    stop_stack,
    write_config,
)

FILES = [RECORDINGS / "shopify-northwind.jsonl.gz",
         RECORDINGS / "woocommerce-continental.jsonl.gz"]


def descendants(pid: int) -> list[int]:
    out = []
    for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split():
        out.append(int(child))
        out.extend(descendants(int(child)))
    return out


def peak_kib(pid: int) -> tuple[str, int]:
    status = Path(f"/proc/{pid}/status").read_text()
    cmd = Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ")
    hwm = next(int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM"))
    name = next((w for w in ("connector", "worker", "exporter", "redis-server", "tansu")
                 if w in cmd), "up")
    return name, hwm


def main() -> int:
    if not FILES[0].exists():
        print(f"{RECORDINGS} is absent; nothing to measure", file=sys.stderr)
        return 1
    with tempfile.TemporaryDirectory() as tmp:
        stack = start_stack(write_config(Path(tmp), RECORDED_SHOPS))
        try:
            started = time.monotonic()
            done = run_cli("replay", *map(str, FILES), "--url", stack.connector_url,
                           timeout=3600)
            posted = time.monotonic()
            stack.report(RECORDED_SHOPS[0]["id"], "month", "2011-12-01", settle=900)
            settled = time.monotonic()
            print(done.stdout.strip())
            print(f"replay (all answered): {posted - started:.1f} s, "
                  f"{33624 / (posted - started):.0f} deliveries/s")
            print(f"replay + settle (all applied): {settled - started:.1f} s")
            print("peak memory (VmHWM) per process:")
            for pid in [stack.process.pid, *descendants(stack.process.pid)]:
                name, hwm = peak_kib(pid)
                print(f"  {name:<14} {hwm / 1024:7.1f} MiB")
        finally:
            stop_stack(stack)
    return 0


if __name__ == "__main__":
    sys.exit(main())
