"""The xsell-stream Grafana dashboard, as code (grafana-foundation-sdk).

    python grafana/generate.py          writes grafana/dashboards/xsell-stream.json
    python grafana/generate.py --check  exits 1 when the committed JSON differs

The committed JSON is what Grafana loads (see grafana/provisioning/); tests/deploy checks that
it matches this file and runs every query in it against a real Prometheus.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass
from pathlib import Path

from grafana_foundation_sdk.builders import common as common_b
from grafana_foundation_sdk.builders import dashboard as dash
from grafana_foundation_sdk.builders import prometheus, stat, timeseries
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common
from grafana_foundation_sdk.models.dashboard import (
    DashboardCursorSync,
    DataSourceRef,
    VariableOption,
    VariableRefresh,
    VariableSort,
)

OUT = Path(__file__).resolve().parent / "dashboards" / "xsell-stream.json"
UID = "xsell-stream"
DATASOURCE = DataSourceRef(type_val="prometheus", uid="${datasource}")
# The figures' period / window; trailing windows first, 30d (the alerts' window) the default.
PERIODS = ["30d", "7d", "90d", "365d", "day", "week", "month", "quarter", "year"]
SEL = 'shop=~"$shop", period="$period"'
RULES_SHOP = 'shop=~"$shop"'


@dataclass(frozen=True)
class Figure:
    title: str
    metric: str
    unit: str
    description: str
    money: bool = False


FIGURES = [
    Figure("Repeat purchase rate", "xsell_repeat_purchase_ratio", "percentunit",
           "Repeat customers / customers: customers with two or more orders in the period."),
    Figure("Cross-sell ratio", "xsell_cross_sell_ratio", "percentunit",
           "Customers whose orders in the period hold two or more distinct products / "
           "customers."),
    Figure("Upsell conversion rate", "xsell_upsell_conversion_ratio", "percentunit",
           "Customers who accepted an upsell offer / customers presented one. No value while "
           "no customer was presented an offer in the period."),
    Figure("Average order value", "xsell_average_order_value", "none",
           "Revenue / orders, in the shop currency (net of refunds).", money=True),
    Figure("Revenue per customer", "xsell_revenue_per_customer", "none",
           "Revenue of the non-anonymous orders / customers, in the shop currency.", money=True),
    Figure("Customer lifetime value", "xsell_customer_lifetime_value", "none",
           "Non-anonymous revenue / customers over the 365 days ending on the period's last "
           "day, times the shop's customer lifespan (years), in the shop currency.", money=True),
]

COUNTS = [
    ("Orders", "xsell_orders", "Orders that count (not test, cancelled, voided or unplaced)."),
    ("Customers", "xsell_customers", "Distinct customers with an order in the period."),
    ("Repeat customers", "xsell_repeat_customers", "Customers with two or more orders."),
    ("Multi-product customers", "xsell_multi_product_customers",
     "Customers whose orders hold two or more distinct products."),
    ("Upsell offered customers", "xsell_upsell_offered_customers",
     "Customers presented at least one upsell offer."),
    ("Upsell accepted customers", "xsell_upsell_accepted_customers",
     "Customers who accepted at least one upsell offer."),
]


def query(expr: str, legend: str, ref: str = "A") -> prometheus.Dataquery:
    return (prometheus.Dataquery().expr(expr).legend_format(legend).ref_id(ref)
            .datasource(DATASOURCE).range())


def legend() -> common_b.VizLegendOptions:
    return (common_b.VizLegendOptions().display_mode(common.LegendDisplayMode.TABLE)
            .placement(common.LegendPlacement.RIGHT).show_legend(True)
            .calcs(["lastNotNull"]))


def series_panel(title: str, description: str, unit: str, targets: list[prometheus.Dataquery],
                 width: int = 8, height: int = 7, stacked: bool = False,
                 decimals: int | None = None) -> timeseries.Panel:
    panel = (timeseries.Panel().title(title).description(description).datasource(DATASOURCE)
             .unit(unit).span(width).height(height).legend(legend()).fill_opacity(10)
             .line_width(1).show_points(common.VisibilityMode.NEVER))
    if decimals is not None:
        panel = panel.decimals(decimals)
    if stacked:
        panel = panel.stacking(common_b.StackingConfig().mode(common.StackingMode.NORMAL))
    for target in targets:
        panel = panel.with_target(target)
    return panel


def stat_panel(title: str, description: str, unit: str, target: prometheus.Dataquery,
               width: int = 4, height: int = 7, decimals: int | None = None) -> stat.Panel:
    panel = (stat.Panel().title(title).description(description).datasource(DATASOURCE)
             .unit(unit).span(width).height(height)
             .graph_mode(common.BigValueGraphMode.AREA)  # the sparkline
             .color_mode(common.BigValueColorMode.VALUE)
             .text_mode(common.BigValueTextMode.VALUE_AND_NAME)
             .reduce_options(common_b.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
             .with_target(target))
    if decimals is not None:
        panel = panel.decimals(decimals)
    return panel


def figure_panels(fig: Figure) -> list[stat.Panel | timeseries.Panel]:
    expr = f"{fig.metric}{{{SEL}}}"
    name = "{{shop}} ({{currency}})" if fig.money else "{{shop}}"
    decimals = 2 if fig.money else None
    targets = [query(expr, name)]
    if fig.metric == "xsell_repeat_purchase_ratio":
        # What the repeat-rate alert compares: the 30-day rate's level at this time of week
        # over the last four weeks, and the rate's Wilson upper bound.
        targets += [
            query(f"xsell:repeat_purchase_rate_30d:baseline_4w{{{RULES_SHOP}}}",
                  "{{shop}} 30d baseline (same time, last 4 weeks)", "B"),
            query(f"xsell:repeat_purchase_rate_30d:wilson_upper{{{RULES_SHOP}}}",
                  "{{shop}} 30d upper bound (99%)", "C"),
        ]
    return [
        stat_panel(fig.title, fig.description, fig.unit, query(expr, name), decimals=decimals),
        series_panel(f"{fig.title} over time", fig.description, fig.unit, targets,
                     decimals=decimals),
    ]


def count_panels() -> list[timeseries.Panel]:
    panels = [
        series_panel(title, help_text + " Period: $period.", "short",
                     [query(f"{metric}{{{SEL}}}", "{{shop}}")])
        for title, metric, help_text in COUNTS
    ]
    panels.append(series_panel(
        "Revenue", "Revenue of the period's orders net of refunds, in the shop currency.",
        "none", [query(f"xsell_revenue{{{SEL}}}", "{{shop}} ({{currency}})")], decimals=2))
    return panels


def returning_panels() -> list[timeseries.Panel]:
    return [series_panel(
        "One-order vs repeat customers",
        "Customers of the period split into those with one order and those with two or more "
        "(repeat customers). First-ever versus returning customers across periods are not "
        "exported yet.",
        "short",
        [query(f"sum by (shop) (xsell_customers{{{SEL}}} - xsell_repeat_customers{{{SEL}}})",
               "{{shop}} one order", "A"),
         query(f"sum by (shop) (xsell_repeat_customers{{{SEL}}})", "{{shop}} repeat", "B")],
        width=24, height=8, stacked=True)]


def pipeline_panels() -> list[stat.Panel | timeseries.Panel]:
    shop = 'shop=~"$shop"'
    zero = f"sum by (shop) (0 * xsell_pending_deliveries{{{shop}}})"
    return [
        series_panel(
            "Webhooks by outcome",
            "Deliveries per second the connector answered, by outcome. Rejections for an "
            "unknown shop domain or a bad signature show as shop \"unknown\".",
            "reqps",
            [query('sum by (shop, outcome) (rate(xsell_webhooks_total{shop=~"$shop|unknown"}'
                   "[$__rate_interval]))", "{{shop}} {{outcome}}")]),
        series_panel(
            "Events processed by outcome",
            "Events per second the worker processed: applied, unchanged (duplicate) or stale "
            "(an older state of an order).",
            "ops",
            [query(f"sum by (shop, outcome) (rate(xsell_events_total{{{shop}}}"
                   "[$__rate_interval]))", "{{shop}} {{outcome}}")]),
        series_panel(
            "Dead letters (last hour)",
            "Events the worker could not apply in the last hour (sent to the dead-letter "
            "topic); 0 for shops that never had one.",
            "short",
            [query(f"sum by (shop) (increase(xsell_dead_letters_total{{{shop}}}[1h])) "
                   f"or {zero}", "{{shop}}")]),
        stat_panel(
            "Time since last event",
            "Seconds since the worker last applied an event for the shop.",
            "s", query(f"time() - max by (shop) (xsell_last_event_timestamp_seconds{{{shop}}})",
                       "{{shop}}"), width=6),
        series_panel(
            "Deliveries not yet applied",
            "Deliveries the connector accepted (answered 2xx) that the worker has not applied "
            "to Redis yet, per shop: the lag end to end.",
            "short",
            [query(f"sum by (shop) (xsell_pending_deliveries{{{shop}}})", "{{shop}}")],
            width=6),
        series_panel(
            "Consumer lag (events not committed)",
            "Events in the Kafka topic that the worker's consumer group has not committed "
            "yet, per partition (all shops share the topic). Read by the exporter every "
            "lag_interval_seconds.",
            "short",
            [query("sum by (partition) (xsell_consumer_lag_events)", "partition {{partition}}")],
            width=6),
        stat_panel(
            "Exporter and Redis",
            "1 when Prometheus reaches the exporter (up) and the exporter reads Redis.",
            "short",
            query('min(up{job="xsell-exporter"}) * min(xsell_redis_up)', "up"), width=6),
    ]


def variables() -> list:  # type: ignore[type-arg]
    return [
        dash.DatasourceVariable("datasource").label("Data source").type("prometheus"),
        dash.QueryVariable("shop").label("Shop").datasource(DATASOURCE)
        .query("label_values(xsell_orders, shop)").multi(True).include_all(True)
        .all_value(".*").refresh(VariableRefresh.ON_DASHBOARD_LOAD)
        .sort(VariableSort.ALPHABETICAL_ASC),
        dash.CustomVariable("period").label("Period / window")
        .values(",".join(PERIODS))
        .current(VariableOption(selected=True, text="30d", value="30d")),
    ]


def build() -> dict[str, object]:
    board = (dash.Dashboard("xsell-stream: cross-sell and retention").uid(UID)
             .tags(["xsell-stream"]).refresh("1m").time("now-7d", "now").timezone("browser")
             .tooltip(DashboardCursorSync.CROSSHAIR).editable()
             .description("The six figures of METRICS.md per shop, the counts behind them, and "
                          "the pipeline that computes them."))
    for variable in variables():
        board = board.with_variable(variable)
    board = board.with_row(dash.Row("The six figures ($period)"))
    for fig in FIGURES:
        for panel in figure_panels(fig):
            board = board.with_panel(panel)
    board = board.with_row(dash.Row("Counts behind the figures ($period)"))
    for panel in count_panels():
        board = board.with_panel(panel)
    board = board.with_row(dash.Row("One-order vs repeat customers ($period)"))
    for panel in returning_panels():
        board = board.with_panel(panel)
    board = board.with_row(dash.Row("Pipeline"))
    for panel in pipeline_panels():
        board = board.with_panel(panel)
    return json.loads(JSONEncoder(sort_keys=True).encode(board.build()))


def render() -> str:
    return json.dumps(build(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="exit 1 when the committed JSON differs from the code")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not OUT.exists() or OUT.read_text() != text:
            print(f"{OUT} is out of date: run `make dashboard`", file=sys.stderr)
            return 1
        return 0
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(text)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
