"""Helpers for the job lifecycle tests: produce requests, read topics, list runs."""

from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

EXAMPLE = json.loads((Path(__file__).resolve().parents[2] / "include/examples/intervene-job-request.json").read_text())


def request(job_number: int) -> dict[str, Any]:
    """The real INTERVENE example request with its own job id."""
    body = copy.deepcopy(EXAMPLE)
    body["pipeline_param"]["id"] = f"INTP{job_number:011d}"
    return body


@dataclass
class JobsEnv:
    config: dict
    bootstrap: str
    monkeypatch: Any

    def set(self, **changes) -> None:
        self.config.update(changes)
        self.monkeypatch.setenv("AIRFLOW_VAR_HATCHWAY_JOBS_CONFIG", json.dumps(self.config))

    def produce(self, values: list[bytes | dict], keys: list[bytes] | None = None) -> None:
        from confluent_kafka import Producer

        producer = Producer({"bootstrap.servers": self.bootstrap})
        for i, value in enumerate(values):
            raw = json.dumps(value).encode() if isinstance(value, dict) else value
            key = keys[i] if keys else (value["pipeline_param"]["id"].encode() if isinstance(value, dict) else None)
            producer.produce(self.config["intake_topic"], value=raw, key=key)
        assert producer.flush(10) == 0

    def read(self, topic_key: str, expect: int = 1, timeout: float = 15.0) -> list:
        """Every message on a topic (from the start), waiting up to ``timeout`` for ``expect`` of them."""
        from hatchway_dev.kafka_mock import read_topic

        return read_topic(self.bootstrap, self.config[topic_key], expect=expect, timeout=timeout)

    def statuses(self, expect: int = 1) -> list[dict]:
        return [json.loads(m.value()) for m in self.read("status_topic", expect)]


def job_runs(dag_id: str = "job_run") -> dict[str, Any]:
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        return {r.run_id: r.conf for r in session.query(DagRun).filter(DagRun.dag_id == dag_id)}
