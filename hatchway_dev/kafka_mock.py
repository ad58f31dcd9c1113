"""``python -m hatchway_dev.kafka_mock``: librdkafka's mock cluster as a local Kafka broker.

The cluster lives as long as this process (it belongs to the producer that made it);
other processes produce and consume through it with consumer groups. Prints
``BOOTSTRAP=<host:port>`` once it is up.
"""

from __future__ import annotations

import signal
import sys
import threading

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


if __name__ == "__main__":
    main()
