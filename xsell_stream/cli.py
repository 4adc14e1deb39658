"""The commands: up, replay, report, demo (and the processes `up` starts: connector,
worker, exporter)."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import shutil
import signal
import sys
import threading
from datetime import date
from pathlib import Path
from typing import Any

import redis

from . import config as config_module
from .config import ConfigError, Settings, without_password
from .periods import CALENDAR_PERIODS, WINDOWS

log = logging.getLogger("xsell_stream")


def _settings(args: argparse.Namespace) -> Settings:
    return config_module.load(args.config)


def _non_negative(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, not {text}")
    return value


def _at_least_one(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def _wait_for_signal() -> threading.Event:
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    return stop


def cmd_up(args: argparse.Namespace) -> int:
    from .stack import Stack

    settings = _settings(args)
    stop = _wait_for_signal()
    stack = Stack(Path(args.config), settings)
    try:
        print("starting xsell-stream …", flush=True)
        stack.start()
        for name, url in stack.urls().items():
            print(f"  {name:<24} {url}", flush=True)
        print("running; Ctrl-C or SIGTERM stops everything", flush=True)
        stack.supervise(stop.is_set)
    finally:
        print("stopping …", flush=True)
        stack.stop()
        print("stopped", flush=True)
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    from .replay import replay_files

    paths = [Path(p) for p in args.files]
    statuses = replay_files(paths, args.url, args.concurrency, args.retries, args.rate)
    print("answers by HTTP status:")
    for status, n in sorted(statuses.items(), key=lambda kv: str(kv[0])):
        print(f"  {status}: {n}")
    if "no answer" in statuses:
        print(f"hint: nothing answered at {args.url}; is the connector running "
              "(xsell-stream up --config FILE)?", file=sys.stderr)
    if 404 in statuses:
        print("hint: 404 means a wrong path; --url is the connector's base URL "
              "(e.g. http://127.0.0.1:8080), the recordings carry the /webhooks/... path",
              file=sys.stderr)
    if 401 in statuses:
        print("hint: 401 means an unknown shop or a bad signature; check the shop ids and "
              "secrets in [[shops]] of the config (see the connector log)", file=sys.stderr)
    return 0 if all(isinstance(s, int) and s < 400 for s in statuses) else 1


def cmd_report(args: argparse.Namespace) -> int:
    from .report import as_json, as_table, figures_for, settle
    from .store import AggregateReader

    settings = _settings(args)
    try:
        day = date.fromisoformat(args.date)
    except ValueError:
        print(f"error: --date {args.date!r} is not a date; use YYYY-MM-DD, e.g. 2011-03-15",
              file=sys.stderr)
        return 2
    client = redis.Redis.from_url(settings.redis_url, socket_timeout=10)
    reader = AggregateReader(client)
    try:
        if args.settle:
            left = settle(settings, reader, args.settle)
            if left:
                print(f"warning: {left} accepted deliveries are still not applied after "
                      f"{args.settle:g}s; is the worker running? (xsell-stream up)",
                      file=sys.stderr)
        report = figures_for(settings, reader, args.shop, args.period, day)
    except redis.RedisError as exc:
        print(f"error: cannot read Redis at {without_password(settings.redis_url)} ({exc}); "
              "is the stack up? (xsell-stream up --config FILE)", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(as_json(report)))
    else:
        print(as_table(report))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from . import demo
    from .replay import Progress, read_deliveries, replay
    from .report import figures_for, settle
    from .stack import Stack
    from .store import AggregateReader

    data_dir = Path(args.data_dir).resolve()
    config_path = demo.write_config(data_dir, args.port, args.metrics_port, args.kafka_port,
                                    args.redis_port)
    settings = config_module.load(config_path)
    stop = _wait_for_signal()
    stack = Stack(config_path, settings)
    try:
        stack.claim()  # before emptying the store: another demo may be running on it
        if (data_dir / "redis").exists():
            shutil.rmtree(data_dir / "redis")  # every demo starts from an empty store
        print(f"starting the stack (logs in {stack.log_dir}) …", flush=True)
        stack.start()
        sample = demo.sample_path()
        today = demo.today_in("Europe/London")
        days = demo.shift_days(sample, today)
        print(f"replaying the Online Retail sample, moved {days} days forward to end "
              f"{today} …", flush=True)
        url = f"http://{settings.connector.host}:{settings.connector.port}"
        statuses = asyncio.run(replay(read_deliveries(sample), url, concurrency=8,
                                      progress=Progress(),
                                      transform=lambda d: demo.shifted(d, days)))
        print("answers: " + ", ".join(f"{k}: {v}" for k, v in sorted(statuses.items(),
                                                                   key=lambda kv: str(kv[0]))))
        client = redis.Redis.from_url(settings.redis_url)
        reader = AggregateReader(client)
        left = settle(settings, reader, 120)
        if left:
            print(f"warning: {left} deliveries not applied yet; see {stack.log_dir}")
        print()
        for shop in settings.shops:
            report = figures_for(settings, reader, shop.id, "30d", demo.today_in(shop.timezone))
            print(_six_figures(report))
            print()
        if args.exit:
            return 0
        print(f"serving the live gauges at http://{settings.exporter.host}:"
              f"{settings.exporter.port}/metrics; Ctrl-C stops", flush=True)
        stack.supervise(stop.is_set)
        return 0
    finally:
        print("stopping …", flush=True)
        stack.stop()
        print("stopped", flush=True)


SIX = ("cross_sell_ratio", "upsell_conversion_rate", "average_order_value",
       "customer_lifetime_value", "revenue_per_customer", "repeat_purchase_rate")


def _six_figures(report: dict[str, Any]) -> str:
    from .report import format_value

    head = (f"{report['shop']} — last 30 days ({report['start']} .. {report['end']}), "
            f"{report['orders']:,} orders, {report['customers']:,} customers, "
            f"{report['currency']}")
    rows = []
    for name in SIX:
        value = format_value(name, report[name])
        if name == "upsell_conversion_rate" and not report["upsell_offered_customers"]:
            value = "n/a (no upsell offers seen)"
        rows.append(f"  {name.replace('_', ' '):<26} {value:>12}")
    return "\n".join([head, *rows])


def cmd_connector(args: argparse.Namespace) -> int:
    from connectors.server import run

    run(_settings(args))
    return 0


def cmd_worker(args: argparse.Namespace) -> int:
    from .worker import run

    run(_settings(args))
    return 0


def cmd_exporter(args: argparse.Namespace) -> int:
    from .exporter import run

    run(_settings(args))
    return 0


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="xsell-stream", description=__doc__)
    sub = p.add_subparsers(dest="command", required=True)

    def with_config(sp: argparse.ArgumentParser) -> argparse.ArgumentParser:
        sp.add_argument("--config", required=True, help="the TOML config file")
        return sp

    up = with_config(sub.add_parser("up", help="start connector, worker and exporter"))
    up.set_defaults(func=cmd_up)

    rp = sub.add_parser("replay", help="post recorded deliveries to a running connector")
    rp.add_argument("files", nargs="+", help=".jsonl or .jsonl.gz recordings")
    rp.add_argument("--url", required=True, help="the connector, e.g. http://127.0.0.1:8080")
    rp.add_argument("--concurrency", type=_at_least_one, default=8, help="deliveries in flight")
    rp.add_argument("--retries", type=int, default=8,
                    help="retries of a delivery answered 5xx or not at all")
    rp.add_argument("--rate", type=_non_negative, default=0.0,
                    help="at most this many deliveries a second (default 0: as fast as the "
                         "connector answers)")
    rp.set_defaults(func=cmd_replay)

    periods = [*CALENDAR_PERIODS, *WINDOWS]
    rep = with_config(sub.add_parser("report", help="the figures of one shop and period"))
    rep.add_argument("--shop", required=True)
    rep.add_argument("--period", required=True, choices=periods)
    rep.add_argument("--date", required=True, help="YYYY-MM-DD, a day inside the period")
    rep.add_argument("--json", action="store_true", help="one JSON object")
    rep.add_argument("--settle", type=float, default=0.0, metavar="SECONDS",
                     help="first wait up to SECONDS until every accepted delivery is applied")
    rep.set_defaults(func=cmd_report)

    demo = sub.add_parser("demo", help="run everything on a real sample and show the figures")
    demo.add_argument("--exit", action="store_true", help="stop after printing the table")
    demo.add_argument("--data-dir", default=".xsell-demo")
    demo.add_argument("--port", type=int, default=8080, help="the connector's port")
    demo.add_argument("--metrics-port", type=int, default=9108)
    demo.add_argument("--kafka-port", type=int, default=29092)
    demo.add_argument("--redis-port", type=int, default=26379)
    demo.set_defaults(func=cmd_demo)

    for name, func in (("connector", cmd_connector), ("worker", cmd_worker),
                       ("exporter", cmd_exporter)):
        sp = with_config(sub.add_parser(name, help=f"run only the {name} (`up` starts it)"))
        sp.set_defaults(func=func)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    # The Kafka clients narrate every connection at INFO; their warnings are what matter.
    for noisy in ("kafka", "aiokafka", "faust", "mode"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (KeyError, ValueError, FileNotFoundError, RuntimeError) as exc:
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        print(f"error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
