"""Every dashboard query and every alert expression, run by a real Prometheus (Debian's 2.42)
that scrapes the exporter of a running stack while recorded deliveries are replayed.

History the repeat-rate baseline and the no-events alert need (one to four weeks back) is
backfilled with `promtool tsdb create-blocks-from openmetrics`, for the same series the
exporter serves: one shop's baseline equals its current figures (no alert), the other's is
clearly higher (the drop alert's expression returns it), and a configured shop that received
nothing today had events at this time last week (the no-events expression returns it).
"""

from __future__ import annotations

import asyncio
import json
import math
import re
import signal
import subprocess
import time
import urllib.parse
import urllib.request
from collections import Counter
from pathlib import Path

import redis
import yaml
from prometheus_client.parser import text_string_to_metric_families

from xsell_stream import demo
from xsell_stream.replay import read_deliveries, replay
from xsell_stream.report import settle
from xsell_stream.store import AggregateReader

from ..conftest import RECORDED_SHOPS, SHOPIFY_SHOP, WOO_SHOP, free_port, wait_until
from .conftest import DASHBOARD, RULES

QUIET_SHOP = "quiet-corner.myshopify.com"
SHOPS = [*RECORDED_SHOPS, {"id": QUIET_SHOP, "platform": "shopify", "timezone": "UTC",
                           "lifespan_years": 3, "secrets": ["quiet-corner-secret"]}]
WEEK = 7 * 86400
Z = 2.326
Labels = frozenset[tuple[str, str]]


class Prometheus:
    def __init__(self, binary: str, directory: Path, target: str, rules: Path) -> None:
        self.binary = binary
        self.data = directory / "data"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = directory / "prometheus.yml"
        self.config.write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(rules)],
            "scrape_configs": [{"job_name": "xsell-exporter",
                                "static_configs": [{"targets": [target]}]}],
        }))
        self.log = directory / "prometheus.log"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as log:
            self.process = subprocess.Popen(
                [self.binary, f"--config.file={self.config}",
                 f"--storage.tsdb.path={self.data}", "--storage.tsdb.retention.time=60d",
                 f"--web.listen-address=127.0.0.1:{self.port}"],
                stdout=log, stderr=subprocess.STDOUT)
        wait_until(lambda: urllib.request.urlopen(self.url + "/-/ready", timeout=2).status == 200,
                   60, "prometheus")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            self.process.wait(60)

    def api(self, path: str, **params: str) -> dict:
        url = f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}"
        with urllib.request.urlopen(url, timeout=30) as resp:
            body = json.loads(resp.read())
        assert body["status"] == "success", body
        return body["data"]

    def instant(self, expr: str) -> dict[Labels, float]:
        data = self.api("query", query=expr)
        assert data["resultType"] == "vector", (expr, data["resultType"])
        out = {frozenset(r["metric"].items()): float(r["value"][1]) for r in data["result"]}
        assert len(out) == len(data["result"]), f"duplicate series for {expr}"
        return out

    def range(self, expr: str, start: float, end: float) -> dict[Labels, list[float]]:
        data = self.api("query_range", query=expr, start=f"{start:.3f}", end=f"{end:.3f}",
                        step="2")
        assert data["resultType"] == "matrix", (expr, data["resultType"])
        return {frozenset(r["metric"].items()): [float(v) for _, v in r["values"]]
                for r in data["result"]}


def scrape(url: str) -> dict[str, dict[Labels, float]]:
    """The exporter's samples by sample name (counters as name_total)."""
    with urllib.request.urlopen(url, timeout=30) as resp:
        text = resp.read().decode()
    out: dict[str, dict[Labels, float]] = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            # As Prometheus stores it: a label with an empty value is no label.
            labels = frozenset((k, v) for k, v in s.labels.items() if v != "")
            out.setdefault(s.name, {})[labels] = s.value
    return out


def wilson_upper(r: float, n: float) -> float:
    p, z2 = r / n, 5.410276
    return (p + z2 / (2 * n) + Z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))) / (1 + z2 / n)


