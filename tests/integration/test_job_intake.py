"""job_intake against the Kafka mock cluster, through the real DAG: runs, duplicates, dead letters."""

from __future__ import annotations

import json

from support import run_dag, task_states, xcom_values
from support.jobs import job_runs, request


def drain():
    run = run_dag("job_intake")
    assert run.state == "success", task_states(run)
    return xcom_values(run)["drain_intake:return_value"]


def test_each_valid_request_becomes_one_run_named_after_its_job(jobs, airflow_db):
    before = set(job_runs())
    jobs.produce([request(1), request(2)])
    summary = drain()
    assert sorted(summary["triggered"]) == ["INTP00000000001", "INTP00000000002"]
    new = {k: v for k, v in job_runs().items() if k not in before}
    assert set(new) == {"job__intp00000000001", "job__intp00000000002"}
    assert new["job__intp00000000001"]["pipeline_param"]["id"] == "INTP00000000001"


def test_duplicate_and_redelivered_requests_make_one_run(jobs, airflow_db):
    jobs.produce([request(11), request(11)])
    first = drain()
    assert first["triggered"] == ["INTP00000000011"] and first["duplicates"] == ["INTP00000000011"]
    jobs.produce([request(11)])  # the backend sends it again later
    second = drain()
    assert second["triggered"] == [] and second["duplicates"] == ["INTP00000000011"]
    assert list(job_runs()).count("job__intp00000000011") == 1


def test_offsets_are_committed_so_a_new_round_sees_nothing_twice(jobs, airflow_db):
    jobs.produce([request(21)])
    assert drain()["triggered"] == ["INTP00000000021"]
    again = drain()
    assert again["triggered"] == [] and again["duplicates"] == [] and again["dead_lettered"] == 0


def test_invalid_messages_go_to_the_dead_letter_with_reason_and_original_bytes(jobs, airflow_db):
    bad_schema = request(31)
    bad_schema["globus_details"]["files"][0]["filename"] = "hapnest.pgen"  # not .c4gh
    not_json = b"{this is not json"
    jobs.set(max_message_bytes=8192)
    oversize = json.dumps({**request(32), "padding": "x" * 20_000}).encode()
    jobs.produce([not_json, bad_schema, oversize, request(33)],
                 keys=[b"k1", b"INTP00000000031", b"INTP00000000032", b"INTP00000000033"])
    summary = drain()
    assert summary["dead_lettered"] == 3 and summary["triggered"] == ["INTP00000000033"]

    letters = jobs.read("dead_letter_topic", expect=3)
    by_key = {m.key(): m for m in letters}
    assert by_key[b"k1"].value() == not_json
    reason = dict(by_key[b"INTP00000000031"].headers())["hatchway-error"].decode()
    assert "must end with .c4gh" in reason
    assert json.loads(by_key[b"INTP00000000031"].value()) == bad_schema
    assert "over the 8192-byte limit" in dict(by_key[b"INTP00000000032"].headers())["hatchway-error"].decode()

    failed = [s for s in jobs.statuses(expect=3) if s["event"] == "Failed"]
    assert sorted(s["run_name"] for s in failed) == ["hwtest-intp00000000031", "hwtest-intp00000000032"]
    assert all(s["trace_name"].startswith("invalid request") and s["trace_exit"] is None for s in failed)


def test_an_invalid_copy_of_a_job_that_has_its_run_is_dead_lettered_without_a_failed_status(jobs, airflow_db):
    jobs.produce([request(41)])
    assert drain()["triggered"] == ["INTP00000000041"]
    # A redelivered copy, damaged on the way, of the job whose run is live; and a bad job without a run.
    damaged, never_ran = request(41), request(42)
    for body in (damaged, never_ran):
        body["pipeline_param"]["target_genomes"][0]["sampleset"] = "has_underscore"
    jobs.produce([damaged, never_ran])
    summary = drain()
    assert summary["dead_lettered"] == 2 and summary["triggered"] == [] and summary["duplicates"] == []

    letters = {m.key(): m for m in jobs.read("dead_letter_topic", expect=2)}
    assert set(letters) == {b"INTP00000000041", b"INTP00000000042"}
    assert "can't contain '_'" in dict(letters[b"INTP00000000041"].headers())["hatchway-error"].decode()
    statuses = jobs.statuses(expect=1)
    assert [s["run_name"] for s in statuses if s["event"] == "Failed"] == ["hwtest-intp00000000042"]
    assert not [s for s in statuses if s["run_name"] == "hwtest-intp00000000041"]
    assert list(job_runs()).count("job__intp00000000041") == 1
