"""`demo`: the whole pipeline on a real sample, for a newcomer.

The sample (`demo/sample.jsonl.gz`) is the last 14 days of the shared Online Retail
recordings. Its dates are shifted by whole days so that its last order is today, and each body is
signed again with the recordings' test secrets, so the live gauges show its figures.
"""

from __future__ import annotations

import gzip
import json
import re
from dataclasses import replace
from datetime import date, datetime, timedelta
from importlib import resources
from pathlib import Path
from zoneinfo import ZoneInfo

from connectors import signing

from .replay import Delivery, read_deliveries

SAMPLE = "sample.jsonl.gz"
SAMPLE_DAYS = 14
SHOPIFY_SHOP = "northwind-gifts.myshopify.com"
WOO_SHOP = "continental-gifts.example"
# The recordings' signing secrets: published test values (../shared/data/online-retail).
SHOPIFY_SECRET = "shpss_northwind_demo_0b5e1c"
WOO_SECRET = 'wc&demo<secret>"2011'

_DATE = re.compile(rb"(\d{4})-(\d{2})-(\d{2})(?=T\d{2}:\d{2}:\d{2})")

DEMO_CONFIG = """\
# Written by `xsell-stream demo`: the two shops of the Online Retail sample.
data_dir = "."
[connector]
host = "127.0.0.1"
port = {connector_port}
[exporter]
host = "127.0.0.1"
port = {exporter_port}
[embedded]
kafka_port = {kafka_port}
redis_port = {redis_port}

[[shops]]
id = "{shopify_shop}"
platform = "shopify"
timezone = "Europe/London"
lifespan_years = 3
secrets = [{shopify_secret}]

[[shops]]
id = "{woo_shop}"
platform = "woocommerce"
timezone = "Europe/Berlin"
lifespan_years = 3
secrets = [{woo_secret}]
"""


def write_config(data_dir: Path, connector_port: int, exporter_port: int, kafka_port: int,
                 redis_port: int) -> Path:
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / "demo.toml"
    path.write_text(DEMO_CONFIG.format(
        connector_port=connector_port, exporter_port=exporter_port, kafka_port=kafka_port,
        redis_port=redis_port, shopify_shop=SHOPIFY_SHOP, woo_shop=WOO_SHOP,
        shopify_secret=json.dumps(SHOPIFY_SECRET), woo_secret=json.dumps(WOO_SECRET)))
    return path


def sample_path() -> Path:
    return Path(str(resources.files("xsell_stream").joinpath("demo", SAMPLE)))


def delivery_day(d: Delivery) -> date:
    """The UTC day a recorded delivery was sent."""
    sent = d.headers.get("X-Shopify-Triggered-At")
    if sent:
        return datetime.fromisoformat(sent.replace("Z", "+00:00")).date()
    match = re.search(rb'"date_modified_gmt":"(\d{4}-\d{2}-\d{2})', d.body)
    if match:
        return date.fromisoformat(match.group(1).decode())
    return date.min  # the WooCommerce creation ping


def build_sample(recordings: list[Path], out: Path, days: int = SAMPLE_DAYS) -> int:
    """Writes the last `days` days of the recordings (merged by seq); returns the count."""
    from .replay import merged

    last = max(delivery_day(d) for d in merged(recordings))
    first = last - timedelta(days=days - 1)
    count = 0
    with gzip.open(out, "wt", encoding="utf-8", compresslevel=9) as f:
        for d in merged(recordings):
            day = delivery_day(d)
            if day != date.min and day < first:
                continue
            platform = "shopify" if d.path.endswith("shopify") else "woocommerce"
            f.write(json.dumps({"seq": d.seq, "platform": platform, "path": d.path,
                                "headers": d.headers, "body": d.body.decode()}) + "\n")
            count += 1
    return count


_CREATED = re.compile(rb'"(?:created_at|date_created_gmt)":"(\d{4}-\d{2}-\d{2})')


def order_day(d: Delivery) -> date | None:
    """The UTC day of the order a creation delivery carries; None for other deliveries."""
    topic = d.headers.get("X-Shopify-Topic") or d.headers.get("X-WC-Webhook-Topic")
    if topic not in ("orders/create", "order.created"):
        return None
    match = _CREATED.search(d.body)
    return date.fromisoformat(match.group(1).decode()) if match else None


def shift_days(sample: Path, today: date) -> int:
    """Whole days that move the sample's last order to `today` (the updates and refunds
    that followed it land in the next days), so today's gauges show orders."""
    last = max(day for d in read_deliveries(sample) if (day := order_day(d)) is not None)
    return (today - last).days


def shifted(d: Delivery, days: int) -> Delivery:
    """The delivery with every timestamp moved by `days`, signed again."""

    def move(match: re.Match[bytes]) -> bytes:
        day = date(int(match[1]), int(match[2]), int(match[3])) + timedelta(days=days)
        return day.isoformat().encode()

    body = _DATE.sub(move, d.body)
    headers = dict(d.headers)
    if "X-Shopify-Triggered-At" in headers:
        headers["X-Shopify-Triggered-At"] = _DATE.sub(
            move, headers["X-Shopify-Triggered-At"].encode()).decode()
    if "X-Shopify-Hmac-Sha256" in headers:
        headers["X-Shopify-Hmac-Sha256"] = signing.sign(SHOPIFY_SECRET, body)
    if "X-WC-Webhook-Signature" in headers:
        headers["X-WC-Webhook-Signature"] = signing.sign(WOO_SECRET, body)
    return replace(d, body=body, headers=headers)


def today_in(zone: str) -> date:
    return datetime.now(ZoneInfo(zone)).date()
