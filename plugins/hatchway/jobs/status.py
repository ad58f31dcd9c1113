"""Status messages out to Kafka: keyed by run name, idempotent producer, flushed per message."""

from __future__ import annotations

import logging
from datetime import datetime, timezone

from hatchway.domain.jobs import JobEvent, JobPlatformConfig, StatusMessage

log = logging.getLogger(__name__)

# Consumer-only settings a shared connection may carry; a producer warns about each.
_CONSUMER_KEYS = {"group.id", "enable.auto.commit", "auto.offset.reset", "session.timeout.ms",
                  "heartbeat.interval.ms", "max.poll.interval.ms", "enable.auto.offset.store"}


class DeliveryError(RuntimeError):
    """The broker did not acknowledge a message."""


def kafka_settings(conn_id: str) -> dict:
    """librdkafka settings from an apache-kafka provider connection (its extra)."""
    from airflow.providers.apache.kafka.hooks.produce import KafkaProducerHook

    return dict(KafkaProducerHook.get_connection(conn_id).extra_dejson)


def make_producer(conn_id: str):
    from confluent_kafka import Producer

    settings = {k: v for k, v in kafka_settings(conn_id).items() if k not in _CONSUMER_KEYS}
    # Idempotent and acknowledged by all replicas: a retried send is not a second message.
    return Producer({**settings, "enable.idempotence": True, "acks": "all"})


def produce_and_flush(producer, topic: str, key: bytes, value: bytes, headers: list | None = None,
                      timeout: float = 30.0) -> None:
    errors: list = []
    producer.produce(topic, key=key, value=value, headers=headers or [],
                     on_delivery=lambda err, _msg: errors.append(err) if err else None)
    remaining = producer.flush(timeout)
    if remaining or errors:
        raise DeliveryError(f"message to {topic!r} not delivered: {errors or 'flush timed out'}")


class StatusSender:
    """Sends one job's status messages; events the backend should not see are dropped here.

    :param config: job settings (topic, connection, which events are sent).
    :param producer: a confluent-kafka producer (default: from the Kafka connection).
    """

    def __init__(self, config: JobPlatformConfig, producer=None):
        self.config = config
        self.producer = producer or make_producer(config.kafka_conn_id)

    def send(self, run_name: str, event: JobEvent, trace_name: str | None = None,
             trace_exit: int | None = None, now: datetime | None = None) -> StatusMessage | None:
        if event not in self.config.sent_events:
            return None
        message = StatusMessage(run_name=run_name, utc_time=now or datetime.now(timezone.utc), event=event,
                                trace_name=trace_name if event is JobEvent.FAILED else None,
                                trace_exit=trace_exit if event is JobEvent.FAILED else None)
        produce_and_flush(self.producer, self.config.status_topic, run_name.encode(), message.to_json())
        log.info("status %s: %s", run_name, event.value)
        return message
