from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

from xsell_stream.periods import buckets_of, calendar_span, clv_span, span


def test_buckets_in_the_shop_zone_not_utc():
    # 2011-03-31 23:30 UTC is already April 1st in Berlin (CEST, UTC+2).
    instant = datetime(2011, 3, 31, 23, 30, tzinfo=UTC)
    assert buckets_of(instant, ZoneInfo("Europe/Berlin")) == [
        "day:2011-04-01", "week:2011-W13", "month:2011-04", "quarter:2011-Q2", "year:2011"]
    assert buckets_of(instant, ZoneInfo("Europe/London")) == [
        "day:2011-04-01", "week:2011-W13", "month:2011-04", "quarter:2011-Q2", "year:2011"]
    assert buckets_of(instant, ZoneInfo("UTC")) == [
        "day:2011-03-31", "week:2011-W13", "month:2011-03", "quarter:2011-Q1", "year:2011"]


def test_iso_week_across_the_year_boundary():
    s = calendar_span("week", date(2011, 1, 1))  # a Saturday in ISO week 2010-W52
    assert (s.bucket, s.start, s.end) == ("week:2010-W52", date(2010, 12, 27), date(2011, 1, 2))


def test_month_quarter_year_bounds():
    assert calendar_span("month", date(2012, 2, 10)).end == date(2012, 2, 29)
    q = calendar_span("quarter", date(2011, 12, 9))
    assert (q.bucket, q.start, q.end) == ("quarter:2011-Q4", date(2011, 10, 1), date(2011, 12, 31))
    y = calendar_span("year", date(2011, 6, 1))
    assert (y.bucket, y.start, y.end) == ("year:2011", date(2011, 1, 1), date(2011, 12, 31))


def test_trailing_windows_end_on_and_include_the_date():
    w = span("30d", date(2011, 3, 30))
    assert (w.start, w.end, len(w.days()), w.bucket) == (date(2011, 3, 1), date(2011, 3, 30), 30,
                                                          None)


def test_clv_window_is_365_days_ending_on_the_periods_last_day():
    c = clv_span(calendar_span("month", date(2011, 12, 5)))
    assert (c.start, c.end, len(c.days())) == (date(2011, 1, 1), date(2011, 12, 31), 365)
