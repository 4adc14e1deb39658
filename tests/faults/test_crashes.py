"""Crashes and outages during a replay of the committed sample: after each, the figures equal
the clean run's exactly (every aggregate hash of both shops, compared field by field)."""

from __future__ import annotations

import json
import random
import signal
import time
import uuid
from pathlib import Path

import pytest
import redis
from kafka import KafkaConsumer, KafkaProducer

from tests import apache_kafka
from tests.conftest import start_stack
from xsell_stream.store import DEAD_LETTERS_KEY, WEBHOOKS_KEY

from . import support

WORKER_KILLS = 4
CONNECTOR_KILLS = 3
REDIS_RESTARTS = 2
STACK_KILLS = 2
BROKER_KILLS = 2


def outcomes(stack, outcome: str) -> int:  # type: ignore[no-untyped-def]
    counts = support.redis_of(stack).hgetall(WEBHOOKS_KEY)
    return sum(int(v) for k, v in counts.items() if k.decode().endswith(f"|{outcome}"))


def assert_same(stack, clean, what: str) -> None:  # type: ignore[no-untyped-def]
    got = support.snapshot(stack)
    print(f"[{what}: {support.summary(got)}]")
    print(f"[clean run: {support.summary(clean)}]")
    assert got.keys() == clean.keys()
    for shop in clean:
        assert got[shop].keys() == clean[shop].keys(), f"{shop}: other aggregates than clean"
        for key, fields in clean[shop].items():
            assert got[shop][key] == fields, f"{shop} {key}: {got[shop][key]} != {fields}"


def kill_points(rng: random.Random, times: int) -> list[int]:
    """Random moments of the replay, as counts of accepted deliveries: spread over the
    sample and well before its end (the paced replay has ~5 s left after the last one), so
    every kill lands while deliveries still arrive."""
    return sorted(rng.sample(range(50, support.SAMPLE_DELIVERIES - 300), times))


def paced_replay(stack) -> support.BackgroundReplay:  # type: ignore[no-untyped-def]
    return support.BackgroundReplay(stack.connector_url, rate=support.REPLAY_RATE).start()


def wait_accepted(stack, at_least: int, replay: support.BackgroundReplay) -> int:  # type: ignore[no-untyped-def]
    """Waits until the connector has accepted `at_least` deliveries (or the replay ended);
    Redis may be down meanwhile (the Redis test), so a failed read just waits."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and replay.running():
        try:
            accepted = outcomes(stack, "accepted")
        except redis.RedisError:
            accepted = -1
        if accepted >= at_least:
            return accepted
        time.sleep(0.02)
    return outcomes(stack, "accepted")


def kill_repeatedly(stack, name: str, times: int, rng: random.Random,  # type: ignore[no-untyped-def]
                    replay: support.BackgroundReplay) -> int:
    """kill -9 `name` `times` times, at random points of the replay, each time once `up`
    restarted it."""
    killed = 0
    pid = support.wait_for_new(stack, name, None)
    for point in kill_points(rng, times):
        accepted = wait_accepted(stack, point, replay)
        assert replay.running(), f"the replay ended before kill {killed + 1} of the {name}"
        support.kill9(pid)
        killed += 1
        print(f"[kill -9 {name} pid {pid} ({killed}/{times}) after {accepted} accepted "
              f"deliveries; replay running]")
        pid = support.wait_for_new(stack, name, pid)
    return killed


def kills_change_no_figure(directory: Path, clean, rng: random.Random,  # type: ignore[no-untyped-def]
                           name: str, times: int, what: str) -> None:
    """A paced replay with `name` killed `times` times: every delivery is answered 200 in the
    end and the figures equal the clean run's."""
    stack = support.start(directory)
    try:
        replay = paced_replay(stack)
        killed = kill_repeatedly(stack, name, times, rng, replay)
        assert dict(replay.wait()) == {200: support.SAMPLE_DELIVERIES}
        support.settle(stack)
        assert killed == times
        assert_same(stack, clean, f"after {killed} {what} kills")
    finally:
        support.stop(stack)


def test_worker_killed_at_random_points_changes_no_figure(tmp_path, clean_figures, rng):
    kills_change_no_figure(tmp_path / "stack", clean_figures, rng, "worker", WORKER_KILLS,
                           "worker")


def test_connector_killed_mid_replay_with_the_store_retrying_changes_no_figure(
        tmp_path, clean_figures, rng):
    kills_change_no_figure(tmp_path / "stack", clean_figures, rng, "connector", CONNECTOR_KILLS,
                           "connector")


