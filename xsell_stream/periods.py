"""Calendar periods and trailing windows in a shop's reporting time zone: pure functions.

A bucket id names one calendar period: `day:2011-03-04`, `week:2011-W09` (ISO week),
`month:2011-03`, `quarter:2011-Q1`, `year:2011`. An order belongs to the five buckets that
contain its creation instant seen in the shop's zone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Literal
from zoneinfo import ZoneInfo

CalendarPeriod = Literal["day", "week", "month", "quarter", "year"]
CALENDAR_PERIODS: tuple[CalendarPeriod, ...] = ("day", "week", "month", "quarter", "year")
WINDOWS: dict[str, int] = {"7d": 7, "30d": 30, "90d": 90, "365d": 365}
CLV_WINDOW_DAYS = 365


@dataclass(frozen=True)
class Span:
    """A named run of local calendar days, both ends included."""

    period: str  # "month", "30d", …
    start: date
    end: date
    bucket: str | None  # the calendar bucket id; None for trailing windows

    def days(self) -> list[date]:
        return [self.start + timedelta(days=i) for i in range((self.end - self.start).days + 1)]


def local_date(instant: datetime, zone: ZoneInfo) -> date:
    if instant.tzinfo is None:
        raise ValueError("instant must carry a time zone")
    return instant.astimezone(zone).date()


def day_bucket(day: date) -> str:
    return f"day:{day.isoformat()}"


def calendar_span(period: CalendarPeriod, day: date) -> Span:
    if period == "day":
        return Span("day", day, day, day_bucket(day))
    if period == "week":
        iso_year, iso_week, weekday = day.isocalendar()
        start = day - timedelta(days=weekday - 1)
        return Span("week", start, start + timedelta(days=6), f"week:{iso_year}-W{iso_week:02d}")
    if period == "month":
        start = day.replace(day=1)
        end = _next_month(start) - timedelta(days=1)
        return Span("month", start, end, f"month:{day.year}-{day.month:02d}")
    if period == "quarter":
        q = (day.month - 1) // 3
        start = date(day.year, 3 * q + 1, 1)
        end = _next_month(_next_month(_next_month(start))) - timedelta(days=1)
        return Span("quarter", start, end, f"quarter:{day.year}-Q{q + 1}")
    if period == "year":
        return Span("year", date(day.year, 1, 1), date(day.year, 12, 31), f"year:{day.year}")
    raise ValueError(f"unknown period {period!r}")


def window_span(window: str, day: date) -> Span:
    """The N local calendar days ending with, and including, `day`."""
    n = WINDOWS[window]
    return Span(window, day - timedelta(days=n - 1), day, None)


def span(period: str, day: date) -> Span:
    if period in CALENDAR_PERIODS:
        return calendar_span(period, day)  # type: ignore[arg-type]
    if period in WINDOWS:
        return window_span(period, day)
    known = ", ".join([*CALENDAR_PERIODS, *WINDOWS])
    raise ValueError(f"unknown period {period!r}; use one of {known}")


def clv_span(of: Span) -> Span:
    """Customer lifetime value is taken over the 365 days ending on the period's last day."""
    return window_span("365d", of.end)


def buckets_of(instant: datetime, zone: ZoneInfo) -> list[str]:
    """The calendar buckets an order created at `instant` belongs to."""
    day = local_date(instant, zone)
    return [calendar_span(p, day).bucket for p in CALENDAR_PERIODS]  # type: ignore[misc]


def _next_month(first: date) -> date:
    return date(first.year + first.month // 12, first.month % 12 + 1, 1)
