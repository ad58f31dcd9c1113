"""SeqeraRunTrigger against the Seqera simulator over real HTTP: each outcome, both timeouts,
retried faults, fast auth failures, cancel, and one list call per workspace per interval."""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict

import pytest

from hatchway_dev.endpoints import SeqeraSimulator
from hatchway.domain.jobs import JobEvent, seqera_event
from hatchway.hooks.seqera import SeqeraHook, newest_by_name
from hatchway.operators.seqera import cancel_seqera_run
from hatchway.triggers.seqera import SeqeraRunTrigger, pollers
from include.simulators.seqera import DEFAULT_ERROR_REPORT

WS, WS2 = 1001, 2002




async def _event(trigger: SeqeraRunTrigger) -> dict:
    async for event in trigger.run():
        return event.payload
    raise AssertionError("trigger ended without an event")



@pytest.fixture(scope="module")
def seqera_simulator(tmp_path_factory):
    """A simulator of this module's own: poll counts here must not see other modules' clients."""
    from conftest import SEQERA_FORBIDDEN_WS, SEQERA_WS

    server = SeqeraSimulator(workspace_id=SEQERA_WS, forbidden_workspaces=(SEQERA_FORBIDDEN_WS,),
                             conn_extra={"timeout": 2, "max_attempts": 4, "backoff_base": 0.05, "backoff_max": 0.2})
    server.start(tmp_path_factory.mktemp("seqera-trigger"))
    yield server
    server.stop()


def wait(*triggers: SeqeraRunTrigger, limit: float = 30) -> list[dict]:
    async def all_of():
        events = await asyncio.wait_for(asyncio.gather(*(_event(t) for t in triggers)), limit)
        await asyncio.sleep(0)  # let the pollers see they have no subscribers left
        return events

    return asyncio.run(all_of())


def trig(name: str, **kwargs) -> SeqeraRunTrigger:
    return SeqeraRunTrigger(name, **{"poll_interval": 0.2, **kwargs})


def polls(sim: SeqeraSimulator, name: str) -> int:
    return next(r["polls"] for r in sim.runs() if r["runName"] == name)


def test_success_after_n_polls(sim):
    sim.create_runs([{"run_name": "tr-ok", "workspace_id": WS, "course": {"kind": "succeed", "after": 3}}])
    [event] = wait(trig("tr-ok"))
    assert event["status"] == "success" and event["event"] == JobEvent.SUCCEEDED.value
    assert event["seqera_status"] == "SUCCEEDED" and event["workflow_id"] and event["workspace_id"] == WS
    assert event["running_since"] is not None
    assert polls(sim, "tr-ok") == 4  # three RUNNING, then SUCCEEDED


def test_failure_carries_exit_status_and_first_line_of_error_report(sim):
    sim.set_course("tr-fail", "fail", after=1)  # scripted before the run exists
    sim.create_runs([{"run_name": "tr-fail", "workspace_id": WS}])
    [event] = wait(trig("tr-fail"))
    assert (event["status"], event["event"], event["error"]) == ("failed", "Failed", "run_failed")
    assert event["trace_exit"] == 12
    assert event["trace_name"] == DEFAULT_ERROR_REPORT.splitlines()[0]
    assert "exit 12" in event["reason"]


def test_not_started_timeout_fails_with_null_trace(sim):
    sim.create_runs([{"run_name": "tr-never", "workspace_id": WS, "course": {"kind": "not_started"}}])
    t0 = time.monotonic()
    [event] = wait(trig("tr-never", timeout_seconds=1.0))
    assert 0.9 <= time.monotonic() - t0 < 5
    assert (event["status"], event["error"], event["trace_exit"], event["trace_name"]) == \
        ("failed", "not_started_timeout", None, None)
    assert "did not start" in event["reason"]


def test_restarted_trigger_keeps_the_original_clock(sim):
    sim.create_runs([{"run_name": "tr-late", "workspace_id": WS, "course": {"kind": "not_started"}}])
    _, kwargs = trig("tr-late", timeout_seconds=60, started_at=time.time() - 120).serialize()
    t0 = time.monotonic()
    [event] = wait(SeqeraRunTrigger(**kwargs))
    assert event["error"] == "not_started_timeout"
    assert time.monotonic() - t0 < 3  # the hour did not start again