def test_redis_restarted_with_persistence_keeps_every_figure(tmp_path, clean_figures, rng):
    stack = support.start(tmp_path / "stack")
    try:
        replay = paced_replay(stack)
        restarted = kill_repeatedly(stack, "redis", REDIS_RESTARTS, rng, replay)
        assert dict(replay.wait()) == {200: support.SAMPLE_DELIVERIES}
        support.settle(stack)
        assert_same(stack, clean_figures, f"after {restarted} Redis kill -9 and restarts")
        # and once more at rest: everything applied survives a restart from the AOF alone
        pid = support.process_of(stack, "redis")
        assert pid is not None
        support.kill9(pid)
        support.wait_for_new(stack, "redis", pid)
        support.settle(stack)
        assert_same(stack, clean_figures, "after a Redis restart at rest")
    finally:
        support.stop(stack)


def kill_whole_stack(stack) -> None:  # type: ignore[no-untyped-def]
    pids = [stack.process.pid, *support.children(stack.process.pid)]
    for pid in reversed(pids):  # children first, so `up` restarts none of them
        support.kill9(pid)
    stack.process.wait(30)
    deadline = time.monotonic() + 30
    while any(Path(f"/proc/{p}").exists() and support.cmdline(p) for p in pids):
        assert time.monotonic() < deadline, "processes survived kill -9"
        time.sleep(0.1)


def test_whole_stack_killed_mid_replay_loses_no_accepted_delivery(tmp_path, clean_figures, rng):
    """The embedded broker forgets everything it acknowledged at each kill, and a store never
    retries a delivery answered 200: `up` hands the accepted, not yet applied events (kept in
    Redis) to the broker again at start, so the figures are complete without any retry. The
    store's retries of everything afterwards are all duplicates."""
    stack = support.start(tmp_path / "stack")
    config = stack.config_path
    try:
        first = paced_replay(stack)
        for cycle, point in enumerate(kill_points(rng, STACK_KILLS), start=1):
            accepted = wait_accepted(stack, point, first)
            assert first.running(), f"the replay ended before whole-stack kill {cycle}"
            kill_whole_stack(stack)
            print(f"[kill -9 of the whole stack ({cycle}/{STACK_KILLS}) after {accepted} "
                  f"accepted deliveries; replay running]")
            stack = start_stack(config)  # the same data dir: Redis comes back from its AOF
        assert dict(first.wait()) == {200: support.SAMPLE_DELIVERIES}
        support.settle(stack)
        assert_same(stack, clean_figures, f"after {STACK_KILLS} whole-stack kills, no retry")

        accepted, duplicates = outcomes(stack, "accepted"), outcomes(stack, "duplicate")
        again = support.replay_sample(stack.connector_url)
        assert dict(again) == {200: support.SAMPLE_DELIVERIES}
        support.settle(stack)
        retried_done = outcomes(stack, "duplicate") - duplicates
        print(f"[whole stack: {STACK_KILLS} kill -9 cycles; figures complete before any "
              f"retry; {retried_done} of the {support.SAMPLE_DELIVERIES} retried deliveries "
              f"were already done, none accepted again]")
        assert outcomes(stack, "accepted") == accepted  # every retry found its delivery done
        assert_same(stack, clean_figures, f"after {STACK_KILLS} whole-stack kills and retries")
    finally:
        support.stop(stack)


def test_embedded_broker_killed_mid_replay_loses_no_accepted_delivery(
        tmp_path, clean_figures, rng):
    """kill -9 of the embedded broker, which keeps nothing: `up` restarts it, recreates the
    topics and hands it the accepted events the worker had not applied yet."""
    if support.external_kafka():
        pytest.skip("the embedded broker's own fault: this run uses an external Kafka")
    kills_change_no_figure(tmp_path / "stack", clean_figures, rng, "broker", BROKER_KILLS,
                           "embedded broker")


def test_broker_stopped_while_deliveries_arrive_answers_503_then_completes(
        tmp_path, clean_figures, rng):
    stack = support.start(tmp_path / "stack", {"produce_timeout_seconds": 2.0})
    external = support.external_kafka()
    launched = apache_kafka.running()
    try:
        if external is None:
            pid = support.process_of(stack, "broker")
            assert pid is not None
            pause, resume = (lambda: support.os.kill(pid, signal.SIGSTOP),
                             lambda: support.os.kill(pid, signal.SIGCONT))
            how = "embedded Tansu frozen with SIGSTOP (it keeps no data across a restart)"
        else:
            assert launched is not None and launched.bootstrap_servers == external, (
                "KAFKA_BOOTSTRAP_SERVERS names a broker this test run did not start, so it "
                "cannot be stopped; start it with XSELL_TEST_KAFKA=apache instead")
            pause, resume = launched.stop, launched.start
            how = "Apache Kafka stopped (SIGTERM) and started again"
        replay = support.BackgroundReplay(stack.connector_url, retries=20).start()
        (point,) = kill_points(rng, 1)
        accepted = wait_accepted(stack, point, replay)
        assert replay.running(), "the replay ended before the broker could be stopped"
        pause()
        print(f"[broker stopped after {accepted} accepted deliveries]")
        try:
            deadline = time.monotonic() + 120
            while outcomes(stack, "unavailable") < 5:
                assert time.monotonic() < deadline, "no 503 while the broker was stopped"
                time.sleep(0.2)
        finally:
            resume()
        refused = outcomes(stack, "unavailable")
        statuses = replay.wait()
        assert dict(statuses) == {200: support.SAMPLE_DELIVERIES}
        support.settle(stack)
        print(f"[{how}: {refused} deliveries answered 503 while it was away, all retried]")
        assert_same(stack, clean_figures, "after the broker outage")
    finally:
        support.stop(stack)


