"""Status messages out to Kafka: keyed by run name, idempotent producer, flushed per message,
each state once per run.

Once per state, across task retries and lost delivery reports: the states a run has sent are
recorded durably (:class:`VariableStatusRecord`, an Airflow Variable of the run: a retry runs
in a new process, and the failure callback must read it too). A send records ``sending``
first and ``sent`` after the broker's acknowledgement. The idempotent producer dedups only
within one producer session, so when a retry finds ``sending`` (the earlier try died or lost
its delivery report, and the message may or may not be on the broker) it reads the status
topic from the offsets recorded with ``sending`` for the run's key: found, the state counts as sent and is
not sent again; not found, it is sent. ``can_move`` refuses a state that does not follow the
last one sent (Deployed after Succeeded).
"""

from __future__ import annotations

import json
import logging
import os
import threading
import uuid
from datetime import datetime, timezone
from typing import Protocol

from hatchway import metrics
from hatchway.domain.jobs import JobEvent, JobPlatformConfig, StatusMessage, can_move

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


_PRODUCERS: dict[tuple[int, str], object] = {}
_PRODUCERS_LOCK = threading.Lock()


def make_producer(conn_id: str):
    """The process's producer for a Kafka connection's settings, made on first use.

    Idempotent and acknowledged by all replicas: a retried send is not a second message. One
    per process and settings, because a new idempotent producer's first send waits 0.5-1 s for
    its producer id; a long-lived process (the triggerer's notifiers, an intake worker, a Celery
    worker's forks) pays that once. Keyed by process id: a fork never uses its parent's. A
    producer whose send failed is dropped (:func:`produce_and_flush`), so a message it still
    holds can never go out behind a retry's back.
    """
    from confluent_kafka import Producer

    settings = {k: v for k, v in kafka_settings(conn_id).items() if k not in _CONSUMER_KEYS}
    settings = {**settings, "enable.idempotence": True, "acks": "all"}
    key = (os.getpid(), json.dumps(settings, sort_keys=True, default=str))
    with _PRODUCERS_LOCK:
        producer = _PRODUCERS.get(key)
        if producer is None:
            producer = _PRODUCERS[key] = Producer(settings)
        return producer


def _drop(producer) -> None:
    """Forget a producer whose send failed and purge what it still queues."""
    with _PRODUCERS_LOCK:
        for key in [k for k, p in _PRODUCERS.items() if p is producer]:
            del _PRODUCERS[key]
    try:
        producer.purge()
        producer.flush(1.0)  # serve the purged messages' delivery reports: the queue is then empty
    except Exception:  # noqa: BLE001 - a purge that fails must not hide the send's own error
        log.warning("a failed producer's purge failed too", exc_info=True)


def produce_and_flush(producer, topic: str, key: bytes, value: bytes, headers: list | None = None,
                      timeout: float = 30.0) -> None:
    errors: list = []
    try:
        producer.produce(topic, key=key, value=value, headers=headers or [],
                         on_delivery=lambda err, _msg: errors.append(err) if err else None)
        remaining = producer.flush(timeout)
    except Exception:
        _drop(producer)
        raise
    if remaining or errors:
        reason = list(errors) or "flush timed out"  # before the purge adds its own reports
        _drop(producer)
        raise DeliveryError(f"message to {topic!r} not delivered: {reason}")


class StatusRecord(Protocol):
    """Where a run's sent states are kept: ``{"sent": [event, ...], "sending": {"event", "at"} | None}``."""

    def load(self) -> dict | None: ...

    def save(self, record: dict) -> None: ...


class VariableStatusRecord:
    """A run's sent states in the Airflow Variable ``hatchway_job_status__<dag id>__<run id>``.

    Durable (the metadata DB), outside every task's XCom (cleared when that task retries),
    readable from tasks and their failure callbacks. Holds event names and times only.

    :param dag_id: the run's DAG.
    :param run_id: the run.
    """

    PREFIX = "hatchway_job_status__"

    def __init__(self, dag_id: str, run_id: str):
        self.key = f"{self.PREFIX}{dag_id}__{run_id}"[:250]

    def load(self) -> dict | None:
        from airflow.sdk import Variable

        return Variable.get(self.key, default=None, deserialize_json=True)

    def save(self, record: dict) -> None:
        from airflow.sdk import Variable

        Variable.set(self.key, record, description="status messages sent for this job run (hatchway)",
                     serialize_json=True)


def _status_consumer(config: JobPlatformConfig):
    from confluent_kafka import Consumer

    return Consumer({**kafka_settings(config.kafka_conn_id), "group.id": f"hatchway-status-check-{uuid.uuid4().hex}",
                     "enable.auto.commit": False, "auto.offset.reset": "earliest"})