def test_restarted_trigger_reports_an_end_reached_while_it_was_down(sim):
    sim.create_runs([{"run_name": "tr-ended", "workspace_id": WS, "course": {"kind": "succeed", "after": 0}}])
    [event] = wait(trig("tr-ended", timeout_seconds=60, started_at=time.time() - 120))
    assert event["status"] == "success"


def test_deployed_timeout_counts_from_running(sim):
    sim.create_runs([{"run_name": "tr-stuck", "workspace_id": WS, "course": {"kind": "running"}}])
    [event] = wait(trig("tr-stuck", timeout_seconds=60, deployed_timeout_seconds=1.5))
    assert (event["status"], event["error"], event["trace_exit"], event["trace_name"]) == \
        ("failed", "deployed_timeout", None, None)
    assert event["seqera_status"] == "RUNNING" and "did not finish" in event["reason"]


def test_429_and_500_are_retried_then_the_run_succeeds(sim):
    sim.create_runs([{"run_name": "tr-flaky", "workspace_id": WS, "course": {"kind": "succeed", "after": 1}}])
    sim.fault(429, count=2, route="GET /workflow", retry_after=0)
    sim.fault(500, count=2, route="GET /workflow")
    [event] = wait(trig("tr-flaky"))
    assert event["status"] == "success"
    statuses = [entry[3] for entry in sim.calls()["log"]]
    assert statuses[:4] == [429, 429, 500, 500] and set(statuses[4:]) == {200}


def test_poll_failures_past_retries_keep_waiting(sim):
    sim.create_runs([{"run_name": "tr-outage", "workspace_id": WS, "course": {"kind": "succeed", "after": 0}}])
    sim.fault(503, count=4, route="GET /workflow")  # one whole poll round fails (4 attempts)
    [event] = wait(trig("tr-outage"))
    assert event["status"] == "success"


def test_wrong_token_fails_fast_with_a_clear_reason(sim, monkeypatch):
    wrong = "not-the-token-987654321"
    monkeypatch.setenv("AIRFLOW_CONN_SEQERA_WRONG", json.dumps(sim.connection(token=wrong)))
    sim.create_runs([{"run_name": "tr-auth", "workspace_id": WS}])
    t0 = time.monotonic()
    [event] = wait(trig("tr-auth", seqera_conn_id="seqera_wrong", poll_interval=30))
    assert time.monotonic() - t0 < 2
    assert (event["status"], event["event"], event["error"]) == ("failed", "Failed", "auth")
    assert "'seqera_wrong'" in event["reason"] and "HTTP 401" in event["reason"]
    assert wrong not in json.dumps(event) and sim.token not in json.dumps(event)
    assert sim.calls()["routes"]["GET /workflow"] == 1


def test_rotated_token_is_picked_up_without_failing_the_wait(sim, monkeypatch):
    sim.create_runs([{"run_name": "tr-rotate", "workspace_id": WS, "course": {"kind": "running"}}])

    async def scenario():
        waiting = asyncio.ensure_future(_event(trig("tr-rotate")))
        await asyncio.sleep(0.5)
        monkeypatch.setenv("AIRFLOW_CONN_SEQERA_DEFAULT", json.dumps(sim.connection(token="rotated-token-2")))
        await asyncio.to_thread(sim.configure, token="rotated-token-2")
        await asyncio.sleep(0.5)
        assert not waiting.done()
        await asyncio.to_thread(sim.set_course, "tr-rotate", "succeed", 0)
        return await asyncio.wait_for(waiting, 10)

    event = asyncio.run(scenario())
    assert event["status"] == "success"
    assert 401 in [entry[3] for entry in sim.calls()["log"]]


def test_missing_connection_fails_with_a_clear_reason(sim):
    [event] = wait(trig("tr-noconn", seqera_conn_id="seqera_nowhere"))
    assert event["error"] == "config" and "'seqera_nowhere'" in event["reason"]