def drop_z(r: float, n: float, r0: float, n0: float) -> float:
    pooled = (r + r0) / (n + n0)
    return (r0 / n0 - r / n) / math.sqrt(pooled * (1 - pooled) * (1 / n + 1 / n0))


def shop_of(labels: Labels) -> str:
    return dict(labels)["shop"]


def post_bad_signatures(url: str, count: int) -> Counter[int]:
    """Shopify deliveries from a shop domain that is not configured (with a wrong HMAC too):
    the connector rejects them under shop "unknown"."""
    first = next(d for d in read_deliveries(demo.sample_path())
                 if d.path.endswith("/shopify"))
    answers: Counter[int] = Counter()
    for i in range(count):
        headers = {**first.headers, "X-Shopify-Hmac-Sha256": "bm90IHRoZSBzaWduYXR1cmU=",
                   "X-Shopify-Shop-Domain": "stranger.myshopify.com",
                   "X-Shopify-Webhook-Id": f"forged-{i}"}
        req = urllib.request.Request(url + first.path, data=first.body, headers=headers,
                                     method="POST")
        try:
            urllib.request.urlopen(req, timeout=10)
            answers[200] += 1
        except urllib.error.HTTPError as exc:
            answers[exc.code] += 1
    return answers


def openmetrics_history(now: float, instance: str, period: str,
                        baselines: dict[tuple[str, str], tuple[int, int]]) -> str:
    """Customers and repeat customers at this time of week 1..4 weeks ago (from 10 minutes
    before to 20 minutes after, every 15 s), and the quiet shop's events a week ago."""
    common = f'instance="{instance}",job="xsell-exporter"'
    lines = []
    for metric, index in (("xsell_customers", 1), ("xsell_repeat_customers", 0)):
        lines.append(f"# TYPE {metric} gauge")
        for (shop, platform), counts in sorted(baselines.items()):
            labels = f'{common},period="{period}",platform="{platform}",shop="{shop}"'
            for weeks in (4, 3, 2, 1):
                for step in range(-40, 81):
                    lines.append(f"{metric}{{{labels}}} {counts[index]} "
                                 f"{int(now) - weeks * WEEK + 15 * step}")
    lines.append("# TYPE xsell_events counter")
    labels = f'{common},outcome="applied",shop="{QUIET_SHOP}"'
    for i, step in enumerate(range(-3 * 240, 81)):  # 3 hours before to 20 minutes after
        lines.append(f"xsell_events_total{{{labels}}} {i} {int(now) - WEEK + 15 * step}")
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


def substitute(expr: str, period: str, shop_regex: str) -> str:
    return (expr.replace("$shop", shop_regex).replace("$period", period)
            .replace("$__rate_interval", "30s"))