def topic_ends(config: JobPlatformConfig) -> dict[str, int]:
    """The end offset of every partition of the status topic now (``{"0": 12, ...}``).

    Recorded before a send: a later check reads only what came after. (Offsets, not times:
    librdkafka's mock cluster does not answer offsets-for-times.) Waits for a broker that is
    away up to ``status_send_timeout_seconds``.
    """
    from confluent_kafka import TopicPartition

    timeout = config.status_send_timeout_seconds
    consumer = _status_consumer(config)
    topic = config.status_topic
    try:
        partitions = consumer.list_topics(topic, timeout=timeout).topics[topic].partitions
        return {str(p): consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)[1]
                for p in partitions}
    finally:
        consumer.close()


def topic_has(config: JobPlatformConfig, run_name: str, event: JobEvent, starts: dict[str, int]) -> bool:
    """Whether the status topic holds ``event`` for ``run_name`` after the offsets ``starts``
    (from :func:`topic_ends` before the send), reading each partition to its end as it is now."""
    import time

    from confluent_kafka import TopicPartition

    timeout = config.status_send_timeout_seconds
    consumer = _status_consumer(config)
    topic = config.status_topic
    try:
        partitions = consumer.list_topics(topic, timeout=timeout).topics[topic].partitions
        todo: dict[int, int] = {}
        assign = []
        for p in partitions:
            start = starts.get(str(p), 0)
            _low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)
            if start < high:
                todo[p] = high
                assign.append(TopicPartition(topic, p, start))
        if not assign:
            return False
        consumer.assign(assign)
        key = run_name.encode()
        deadline = time.monotonic() + timeout
        while todo and time.monotonic() < deadline:
            for message in consumer.consume(100, timeout=1.0):
                if message.error():
                    continue
                if message.key() == key:
                    try:
                        if json.loads(message.value()).get("event") == event.value:
                            return True
                    except ValueError:
                        pass
                if message.offset() + 1 >= todo.get(message.partition(), 0):
                    todo.pop(message.partition(), None)
        if todo:
            raise DeliveryError(f"could not read {topic!r} to its end to check for {run_name} {event.value}")
        return False
    finally:
        consumer.close()


class StatusSender:
    """Sends one job's status messages; events the backend should not see are dropped here.

    With a ``record``, each state is sent at most once per run and only in order (see the
    module's docstring); without one (intake's Failed for a request that never got a run)
    every call sends.

    :param config: job settings (topic, connection, which events are sent).
    :param producer: a confluent-kafka producer (default: from the Kafka connection).
    :param record: where this run's sent states are kept.
    """

    def __init__(self, config: JobPlatformConfig, producer=None, record: StatusRecord | None = None):
        self.config = config
        self._producer = producer
        self.record = record

    @property
    def producer(self):
        if self._producer is None:
            self._producer = make_producer(self.config.kafka_conn_id)
        return self._producer

    def send(self, run_name: str, event: JobEvent, trace_name: str | None = None,
             trace_exit: int | None = None, now: datetime | None = None) -> StatusMessage | None:
        if event not in self.config.sent_events:
            return None
        state = self._settle(run_name) if self.record is not None else None
        if state is not None:
            sent = [JobEvent(e) for e in state["sent"]]
            if event in sent:
                log.info("status %s: %s was sent already, not again", run_name, event.value)
                return None
            if not can_move(sent[-1] if sent else None, event):
                log.warning("status %s: %s refused after %s (states only move forward)", run_name, event.value,
                            sent[-1].value)
                return None
        message = StatusMessage(run_name=run_name, utc_time=now or datetime.now(timezone.utc), event=event,
                                trace_name=trace_name if event is JobEvent.FAILED else None,
                                trace_exit=trace_exit if event is JobEvent.FAILED else None)
        if state is not None:
            state["sending"] = {"event": event.value, "at": datetime.now(timezone.utc).isoformat(),
                                "after": topic_ends(self.config)}
            self.record.save(state)
        produce_and_flush(self.producer, self.config.status_topic, run_name.encode(), message.to_json(),
                          timeout=self.config.status_send_timeout_seconds)
        metrics.incr("status.sent", event=event.value)
        if state is not None:
            state["sent"].append(event.value)
            state["sending"] = None
            self.record.save(state)
        log.info("status %s: %s", run_name, event.value)
        return message

    def _settle(self, run_name: str) -> dict:
        """The record, with an unfinished send of an earlier try settled against the topic."""
        state = self.record.load() or {"sent": [], "sending": None}
        pending = state.get("sending")
        if pending:
            event = JobEvent(pending["event"])
            if topic_has(self.config, run_name, event, pending.get("after") or {}):
                log.info("status %s: %s reached the topic although its delivery report was lost", run_name,
                         event.value)
                state["sent"].append(event.value)
            state["sending"] = None
            self.record.save(state)
        return state
