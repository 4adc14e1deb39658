"""The one error a connector raises for a delivery it cannot take."""

from __future__ import annotations


class Rejected(Exception):
    """A delivery that is answered with `status` and a one-line `reason`; nothing is produced."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