def test_poison_events_go_to_the_dead_letter_topic_and_the_stream_goes_on(
        tmp_path, clean_figures):
    stack = support.start(tmp_path / "stack")
    kafka = stack.settings.kafka_settings
    marker = uuid.uuid4().hex
    poison = [
        f"not json {marker}".encode(),
        json.dumps({"kind": "order_state", "marker": marker}).encode(),
        json.dumps({"schema_version": 1, "kind": "order_deleted", "shop": f"{marker}.example",
                    "platform": "shopify", "delivery_id": marker, "topic": "orders/delete",
                    "order_id": "1", "deleted_at": "2026-01-01T00:00:00Z"}).encode(),
    ]
    try:
        replay = support.BackgroundReplay(stack.connector_url).start()
        producer = KafkaProducer(bootstrap_servers=kafka.bootstrap_servers, acks="all")
        for value in poison:
            producer.send(kafka.topic, key=marker.encode(), value=value).get(30)
        producer.close()
        assert dict(replay.wait()) == {200: support.SAMPLE_DELIVERIES}
        support.settle(stack)
        assert_same(stack, clean_figures, "with 3 poison events in the stream")

        consumer = KafkaConsumer(kafka.dead_letter_topic, bootstrap_servers=kafka.bootstrap_servers,
                                 auto_offset_reset="earliest", group_id=None,
                                 consumer_timeout_ms=10000)
        dead = {m.value: dict(m.headers or []) for m in consumer if marker.encode() in m.value}
        consumer.close()
        assert set(dead) == set(poison)
        reasons = {v: h["reason"].decode() for v, h in dead.items()}
        assert reasons[poison[0]].startswith("not a valid event")
        assert reasons[poison[1]].startswith("not a valid event")
        assert reasons[poison[2]] == f"shop '{marker}.example' is not configured"
        assert support.redis_of(stack).hgetall(DEAD_LETTERS_KEY) == {b"unknown": b"3"}
        assert 'xsell_dead_letters_total{shop="unknown"} 3.0' in stack.metrics()
    finally:
        support.stop(stack)


def test_redis_refusing_writes_for_a_while_skips_no_event(tmp_path, clean_figures, rng):
    """Redis at its maxmemory (-OOM) mid-replay: the connector answers 503 meanwhile, the
    worker waits for Redis instead of dead-lettering what it cannot write yet, and once
    Redis takes writes again every figure equals the clean run.

    The worker is frozen (SIGSTOP, well inside its 10 s Kafka session) until accepted
    deliveries wait for it, so it surely has events to write while Redis is full: a worker
    that had caught up (as it does on a fast broker) would otherwise never meet the refusal,
    since the connector takes no new delivery meanwhile."""
    stack = support.start(tmp_path / "stack")
    client = support.redis_of(stack)
    try:
        replay = paced_replay(stack)
        (point,) = kill_points(rng, 1)
        wait_accepted(stack, point, replay)
        worker = support.process_of(stack, "worker")
        assert worker is not None
        support.os.kill(worker, signal.SIGSTOP)
        try:
            accepted = wait_accepted(stack, point + 30, replay)
            assert replay.running(), "the replay ended before Redis could refuse writes"
            backlog = support.pending(stack, client)
            assert backlog > 0, "no accepted delivery waits for the frozen worker"
            client.config_set("maxmemory", "1")
        finally:
            support.os.kill(worker, signal.SIGCONT)
        worker_log = stack.settings.data_dir / "logs" / "worker.log"
        try:
            deadline = time.monotonic() + 60
            while "Redis cannot take an event now (" not in worker_log.read_text():
                assert time.monotonic() < deadline, "the worker never met the full Redis"
                time.sleep(0.2)
        finally:
            client.config_set("maxmemory", "0")
        refused = worker_log.read_text().count("Redis cannot take an event now (")
        assert dict(replay.wait()) == {200: support.SAMPLE_DELIVERIES}
        support.settle(stack)
        print(f"[Redis refused writes (maxmemory 1) after {accepted} accepted deliveries, "
              f"{backlog} of them not yet applied; the worker retried {refused} times; no "
              f"event dead-lettered]")
        assert client.hgetall(DEAD_LETTERS_KEY) == {}
        assert_same(stack, clean_figures, "after Redis refused writes for a while")
    finally:
        support.stop(stack)
