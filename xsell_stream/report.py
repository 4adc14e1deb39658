"""`report`: the figures of one shop for the period containing a date."""

from __future__ import annotations

import time
from datetime import date
from decimal import Decimal
from typing import Any

from .config import Settings
from .metrics import FIGURE_NAMES, MONEY_FIGURES, figures
from .periods import clv_span, span
from .store import AggregateReader


def figures_for(settings: Settings, reader: AggregateReader, shop_id: str, period: str,
                day: date) -> dict[str, Any]:
    """One report object: the figures of METRICS.md plus shop, period, start, end, currency."""
    shop = settings.shop(shop_id)
    if shop is None:
        known = ", ".join(s.id for s in settings.shops) or "none"
        raise KeyError(f"shop {shop_id!r} is not in the config (configured: {known})")
    the_span = span(period, day)
    counts = reader.span(shop.id, the_span)
    clv = clv_span(the_span)
    clv_counts = counts if the_span == clv else reader.days(shop.id, clv.days())
    values = figures(counts, clv_counts, Decimal(str(shop.lifespan_years)))
    return {
        "shop": shop.id,
        "period": period,
        "start": the_span.start.isoformat(),
        "end": the_span.end.isoformat(),
        "currency": shop.currency or reader.currency(shop.id),
        **values,
    }


def as_json(report: dict[str, Any]) -> dict[str, Any]:
    """Money as decimal strings, ratios as numbers, undefined as null."""
    return {k: (str(v) if isinstance(v, Decimal) else v) for k, v in report.items()}


def settle(settings: Settings, reader: AggregateReader, seconds: float) -> int:
    """Wait until every accepted delivery has been applied; returns how many still are not."""
    deadline = time.monotonic() + seconds
    while True:
        pending = sum(reader.pending(s.id) for s in settings.shops)
        if pending == 0 or time.monotonic() >= deadline:
            return pending
        time.sleep(0.2)


def as_table(report: dict[str, Any]) -> str:
    lines = [f"{report['shop']}  {report['period']} {report['start']} .. {report['end']}"
             f"  ({report['currency'] or 'no currency yet'})"]
    for name in FIGURE_NAMES:
        lines.append(f"  {name:<28} {format_value(name, report[name])}")
    return "\n".join(lines)


def format_value(name: str, value: Any) -> str:
    if value is None:
        return "n/a"
    if name in MONEY_FIGURES:
        return f"{value:,.2f}"
    if isinstance(value, float):
        return f"{value:.1%}"
    return f"{value:,}"
