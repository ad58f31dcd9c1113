"""SeqeraHook against the Seqera simulator over real HTTP: ensure-style launch, retries with
backoff, auth failures that name the connection and never the token, and the teardown cancel."""

from __future__ import annotations

import asyncio
import json
import logging
import time

import pytest

from hatchway_dev.endpoints import SeqeraSimulator
from hatchway.hooks.seqera import SeqeraAuthError, SeqeraHook, SeqeraUnavailableError
from hatchway.operators.seqera import cancel_seqera_run

WS = 1001
PIPELINE = "https://github.com/pgscatalog/pgsc_calc"




@pytest.fixture
def hook(sim):
    h = SeqeraHook()
    yield h
    h.close()


def _launch(hook: SeqeraHook, name: str) -> str:
    return hook.launch(name, PIPELINE, "v2.0.0", {"k": "v"}, f"s3://bucket/{name}")


def test_launch_is_an_ensure_and_a_retry_makes_no_second_run(sim, hook):
    first = _launch(hook, "ens-intp1")
    assert _launch(hook, "ens-intp1") == first
    assert sim.calls()["routes"]["POST /workflow/launch"] == 1
    assert [r["runName"] for r in sim.runs()] == ["ens-intp1"]


def test_launch_after_a_failed_run_of_that_name_starts_a_new_run(sim, hook):
    sim.set_course("ens-intp2", "fail", after=0)
    failed = _launch(hook, "ens-intp2")
    assert hook.find_workflow("ens-intp2")["status"] == "FAILED"
    again = _launch(hook, "ens-intp2")
    assert again != failed
    assert hook.find_workflow("ens-intp2")["id"] == again  # the newest run of the name


def test_launch_whose_answer_was_lost_is_found_not_sent_twice(sim, monkeypatch):
    # The first launch hangs past the client timeout, but the server then creates the run.
    conn = sim.connection(timeout=1, backoff_base=1.0, backoff_max=1.0)
    monkeypatch.setenv("AIRFLOW_CONN_SEQERA_SLOW", json.dumps(conn))
    sim.fault("hang", route="POST /workflow/launch", seconds=1.2)
    hook = SeqeraHook("seqera_slow")
    try:
        workflow_id = _launch(hook, "ens-intp3")
    finally:
        hook.close()
    runs = sim.runs()
    assert [r["id"] for r in runs] == [workflow_id]
    assert sim.calls()["routes"]["POST /workflow/launch"] == 1


def test_429_and_500_are_retried_then_succeed(sim, hook):
    sim.fault(429, count=2, route="GET /workflow", retry_after=0)
    sim.fault(500, count=1, route="GET /workflow")
    assert hook.list_workflows()["workflows"] == []
    assert [entry[3] for entry in sim.calls()["log"]] == [429, 429, 500, 200]


def test_timeouts_are_retried(sim, hook):
    sim.fault("hang", count=1, route="GET /workflow", seconds=3)  # past the connection's 2 s timeout
    t0 = time.monotonic()
    assert hook.list_workflows()["totalSize"] == 0
    assert 2.0 <= time.monotonic() - t0 < 5
    assert sim.calls()["routes"]["GET /workflow"] == 2


def test_retries_are_bounded(sim, hook):
    sim.fault(503, count=10, route="GET /workflow")
    with pytest.raises(SeqeraUnavailableError, match=r"'seqera_default'.*after 4 attempts: HTTP 503"):
        hook.list_workflows()
    assert sim.calls()["routes"]["GET /workflow"] == 4


def test_wrong_token_fails_at_once_naming_the_connection_never_the_token(sim, monkeypatch, caplog):
    wrong = "wrong-token-0123456789"
    monkeypatch.setenv("AIRFLOW_CONN_SEQERA_WRONG", json.dumps(sim.connection(token=wrong)))
    hook = SeqeraHook("seqera_wrong")
    caplog.set_level(logging.DEBUG)
    try:
        with pytest.raises(SeqeraAuthError) as err:
            hook.list_workflows()
    finally:
        hook.close()
    assert "'seqera_wrong'" in str(err.value) and "HTTP 401" in str(err.value)
    assert wrong not in str(err.value) and sim.token not in str(err.value)
    assert sim.calls()["routes"]["GET /workflow"] == 1  # not retried
    assert wrong not in caplog.text and sim.token not in caplog.text


def test_forbidden_workspace_is_403_auth_error(sim, hook):
    with pytest.raises(SeqeraAuthError, match=r"workspace 666 \(HTTP 403"):
        hook.list_workflows(workspace_id=666)
    assert sim.calls()["routes"]["GET /workflow"] == 1


def test_async_methods_match_sync_ones(sim):
    async def go():
        hook = SeqeraHook()
        try:
            sim.create_runs([{"run_name": "as-intp1", "workspace_id": WS, "course": {"kind": "running"}}])
            found = await hook.afind_workflow("as-intp1")
            described = await hook.aget_workflow(found["id"])
            await hook.acancel(found["id"])
            return found, described, await hook.afind_workflow("as-intp1")
        finally:
            await hook.aclose()

    found, described, after = asyncio.run(go())
    assert described["workflow"]["id"] == found["id"] and described["workspaceId"] == WS
    assert after["status"] == "CANCELLED"


def test_teardown_cancel_cancels_a_live_run_only(sim):
    sim.create_runs([{"run_name": "td-live", "workspace_id": WS, "course": {"kind": "running"}},
                     {"run_name": "td-done", "workspace_id": WS, "course": {"kind": "succeed", "after": 0}}])
    live = cancel_seqera_run("td-live")
    assert live["cancelled"] is True and live["status"] == "RUNNING"
    done = cancel_seqera_run("td-done")
    assert done["cancelled"] is False and done["status"] == "SUCCEEDED"
    assert cancel_seqera_run("td-missing") == {"run_name": "td-missing", "workflow_id": None, "status": None,
                                               "cancelled": False}
    assert {r["runName"]: r["status"] for r in sim.runs()} == {"td-live": "CANCELLED", "td-done": "SUCCEEDED"}
    assert sim.calls()["routes"]["POST /workflow/{workflowId}/cancel"] == 1