def test_forbidden_workspace_fails_fast(sim):
    [event] = wait(trig("tr-forbidden", workspace_id=666, poll_interval=30))
    assert event["error"] == "auth" and "HTTP 403" in event["reason"]


def test_cancelled_run_is_failed(sim):
    sim.create_runs([{"run_name": "tr-cancel", "workspace_id": WS, "course": {"kind": "running"}}])

    async def scenario():
        waiting = asyncio.ensure_future(_event(trig("tr-cancel")))
        await asyncio.sleep(0.5)
        assert not waiting.done()
        result = await asyncio.to_thread(cancel_seqera_run, "tr-cancel")
        return result, await asyncio.wait_for(waiting, 10)

    result, event = asyncio.run(scenario())
    assert result["cancelled"] is True
    assert (event["status"], event["event"], event["error"], event["seqera_status"]) == \
        ("failed", "Failed", "run_cancelled", "CANCELLED")


async def per_job_wait(hook: SeqeraHook, name: str, workspace_id: int, interval: float) -> None:
    """hattivatti's way, the baseline: one ``search=<run name>&max=1`` call per job per interval."""
    while True:
        page = await hook.alist_workflows(name, workspace_id, max=1)
        wf = newest_by_name(page.get("workflows") or [], {name}).get(name)
        if wf and seqera_event(wf.get("status")) in (JobEvent.SUCCEEDED, JobEvent.FAILED):
            return
        await asyncio.sleep(interval)


def _list_calls_per_workspace(log: list, since: float) -> dict[int, list[float]]:
    times: dict[int, list[float]] = defaultdict(list)
    for t, route, workspace, status in log:
        if route == "GET /workflow" and t >= since:
            times[workspace].append(t)
    return times


def test_fifty_waiting_runs_share_one_list_call_per_interval(sim):
    interval = 1.0
    runs = ([{"run_name": f"bt-intp{i:03d}", "workspace_id": WS, "course": {"kind": "succeed", "after": 2 + i % 3}}
             for i in range(50)]
            + [{"run_name": f"bt-intp{i:03d}", "workspace_id": WS2, "course": {"kind": "succeed", "after": 2}}
               for i in range(50, 54)])
    sim.create_runs(runs)
    # A workspace with finished history the lists must page through (or the prefix filter skip).
    sim.create_runs([{"run_name": f"old-run-{i}", "workspace_id": WS, "course": {"kind": "succeed", "after": 0}}
                     for i in range(30)])

    async def batched():
        seen_pollers = []
        tasks = [asyncio.ensure_future(_event(SeqeraRunTrigger(r["run_name"], workspace_id=r["workspace_id"],
                                                               poll_interval=interval, search_prefix="bt-")))
                 for r in runs]
        async with asyncio.timeout(30):
            while sum(len(p.subs) for p in pollers().values()) < len(runs):  # all have subscribed
                await asyncio.sleep(0.01)
        seen_pollers.append(len(pollers()))
        events = await asyncio.wait_for(asyncio.gather(*tasks), 30)
        await asyncio.sleep(0.05)
        return events, seen_pollers[0], len(pollers())

    t0 = time.time()
    events, live_pollers, pollers_left = asyncio.run(batched())
    t1 = time.time()
    assert [e["status"] for e in events] == ["success"] * len(runs)
    assert (live_pollers, pollers_left) == (2, 0)  # one per workspace, gone when nobody waits
    batched_calls = _list_calls_per_workspace(sim.calls(since=t0)["log"], t0)
    for workspace, times in batched_calls.items():
        gaps = [b - a for a, b in zip(times, times[1:])]
        assert min(gaps) >= 0.9 * interval, (workspace, gaps)  # at most one list call per interval
    assert len(batched_calls[WS]) <= (t1 - t0) / interval + 1
    rounds = len(batched_calls[WS])

    # Baseline, same runs replayed: one call per job per interval.
    sim.reset()
    sim.create_runs(runs)

    async def per_job():
        hook = SeqeraHook()
        try:
            await asyncio.wait_for(asyncio.gather(*(per_job_wait(hook, r["run_name"], r["workspace_id"], interval)
                                                    for r in runs)), 30)
        finally:
            await hook.aclose()

    t2 = time.time()
    asyncio.run(per_job())
    naive = _list_calls_per_workspace(sim.calls(since=t2)["log"], t2)
    first_interval = [t for t in naive[WS] if t < naive[WS][0] + 0.9 * interval]
    assert len(first_interval) == 50  # one call per waiting job in the first interval alone
    print(f"\nlist calls for {len(runs)} runs in 2 workspaces: batched {sum(map(len, batched_calls.values()))} "
          f"({rounds} rounds in workspace {WS}), one-call-per-job {sum(map(len, naive.values()))}")
    assert sum(map(len, naive.values())) > 10 * sum(map(len, batched_calls.values()))


