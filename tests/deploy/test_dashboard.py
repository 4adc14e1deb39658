"""The dashboard: the committed JSON is what grafana/generate.py makes, and it has the panels,
variables and provisioning that issue 5 asks for."""

from __future__ import annotations

import importlib.util
import json
import re
import sys

import yaml

from .conftest import DASHBOARD, GRAFANA


def generator():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("xsell_grafana_generate",
                                                  GRAFANA / "generate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_committed_json_is_what_the_code_generates():
    assert DASHBOARD.read_text() == generator().render(), "run `make dashboard` and commit"


def test_check_mode_fails_when_the_json_differs(tmp_path, monkeypatch):
    module = generator()
    stale = tmp_path / "xsell-stream.json"
    stale.write_text(module.render().replace("Repeat purchase rate", "Repeat rate", 1))
    monkeypatch.setattr(module, "OUT", stale)
    assert module.main(["--check"]) == 1
    stale.write_text(module.render())
    assert module.main(["--check"]) == 0


def panels() -> list[dict]:
    return json.loads(DASHBOARD.read_text())["panels"]


def test_variables_shop_multi_and_period_defaulting_to_30d():
    board = json.loads(DASHBOARD.read_text())
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert list(variables) == ["datasource", "shop", "period"]
    shop = variables["shop"]
    assert (shop["type"], shop["multi"], shop["includeAll"], shop["query"]) == (
        "query", True, True, "label_values(xsell_orders, shop)")
    period = variables["period"]
    assert period["query"].split(",") == ["30d", "7d", "90d", "365d", "day", "week", "month",
                                         "quarter", "year"]
    assert period["current"]["value"] == "30d"
    assert board["uid"] == "xsell-stream"


def test_rows_and_panels():
    rows: dict[str, list[dict]] = {}
    current = None
    for panel in panels():
        if panel["type"] == "row":
            current = panel["title"]
            rows[current] = []
        else:
            assert current is not None
            rows[current].append(panel)
    assert list(rows) == ["The six figures ($period)", "Counts behind the figures ($period)",
                          "One-order vs repeat customers ($period)", "Pipeline"]
    six = rows["The six figures ($period)"]
    figures = ["Repeat purchase rate", "Cross-sell ratio", "Upsell conversion rate",
               "Average order value", "Revenue per customer", "Customer lifetime value"]
    # Each figure: a stat with its sparkline, then a time series.
    assert [(p["type"], p["title"]) for p in six] == [
        pair for f in figures for pair in (("stat", f), ("timeseries", f + " over time"))]
    for p in six:
        if p["type"] == "stat":
            assert p["options"]["graphMode"] == "area"
    assert [p["title"] for p in rows["Counts behind the figures ($period)"]] == [
        "Orders", "Customers", "Repeat customers", "Multi-product customers",
        "Upsell offered customers", "Upsell accepted customers", "Revenue"]
    assert [p["title"] for p in rows["Pipeline"]] == [
        "Webhooks by outcome", "Events processed by outcome", "Dead letters (last hour)",
        "Time since last event", "Deliveries not yet applied",
        "Consumer lag (events not committed)", "Exporter and Redis"]
    # Every panel queries the Prometheus of the datasource variable; no two panels overlap.
    cells: set[tuple[int, int]] = set()
    for p in panels():
        g = p["gridPos"]
        here = {(x, y) for x in range(g["x"], g["x"] + g["w"])
                for y in range(g["y"], g["y"] + g["h"])}
        assert not cells & here, p["title"]
        cells |= here
        assert g["x"] + g["w"] <= 24
        for t in p.get("targets", []):
            assert t["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
            assert t["expr"] and t["refId"]


def test_figure_and_count_queries_follow_the_variables():
    for p in panels():
        for t in p.get("targets", []):
            for selector in re.findall(r"xsell_[a-z_]+\{([^}]*)\}", t["expr"]):
                assert 'shop=~"$shop' in selector, (p["title"], t["expr"])


def test_provisioning_points_at_the_dashboard_and_prometheus():
    datasources = yaml.safe_load(
        (GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    (ds,) = datasources["datasources"]
    assert (ds["type"], ds["url"], ds["isDefault"]) == ("prometheus", "http://prometheus:9090",
                                                        True)
    providers = yaml.safe_load(
        (GRAFANA / "provisioning" / "dashboards" / "xsell-stream.yml").read_text())
    (provider,) = providers["providers"]
    assert provider["type"] == "file"
    assert provider["options"]["path"] == "/var/lib/grafana/dashboards/xsell-stream"
