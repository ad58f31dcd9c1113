"""WaitForSeqeraOperator in a real DAG run (``dag.test()``: deferral and trigger run in-process)
against the Seqera simulator: a success returns the event, a failure fails the task and leaves
the event in XCom for the notify and teardown tasks, which still run."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from hatchway_dev.endpoints import SeqeraSimulator

WS = 1001




DAG_FILE = """
from datetime import datetime, timezone

from airflow.sdk import DAG, task, teardown

from hatchway.operators.seqera import WaitForSeqeraOperator, cancel_seqera_run

for deferrable in (True, False):
    with DAG(dag_id=f"seqera_wait_{'deferred' if deferrable else 'inline'}", schedule=None,
             start_date=datetime(2025, 1, 1, tzinfo=timezone.utc)):
        ok = WaitForSeqeraOperator(task_id="wait_ok", run_name="op-{{ params.job }}-ok", poll_interval=0.2,
                                   search_prefix="op-", deferrable=deferrable, params={"job": "intp1"})
        bad = WaitForSeqeraOperator(task_id="wait_bad", run_name="op-intp1-bad", poll_interval=0.2,
                                    deferrable=deferrable)

        @task(trigger_rule="all_done")
        def notify(ti=None):
            event = ti.xcom_pull(task_ids="wait_bad", key="seqera_event")
            return {"event": event["event"], "trace_exit": event["trace_exit"], "trace_name": event["trace_name"]}

        @teardown
        def cancel_runs():
            return [cancel_seqera_run(name) for name in ("op-intp1-ok", "op-intp1-bad", "op-intp1-live")]

        [ok, bad] >> notify() >> cancel_runs()
"""


@pytest.fixture
def dag_bundle(tmp_path, monkeypatch):
    """A DAG bundle of this test's own: ``dag.test()`` runs only DAGs that live in a bundle."""
    folder = tmp_path / "seqera_dags"
    folder.mkdir()
    (folder / "seqera_wait.py").write_text(DAG_FILE)
    monkeypatch.setenv("AIRFLOW__DAG_PROCESSOR__DAG_BUNDLE_CONFIG_LIST", json.dumps([{
        "name": "seqera-test", "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
        "kwargs": {"path": str(folder), "refresh_interval": 0}}]))
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(folder))
    assert not bag.import_errors, bag.import_errors
    return bag


@pytest.mark.parametrize("deferrable", [True, False], ids=["deferred", "inline"])
def test_wait_returns_success_and_fails_with_the_event_in_xcom(airflow_db, sim, dag_bundle, deferrable):
    from support import task_states, xcom_values

    sim.create_runs([
        {"run_name": "op-intp1-ok", "workspace_id": WS, "course": {"kind": "succeed", "after": 1}},
        {"run_name": "op-intp1-bad", "workspace_id": WS, "course": {"kind": "fail", "after": 1}},
        {"run_name": "op-intp1-live", "workspace_id": WS, "course": {"kind": "running"}},
    ])
    dag = dag_bundle.get_dag(f"seqera_wait_{'deferred' if deferrable else 'inline'}")
    run = dag.test(run_after=datetime.now(timezone.utc))
    states = task_states(run)
    assert states == {"wait_ok": "success", "wait_bad": "failed", "notify": "success", "cancel_runs": "success"}
    xcoms = xcom_values(run)
    assert xcoms["wait_ok:return_value"]["event"] == "Succeeded"
    assert xcoms["wait_ok:seqera_event"]["workflow_id"]
    assert xcoms["wait_bad:seqera_event"]["trace_exit"] == 12
    assert xcoms["notify:return_value"] == {
        "event": "Failed", "trace_exit": 12,
        "trace_name": "Error executing process > 'PGSC_CALC:PGSC_CALC_APPLY:PLINK2_SCORE (1)'"}
    assert [r["cancelled"] for r in xcoms["cancel_runs:return_value"]] == [False, False, True]
    assert {r["runName"]: r["status"] for r in sim.runs()}["op-intp1-live"] == "CANCELLED"
