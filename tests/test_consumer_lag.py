"""The consumer-lag gauge, read from a real broker: events the worker's group has not
committed, per partition, counted from the log start for a partition never committed."""

from __future__ import annotations

import uuid

import redis
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.structs import OffsetAndMetadata
from prometheus_client import CollectorRegistry, generate_latest

from xsell_stream.broker import ensure_topics
from xsell_stream.config import KafkaSettings, RedisSettings, Settings
from xsell_stream.exporter import FiguresCollector
from xsell_stream.lag import ConsumerLag
from xsell_stream.store import AggregateReader


def lag_lines(settings: Settings, client: redis.Redis, lag: ConsumerLag) -> list[str]:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(FiguresCollector(settings, AggregateReader(client), lag=lag))
    text = generate_latest(registry).decode()
    return [line for line in text.splitlines()
            if line.startswith(("xsell_consumer_lag_events", "xsell_kafka_up"))]


def test_consumer_lag_counts_what_the_group_has_not_committed(broker, redis_url, redis_client):
    name = f"xsell.lag.{uuid.uuid4().hex[:10]}"
    kafka = KafkaSettings(bootstrap_servers=broker.bootstrap_servers, topic=name,
                          dead_letter_topic=f"{name}.dead", partitions=2,
                          consumer_group=f"{name}.group")
    settings = Settings(email_hash_key="k", kafka=kafka, redis=RedisSettings(url=redis_url))
    ensure_topics(kafka, wait_seconds=30)
    producer = KafkaProducer(bootstrap_servers=kafka.bootstrap_servers, acks="all")
    for partition, count in ((0, 3), (1, 2)):
        for i in range(count):
            producer.send(name, value=f"{partition}-{i}".encode(), partition=partition).get(30)
    producer.close()

    lag = ConsumerLag(kafka, interval=5)
    before = lag_lines(settings, redis_client, lag)
    assert before == ["xsell_kafka_up 0.0"]  # nothing read yet: no stale or made-up sample

    assert lag.read_once().partitions == {0: 3, 1: 2}  # never committed: from the log start
    consumer = KafkaConsumer(bootstrap_servers=kafka.bootstrap_servers,
                             group_id=kafka.consumer_group, enable_auto_commit=False)
    consumer.commit({TopicPartition(name, 0): OffsetAndMetadata(2, "", -1)})
    consumer.close()
    assert lag.read_once().partitions == {0: 1, 1: 2}
    assert lag_lines(settings, redis_client, lag) == [
        "xsell_kafka_up 1.0",
        'xsell_consumer_lag_events{partition="0"} 1.0',
        'xsell_consumer_lag_events{partition="1"} 2.0',
    ]


def test_consumer_lag_without_a_broker_has_no_sample(redis_url, redis_client):
    kafka = KafkaSettings(bootstrap_servers="127.0.0.1:9", topic="t")  # nothing listens
    settings = Settings(email_hash_key="k", kafka=kafka, redis=RedisSettings(url=redis_url))
    lag = ConsumerLag(kafka, interval=0.2).start()
    try:
        assert lag_lines(settings, redis_client, lag) == ["xsell_kafka_up 0.0"]
    finally:
        lag.stop()
