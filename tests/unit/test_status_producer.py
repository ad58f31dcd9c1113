"""One idempotent producer per process and Kafka settings, dropped when a send fails.

A real librdkafka producer against a port nobody listens on: its send cannot be acknowledged,
so it must not be handed out again (it would still hold the message and could send it behind
a retry's back).
"""

from __future__ import annotations

import json
import socket
import time

import pytest

from hatchway.jobs.status import DeliveryError, make_producer, produce_and_flush


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def nowhere(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_KAFKA_NOWHERE", json.dumps({"conn_type": "kafka", "extra": {
        "bootstrap.servers": f"127.0.0.1:{_closed_port()}", "log_level": 0}}))
    return "kafka_nowhere"


def test_the_same_settings_get_the_same_producer_and_other_settings_another(nowhere, monkeypatch):
    first = make_producer(nowhere)
    assert make_producer(nowhere) is first
    monkeypatch.setenv("AIRFLOW_CONN_KAFKA_ELSEWHERE", json.dumps({"conn_type": "kafka", "extra": {
        "bootstrap.servers": "127.0.0.1:1", "log_level": 0}}))
    assert make_producer("kafka_elsewhere") is not first


def test_a_producer_whose_send_failed_is_not_handed_out_again_and_holds_nothing(nowhere):
    producer = make_producer(nowhere)
    with pytest.raises(DeliveryError, match="flush timed out"):  # still queued, and could go out later
        produce_and_flush(producer, "status", b"run", b"{}", timeout=0.5)
    # purged: nothing left to go out behind a retry's back (unpurged, it would wait out its
    # message timeout, five minutes, queued)
    deadline = time.monotonic() + 5
    while len(producer) and time.monotonic() < deadline:
        producer.poll(0.1)
    assert len(producer) == 0
    assert make_producer(nowhere) is not producer
