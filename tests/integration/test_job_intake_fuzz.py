"""1,000 random and mutated messages through the real job_intake DAG on the Kafka mock cluster:
every valid one gets its job_run run in Airflow, every invalid one a dead letter with a reason,
and intake never stops."""

from __future__ import annotations

import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hatchway.domain.jobs import JobRequest
from support import run_dag, xcom_values
from support.jobs import job_runs, request

FIRST_JOB = 700_000  # job ids of their own: other tests' runs live in the same metadata DB

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
    body = request(FIRST_JOB + draw(st.integers(1, 400)))
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


@settings(max_examples=1, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(messages(), min_size=1000, max_size=1000))
def test_thousand_fuzzed_messages_each_get_a_run_or_a_dead_letter(jobs, airflow_db, batch):
    jobs.produce(batch, keys=[str(i).encode() for i in range(len(batch))])
    valid_ids = set()
    invalid = 0
    for raw in batch:
        try:
            valid_ids.add(JobRequest.model_validate_json(raw).job_id)
        except Exception:  # noqa: BLE001 - the oracle: pydantic says no
            invalid += 1
    expected_runs = {f"job__{job_id.lower()}" for job_id in valid_ids}

    triggered, duplicates, dead_lettered, rounds = [], [], 0, 0
    while rounds < 5 and (dead_lettered < invalid or not expected_runs <= set(job_runs())):
        dag_run = run_dag("job_intake")
        assert dag_run.state == "success"  # a bad message never stops intake
        summary = xcom_values(dag_run)["drain_intake:return_value"]
        triggered += summary["triggered"]
        duplicates += summary["duplicates"]
        dead_lettered += summary["dead_lettered"]
        rounds += 1

    assert dead_lettered == invalid
    assert len(triggered) + len(duplicates) == len(batch) - invalid
    assert sorted(triggered) == sorted(set(triggered)) and set(triggered) == valid_ids  # one run per valid job
    runs = job_runs()
    assert expected_runs <= set(runs)
    assert all(runs[r]["pipeline_param"]["id"].lower() == r.removeprefix("job__") for r in expected_runs)
    letters = jobs.read("dead_letter_topic", expect=invalid, timeout=60)
    assert len(letters) == invalid
    assert all(dict(m.headers())["hatchway-error"] for m in letters)
