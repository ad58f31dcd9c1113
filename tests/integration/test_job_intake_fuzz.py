"""1,000 random and mutated messages through the intake on the Kafka mock cluster: every valid
one gets its run, every invalid one a dead letter with a reason, and intake never stops."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hatchway.domain.jobs import JobPlatformConfig, JobRequest
from hatchway.jobs.intake import IntakeDrainer
from hatchway.jobs.status import make_producer
from tests_jobs import request

json_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                           lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                                        max_size=4), max_leaves=12)
PATHS = [("pipeline_param", "id"), ("pipeline_param", "target_genomes"), ("globus_details", "files"),
         ("secret_key_details", "secret_id"), ("pipeline_param", "nxf_params_file"), ("globus_details",)]


@st.composite
def messages(draw) -> bytes:
    kind = draw(st.sampled_from(["valid", "mutated", "json", "bytes"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "json":
        return json.dumps(draw(json_values)).encode()
    body = request(draw(st.integers(1, 400)))
    if kind == "mutated":
        path = draw(st.sampled_from(PATHS))
        target = body
        for key in path[:-1]:
            target = target[key]
        if draw(st.booleans()):
            target.pop(path[-1], None)
        else:
            target[path[-1]] = draw(json_values)
    return json.dumps(body).encode()


class Recorder:
    """Stands in for Airflow's run table: it records runs by id, as the real one keys them."""

    def __init__(self):
        self.runs: dict[str, dict] = {}

    def __call__(self, dag_id: str, run_id: str, conf: dict) -> bool:
        if run_id in self.runs:
            return False
        self.runs[run_id] = conf
        return True


@settings(max_examples=1, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(messages(), min_size=1000, max_size=1000))
def test_thousand_fuzzed_messages_each_get_a_run_or_a_dead_letter(jobs, batch):
    config = JobPlatformConfig(**jobs.config)
    jobs.produce(batch, keys=[str(i).encode() for i in range(len(batch))])
    from airflow.providers.apache.kafka.hooks.consume import KafkaConsumerHook

    consumer = KafkaConsumerHook([config.intake_topic], config.kafka_conn_id).get_consumer()
    recorder = Recorder()
    try:
        summary = IntakeDrainer(config, consumer, make_producer(config.kafka_conn_id), recorder).drain(
            max_messages=5000, max_seconds=120, idle_seconds=5)
    finally:
        consumer.close()

    valid_ids = set()
    invalid = 0
    for raw in batch:
        try:
            valid_ids.add(JobRequest.model_validate_json(raw).job_id)
        except Exception:  # noqa: BLE001 - the oracle: pydantic says no
            invalid += 1
    assert summary.dead_lettered == invalid
    assert len(summary.triggered) + len(summary.duplicates) == len(batch) - invalid
    assert set(summary.triggered) == valid_ids  # one run per distinct valid job
    assert {r.removeprefix("job__").upper() for r in recorder.runs} == valid_ids
    letters = jobs.read("dead_letter_topic", expect=invalid, timeout=60)
    assert len(letters) == invalid
    assert all(dict(m.headers())["hatchway-error"] for m in letters)