def test_every_panel_query_and_alert_expression_on_a_real_prometheus(
        make_stack, deploy_tools, tmp_path):
    started = time.time()
    stack = make_stack(SHOPS)
    before = scrape(stack.metrics_url)
    # The rules and the dashboard's default use the trailing 30-day window.
    period = "30d"
    assert {dict(k)["shop"] for k in before["xsell_customers"]
            if dict(k)["period"] == period} == {s["id"] for s in SHOPS}
    rules = RULES
    target = stack.metrics_url.removeprefix("http://").removesuffix("/metrics")
    prom = Prometheus(deploy_tools["prometheus"], tmp_path, target, rules)
    prom.start()
    try:
        wait_until(lambda: prom.instant('up{job="xsell-exporter"}') != {}, 30, "first scrape")

        # The replay, while Prometheus scrapes every second.
        assert post_bad_signatures(stack.connector_url, 1) == Counter({401: 1})
        sample = demo.sample_path()
        days = demo.shift_days(sample, demo.today_in("Europe/London"))
        statuses = asyncio.run(replay(read_deliveries(sample), stack.connector_url,
                                      concurrency=8, transform=lambda d: demo.shifted(d, days)))
        assert statuses == Counter({200: 1843})
        time.sleep(3)
        assert post_bad_signatures(stack.connector_url, 10) == Counter({401: 10})
        client = redis.Redis.from_url(stack.settings.redis_url)
        assert settle(stack.settings, AggregateReader(client), 120) == 0
        client.close()
        # Customer lifetime value is cached by the exporter for clv_cache_seconds (60 s): wait
        # until it reflects the replay for both shops.

        def clv_shops() -> set[str]:
            clv = scrape(stack.metrics_url).get("xsell_customer_lifetime_value", {})
            return {shop_of(k) for k in clv if dict(k)["period"] == period}

        wait_until(lambda: clv_shops() == {SHOPIFY_SHOP, WOO_SHOP}, 90, "CLV after the replay")
        time.sleep(3)
        replayed = time.time()
        metrics = scrape(stack.metrics_url)

        # The history, backfilled while Prometheus is stopped.
        def counts(shop: str) -> tuple[int, int]:
            def one(name: str) -> int:
                (value,) = [v for k, v in metrics[name].items()
                            if shop_of(k) == shop and dict(k)["period"] == period]
                return int(value)
            return one("xsell_repeat_customers"), one("xsell_customers")

        now_counts = {shop: counts(shop) for shop in (SHOPIFY_SHOP, WOO_SHOP)}
        drop_shop = max(now_counts, key=lambda s: now_counts[s][1])
        stable_shop = WOO_SHOP if drop_shop == SHOPIFY_SHOP else SHOPIFY_SHOP
        r, n = now_counts[drop_shop]
        assert n >= 50, now_counts
        r0 = min(n, round(n * (r / n + 0.25)))
        assert wilson_upper(r, n) < 0.8 * r0 / n and drop_z(r, n, r0, n) > Z
        platforms = {s["id"]: str(s["platform"]) for s in SHOPS}
        baselines = {(drop_shop, platforms[drop_shop]): (r0, n),
                     (stable_shop, platforms[stable_shop]): now_counts[stable_shop]}
        print(f"[now {now_counts}; baselines {baselines}]")
        prom.stop()
        history = tmp_path / "history.om"
        history.write_text(openmetrics_history(time.time(), target, period, baselines))
        done = subprocess.run([deploy_tools["promtool"], "tsdb", "create-blocks-from",
                               "openmetrics", str(history), str(prom.data)],
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        prom.start()
        wait_until(lambda: len(prom.instant("xsell:repeat_purchase_rate_30d:baseline_4w")) == 2,
                   60, "the recording rules over the backfilled history")
        time.sleep(3)

        # No rule failed to evaluate on the real data.
        groups = prom.api("rules")["groups"]
        assert sum(len(g["rules"]) for g in groups) == 19
        for group in groups:
            for rule in group["rules"]:
                assert rule["health"] == "ok", (rule["name"], rule.get("lastError"))

        end = time.time()
        check_panels(prom, stack.metrics_url, metrics, period, started, end,
                     {drop_shop: (r0, n), stable_shop: now_counts[stable_shop]}, now_counts)
        check_alerts(prom, drop_shop, platforms[drop_shop], replayed)
    finally:
        prom.stop()
    print(f"[live Prometheus test: {time.time() - started:.1f}s]")


def check_panels(prom: Prometheus, metrics_url: str, metrics: dict[str, dict[Labels, float]],
                 period: str, start: float, end: float,
                 baselines: dict[str, tuple[int, int]],
                 now_counts: dict[str, tuple[int, int]]) -> None:
    board = json.loads(DASHBOARD.read_text())
    targets = [(p["title"], t) for p in board["panels"] for t in p.get("targets", [])]
    assert len(targets) == 30
    all_shops = {s["id"] for s in SHOPS}
    # Figures and counts: Prometheus returns exactly the exporter's samples for the period.
    allowed_empty = {"xsell_upsell_conversion_ratio"}  # the sample has no upsell offers
    checked = Counter[str]()
    for title, target in targets:
        for shop_regex, shops in ((".*", all_shops),
                                  (re.escape(SHOPIFY_SHOP).replace("\\", "\\\\"),
                                   {SHOPIFY_SHOP})):
            expr = substitute(target["expr"], period, shop_regex)
            got = prom.instant(expr)
            series = prom.range(expr, start, end)
            assert set(series) >= set(got), (title, expr)
            where = f"{title}: {expr}"
            raw = re.fullmatch(r"(xsell_[a-z_]+)\{shop=~\"[^\"]*\", period=\"[^\"]*\"\}", expr)
            if raw:
                want = {k: v for k, v in metrics.get(raw[1], {}).items()
                        if dict(k)["period"] == period and shop_of(k) in shops}
                scraped = ("__name__", "instance", "job")
                got_plain = {frozenset((a, b) for a, b in k if a not in scraped): v
                             for k, v in got.items()}
                assert all(dict(k)["job"] == "xsell-exporter" for k in got), where
                assert got_plain == want, where
                assert want or raw[1] in allowed_empty, where
                checked["figure or count"] += 1
            elif "baseline_4w" in expr:
                assert {shop_of(k): v for k, v in got.items()} == {
                    s: r0 / n0 for s, (r0, n0) in baselines.items() if s in shops}, where
                checked["rule"] += 1
            elif "wilson_upper" in expr:
                want_w = {s: wilson_upper(*now_counts[s]) for s in baselines if s in shops}
                assert {shop_of(k) for k in got} == set(want_w), where
                for k, v in got.items():
                    assert abs(v - want_w[shop_of(k)]) < 1e-9, where
                checked["rule"] += 1
            elif expr.startswith("sum by (shop) (xsell_customers"):
                assert {shop_of(k): v for k, v in got.items()} == {
                    s: c - r for s, (r, c) in shop_counts(metrics, period).items()
                    if s in shops}, where
                checked["derived"] += 1
            elif expr.startswith("sum by (shop) (xsell_repeat_customers"):
                assert {shop_of(k): v for k, v in got.items()} == {
                    s: r for s, (r, c) in shop_counts(metrics, period).items() if s in shops}
                checked["derived"] += 1
            elif "xsell_webhooks_total" in expr or "xsell_events_total" in expr:
                name = "xsell_webhooks_total" if "webhooks" in expr else "xsell_events_total"
                keep = shops | ({"unknown"} if name == "xsell_webhooks_total" else set())
                want_keys = {(shop_of(k), dict(k)["outcome"]) for k in metrics[name]
                             if shop_of(k) in keep}
                assert {(shop_of(k), dict(k)["outcome"]) for k in got} == want_keys, where
                assert all(v >= 0 for v in got.values()), where
                outcome = "accepted" if name == "xsell_webhooks_total" else "applied"
                # The replay was scraped live: a positive rate while it ran.
                busy = [max(v) for k, v in series.items()
                        if dict(k)["outcome"] == outcome and shop_of(k) in shops - {QUIET_SHOP}]
                assert len(busy) == len(shops - {QUIET_SHOP}) and min(busy) > 0, where
                checked["pipeline"] += 1
            elif "xsell_dead_letters_total" in expr or "xsell_pending_deliveries" in expr:
                # Every configured shop exports its dead letters, all 0 here.
                dead = metrics["xsell_dead_letters_total"]
                assert {shop_of(k) for k in dead} >= shops, where
                assert set(dead.values()) == {0.0}, where
                assert {shop_of(k): v for k, v in got.items()} == dict.fromkeys(shops, 0.0)
                checked["pipeline"] += 1
            elif "xsell_consumer_lag_events" in expr:
                # One series per partition of the event topic, each a count of events.
                partitions = {dict(k)["partition"] for k in metrics["xsell_consumer_lag_events"]}
                assert partitions == {"0", "1", "2", "3"}, where  # the default 4 partitions
                assert {dict(k)["partition"] for k in got} == partitions, where
                assert all(v >= 0 and v == int(v) for v in got.values()), where
                checked["pipeline"] += 1
            elif "xsell_last_event_timestamp_seconds" in expr:
                assert {shop_of(k) for k in got} == shops - {QUIET_SHOP}, where
                assert all(0 <= v <= end - start + 5 for v in got.values()), where
                checked["pipeline"] += 1
            elif expr.startswith("min(up"):
                assert got == {frozenset(): 1.0}, where
                checked["pipeline"] += 1
            else:
                raise AssertionError(f"no expectation for panel {where}")
    # Every value the period picker offers: the figure and count panels show exactly the
    # exporter's samples for it.
    (picker,) = [v for v in board["templating"]["list"] if v["name"] == "period"]
    for other in picker["query"].split(","):
        for _, target in targets:
            expr = substitute(target["expr"], other, ".*")
            raw = re.fullmatch(r"(xsell_[a-z_]+)\{shop=~\"[^\"]*\", period=\"[^\"]*\"\}", expr)
            if not raw:
                continue
            want = {k: v for k, v in metrics.get(raw[1], {}).items()
                    if dict(k)["period"] == other}
            got = {frozenset((a, b) for a, b in k if a not in ("__name__", "instance", "job")): v
                   for k, v in prom.instant(expr).items()}
            assert got == want, expr
            # Counts are always exported (as 0 too); a ratio or average of an empty period,
            # such as a day without orders, has no sample.
            assert want or not raw[1].endswith(("_orders", "_customers", "_revenue")), expr
            checked["figure or count, every period"] += 1
    print(f"[dashboard queries checked: {dict(checked)}]")
    assert checked == Counter({"figure or count": 2 * 19, "rule": 2 * 2, "derived": 2 * 2,
                               "pipeline": 2 * 7, "figure or count, every period": 9 * 19})


def shop_counts(metrics: dict[str, dict[Labels, float]], period: str
                ) -> dict[str, tuple[float, float]]:
    out = {}
    for k, c in metrics["xsell_customers"].items():
        if dict(k)["period"] == period:
            (r,) = [v for k2, v in metrics["xsell_repeat_customers"].items()
                    if dict(k2)["period"] == period and shop_of(k2) == shop_of(k)]
            out[shop_of(k)] = (r, c)
    return out


def check_alerts(prom: Prometheus, drop_shop: str, drop_platform: str, replayed: float) -> None:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    alerts = {rule["alert"]: rule["expr"] for g in groups for rule in g["rules"]
              if "alert" in rule}
    want = {
        "XsellRepeatPurchaseRateDropped": {(drop_shop, drop_platform)},
        "XsellNoEventsFromShop": {(QUIET_SHOP, None)},
        "XsellWebhookRejectionsRising": {("unknown", "shopify")},
        "XsellDeadLetters": set(),
        "XsellWorkerBehind": set(),
        "XsellExporterCannotReadRedis": set(),
        "XsellExporterDown": set(),
    }
    assert set(alerts) == set(want)
    for name, expr in alerts.items():
        got = prom.instant(expr)
        assert {(dict(k).get("shop"), dict(k).get("platform")) for k in got} == want[name], name
    # What the quiet alerts watch is there, so their silence means something.
    assert set(prom.instant("xsell_redis_up").values()) == {1.0}
    assert set(prom.instant('up{job="xsell-exporter"}').values()) == {1.0}
    lag = prom.instant("min_over_time(xsell_pending_deliveries[10m])")
    assert len(lag) == 3 and set(lag.values()) == {0.0}
    # And Prometheus itself holds the three as pending (their `for` has not passed).
    pending = {(a["labels"]["alertname"], a["labels"].get("shop"), a["state"])
               for a in prom.api("alerts")["alerts"]}
    assert pending == {("XsellRepeatPurchaseRateDropped", drop_shop, "pending"),
                       ("XsellNoEventsFromShop", QUIET_SHOP, "pending"),
                       ("XsellWebhookRejectionsRising", "unknown", "pending")}
    assert time.time() - replayed < 600, "the rejection window of 15 minutes was left"

