"""``python -m hatchway_dev.kafka_mock``: librdkafka's mock cluster as a local Kafka broker.

The cluster lives as long as this process (it belongs to the producer that made it);
other processes produce and consume through it with consumer groups. Prints
``BOOTSTRAP=<host:port>`` once it is up.
"""

from __future__ import annotations

import signal
import sys
import threading
import time

from confluent_kafka import Producer


def main() -> None:
    producer = Producer({"test.mock.num.brokers": 1})
    brokers = producer.list_topics(timeout=10).brokers
    broker = next(iter(brokers.values()))
    print(f"BOOTSTRAP={broker.host}:{broker.port}", flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.wait(1.0):
        producer.poll(0)
    sys.exit(0)


def read_topic(bootstrap: str, topic: str, expect: int = 1, timeout: float = 15.0) -> list:
    """Every message of ``topic``, from its start to its end as it is when read, waiting up to
    ``timeout`` while fewer than ``expect`` are there.

    It assigns the partitions rather than joining a consumer group: no group join to wait for
    (seconds per reader), and everything produced before the call is seen, duplicates included,
    so a test can assert "exactly once" without waiting for quiet.
    """
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "hatchway-topic-reader",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    messages, read_to, deadline = [], {}, time.monotonic() + timeout
    try:
        while True:
            todo = {p: end for p, end in _ends(consumer, topic).items() if end > read_to.get(p, 0)}
            if todo:
                consumer.assign([TopicPartition(topic, p, read_to.get(p, 0)) for p in todo])
                while todo and time.monotonic() < deadline:
                    batch = consumer.consume(500, timeout=0.5)
                    for message in batch:
                        if not message.error():
                            messages.append(message)
                    for tp in consumer.position([TopicPartition(topic, p) for p in todo]):
                        if tp.offset >= 0:
                            read_to[tp.partition] = tp.offset
                        if read_to.get(tp.partition, 0) >= todo[tp.partition]:
                            todo.pop(tp.partition)
                consumer.unassign()
            if len(messages) >= expect or time.monotonic() >= deadline:
                return messages
            time.sleep(0.1)
    finally:
        consumer.close()


def _ends(consumer, topic: str) -> dict[int, int]:
    from confluent_kafka import TopicPartition

    meta = consumer.list_topics(topic, timeout=10).topics.get(topic)
    if meta is None or meta.error is not None:
        return {}
    return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in meta.partitions}


if __name__ == "__main__":
    main()
