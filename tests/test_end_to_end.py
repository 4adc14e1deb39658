"""The main job, end to end: recorded store webhooks → HTTP receiver → Kafka → Faust worker →
Redis → report and /metrics, through the commands a user runs."""

from __future__ import annotations

import json
import re
import time

import pytest

from .conftest import RECORDINGS, SHOPIFY_SHOP, WOO_SHOP, run_cli

EXPECTED = RECORDINGS / "expected-months.json"
FILES = [RECORDINGS / "shopify-northwind.jsonl.gz", RECORDINGS / "woocommerce-continental.jsonl.gz"]

MONEY = ("revenue", "average_order_value", "revenue_per_customer", "customer_lifetime_value")


def assert_matches(expected: dict, got: dict, where: str) -> None:
    for key, want in expected.items():
        have = got[key]
        if isinstance(want, float):
            assert have is not None and abs(have - want) <= 1e-9, f"{where} {key}: {have} != {want}"
        else:
            assert have == want, f"{where} {key}: {have!r} != {want!r}"


@pytest.mark.realdata
def test_full_replay_of_the_shared_recordings_matches_every_expected_month(make_stack, broker):
    if not EXPECTED.exists():
        pytest.skip(f"SKIPPED LOUDLY: {RECORDINGS} is absent, the real-data check did not run")
    stack = make_stack()  # embedded broker and Redis, as `up` starts them by default
    started = time.monotonic()
    done = run_cli("replay", *map(str, FILES), "--url", stack.connector_url, timeout=1800)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "200: 33624" in done.stdout  # 30,467 Shopify + 3,157 WooCommerce, all answered 200
    expected = json.loads(EXPECTED.read_text())
    first = True
    for shop, months in expected.items():
        for key, figures in months.items():
            got = stack.report(shop, "month", figures["start"], settle=600 if first else 0)
            first = False
            assert got["currency"] == "GBP"
            assert_matches(figures, got, f"{shop} {key}")
    print(f"full replay + settle: {time.monotonic() - started:.1f}s")

    metrics = stack.metrics()
    for shop, platform in ((SHOPIFY_SHOP, "shopify"), (WOO_SHOP, "woocommerce")):
        labels = f'period="month",platform="{platform}",shop="{shop}"'
        assert re.search(r"^xsell_orders\{" + re.escape(labels) + r"\} ", metrics, re.M)
        assert re.search(r'^xsell_webhooks_total\{outcome="accepted",platform="' + platform
                         + r'",shop="' + re.escape(shop) + r'"\} ', metrics, re.M)
    # No customer data in any label: no customer ids or e-mail hashes anywhere.
    assert "id:" not in metrics and "email:" not in metrics and "@" not in metrics


def test_demo_prints_the_six_figures_for_both_shops(tmp_path):
    from .conftest import free_port

    done = run_cli("demo", "--exit", "--data-dir", str(tmp_path / "demo"),
                   "--port", str(free_port()), "--metrics-port", str(free_port()),
                   "--kafka-port", str(free_port()), "--redis-port", str(free_port()),
                   timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    for shop in (SHOPIFY_SHOP, WOO_SHOP):
        assert f"{shop} — last 30 days" in done.stdout
    for figure in ("cross sell ratio", "upsell conversion rate", "average order value",
                   "customer lifetime value", "revenue per customer", "repeat purchase rate"):
        assert done.stdout.count(figure) == 2
    assert "answers: 200: 1843" in done.stdout
