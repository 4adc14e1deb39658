"""Free ports for the services tests start, chosen below the kernel's ephemeral range.

A port the kernel hands out for `bind(0)` lies in the ephemeral range
(/proc/sys/net/ipv4/ip_local_port_range, 32768-60999 by default), which is also where every
outgoing connection takes its local port from. In the seconds between choosing a port and a
server binding it, a client connection (a Kafka or Redis client, a replay) could take it,
and the server then fails with "address already in use". Ports below that range are never
given to outgoing connections.
"""

from __future__ import annotations

import random
import socket
from pathlib import Path

_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")


def _ephemeral_low() -> int:
    try:
        return int(_RANGE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return 32768


def free_port() -> int:
    low = min(_ephemeral_low(), 32768)
    for _ in range(200):
        port = random.randrange(20000, low)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port between 20000 and {low}")