def test_page_size_grows_with_the_waiting_runs_so_one_call_serves_an_interval(sim):
    """250 runs waiting in one workspace with the default page size (100): the shared poller asks
    for a page that holds them all, so each interval costs one list call, not three."""
    runs = [{"run_name": f"pg-intp{i:03d}", "workspace_id": WS, "course": {"kind": "succeed", "after": 3}}
            for i in range(250)]
    sim.create_runs(runs)

    async def waiting():
        tasks = [asyncio.ensure_future(_event(SeqeraRunTrigger(r["run_name"], workspace_id=WS, poll_interval=0.5,
                                                               search_prefix="pg-"))) for r in runs]
        return await asyncio.wait_for(asyncio.gather(*tasks), 60)

    t0 = time.time()
    events = asyncio.run(waiting())
    assert [e["status"] for e in events] == ["success"] * len(runs)
    calls = [entry for entry in sim.calls(since=t0)["log"] if entry[1] == "GET /workflow"]
    # Each run needs 3 polls to succeed (a 4th sees SUCCEEDED): about 4 rounds, one call each.
    assert len(calls) <= 6, len(calls)


# --- Started in the triggerer (start_from_trigger): rendered there, ended there -----------------

async def _end_event(trigger: SeqeraRunTrigger):
    async for event in trigger.run():
        return event
    raise AssertionError("trigger ended without an event")


def _started_in_triggerer(context: dict, **operator_kwargs) -> SeqeraRunTrigger:
    """What the triggerer does for a task that starts there: the trigger built from the
    operator's ``start_trigger_args``, given the task instance, its template fields rendered."""
    from types import SimpleNamespace

    from hatchway.operators.seqera import TRIGGER_CLASSPATH, WaitForSeqeraOperator

    operator = WaitForSeqeraOperator(task_id="wait", start_from_trigger=True, **{"poll_interval": 0.2, **operator_kwargs})
    args = operator.start_trigger_args
    assert (args.trigger_cls, args.next_method, operator.retries) == (TRIGGER_CLASSPATH, "execute_complete", 0)
    trigger = SeqeraRunTrigger(**args.trigger_kwargs)
    trigger.task_instance = SimpleNamespace(task_id="wait", task=operator)
    trigger.render_template_fields(context=context)
    return trigger


def test_a_wait_started_in_the_triggerer_renders_its_templates_and_ends_the_task_with_its_xcom(sim):
    from airflow.triggers.base import TaskSuccessEvent

    sim.create_runs([{"run_name": "tr-sft-a1", "workspace_id": WS, "course": {"kind": "succeed", "after": 1}}])
    launched = time.time() - 5
    trigger = _started_in_triggerer({"run_id": "tr-sft", "params": {"ws": WS, "launched": launched}},
                                    run_name="{{ run_id }}-a1", workspace_id="{{ params.ws }}",
                                    started_at="{{ params.launched }}", search_prefix="tr-")
    event = asyncio.run(asyncio.wait_for(_end_event(trigger), 30))
    assert isinstance(event, TaskSuccessEvent)
    pushed = event.xcoms["seqera_event"]
    assert event.xcoms["return_value"] == pushed
    assert (pushed["status"], pushed["run_name"], pushed["workspace_id"]) == ("success", "tr-sft-a1", WS)
    assert pushed["started_at"] == pytest.approx(launched)  # the launch's clock, not the triggerer's


def test_a_failed_run_ends_the_task_failed_with_the_event_for_the_teardowns(sim):
    from airflow.triggers.base import TaskFailedEvent

    sim.create_runs([{"run_name": "tr-sft-b1", "workspace_id": WS, "course": {"kind": "fail", "after": 1}}])
    trigger = _started_in_triggerer({"run_id": "tr-sft-b1"}, run_name="{{ run_id }}")
    event = asyncio.run(asyncio.wait_for(_end_event(trigger), 30))
    assert isinstance(event, TaskFailedEvent)
    assert set(event.xcoms) == {"seqera_event"}  # no return value for a failed wait
    failed = event.xcoms["seqera_event"]
    assert failed["status"] == "failed" and failed["error"] == "run_failed" and failed["trace_exit"] is not None


def test_a_template_that_rendered_to_nothing_fails_the_task_with_a_reason_not_a_crash(sim):
    from airflow.triggers.base import TaskFailedEvent

    trigger = _started_in_triggerer({"params": {"ws": "x"}}, run_name="{{ missing }}", workspace_id="{{ params.ws }}")
    event = asyncio.run(asyncio.wait_for(_end_event(trigger), 10))
    assert isinstance(event, TaskFailedEvent)
    failed = event.xcoms["seqera_event"]
    assert failed["error"] == "config" and "could not start" in failed["reason"]


def test_the_jobs_config_is_read_by_the_trigger_itself(sim, monkeypatch):
    from airflow.triggers.base import TaskSuccessEvent

    sim.create_runs([{"run_name": "ns-sft-intp7", "workspace_id": WS, "course": {"kind": "succeed", "after": 1}}])
    monkeypatch.setenv("AIRFLOW_VAR_HATCHWAY_JOBS_CONFIG_SFT", json.dumps(
        {"namespace": "ns-sft", "poll_interval_seconds": 1, "timeout_seconds": 60}))
    trigger = SeqeraRunTrigger("ns-sft-intp7", seqera_conn_id="seqera_nowhere", poll_interval=3600,
                               end_task=True, settings_from="jobs:hatchway_jobs_config_sft")
    event = asyncio.run(asyncio.wait_for(_end_event(trigger), 30))
    assert isinstance(event, TaskSuccessEvent), event.xcoms  # the Variable's connection, not the argument's
    assert trigger.search_prefix == "ns-sft-" and trigger.poll_interval == 1


def test_the_wes_settings_are_read_by_the_trigger_itself_workspace_and_all(sim, monkeypatch):
    from airflow.triggers.base import TaskSuccessEvent

    sim.create_runs([{"run_name": "wes-sft-intp8", "workspace_id": WS2, "course": {"kind": "succeed", "after": 1}}])
    monkeypatch.setenv("AIRFLOW_VAR_HATCHWAY_WES_CONFIG_SFT", json.dumps(
        {"seqera_workspace_id": WS2, "poll_interval_seconds": 1, "timeout_seconds": 60}))
    trigger = SeqeraRunTrigger("wes-sft-intp8", workspace_id=WS, seqera_conn_id="seqera_nowhere", poll_interval=3600,
                               search_prefix="wes-", end_task=True, settings_from="wes:hatchway_wes_config_sft")
    event = asyncio.run(asyncio.wait_for(_end_event(trigger), 30))
    assert isinstance(event, TaskSuccessEvent), event.xcoms  # found in the settings' workspace, not the argument's
    assert trigger.workspace_id == WS2 and trigger.poll_interval == 1 and trigger.search_prefix == "wes-"


def test_an_unknown_settings_source_fails_the_task_with_a_reason(sim):
    from airflow.triggers.base import TaskFailedEvent

    trigger = SeqeraRunTrigger("wes-sft-x", end_task=True, settings_from="nowhere")
    event = asyncio.run(asyncio.wait_for(_end_event(trigger), 10))
    assert isinstance(event, TaskFailedEvent)
    assert "settings_from 'nowhere'" in event.xcoms["seqera_event"]["reason"]
