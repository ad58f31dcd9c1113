"""The workspace pages (``/hatchway/ui/workspaces``): what a page shows, from a real store, and
that nobody without an Airflow session gets one. The page in a real browser behind Airflow's
login: ``tests/e2e/test_provider_package.py``."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

import requests

from hatchway.api.auth import issue_token
from hatchway.api.door import create_app
from hatchway.api.ui import usage_chart, workspace_page, workspaces_page
from hatchway.domain.usage import Usage
from hatchway.domain.workspace import PlatformConfig
from hatchway.store import UsageRecord
from support.wes import ThreadedServer, door_deps

NOW = datetime(2026, 12, 6, 12, 0, tzinfo=timezone.utc)


def _ran(store, name: str, cost: float, ended: datetime, state: str = "SUCCEEDED", workspace: str = "alice") -> None:
    store.record_usage(UsageRecord(
        dag_id="wes_run", dag_run_id=f"wes__{name}", run_id=name, executing_workspace=workspace,
        calling_workspace=workspace, cost_center="cc-9", state=state, started_at=ended - timedelta(hours=1),
        ended_at=ended, usage=Usage(engine="nextflow", cpu_hours=4.0, memory_gib_hours=16.0, wall_seconds=3600,
                                    task_count=3, failed_tasks=0 if state == "SUCCEEDED" else 1,
                                    estimated_cost=cost, currency="EUR")))


def test_a_workspace_page_lists_its_runs_with_state_and_cost_and_its_month(tmp_path):
    deps, _ = door_deps(tmp_path)
    store = deps.store
    store.ensure_workspace("alice", owner="alice@example.org", bucket="hatchway-test-data")
    platform = PlatformConfig(bucket="hatchway-test-data", prefix="hwtest", budgets={"alice": {"amount": 10}},
                              price_table={"currency": "EUR"})
    _ran(store, "first-job", 1.25, NOW - timedelta(days=2))
    _ran(store, "second-job", 0.5, NOW - timedelta(hours=3), state="FAILED")
    _ran(store, "last-month", 7.0, NOW - timedelta(days=10))  # November: not this month's
    _ran(store, "bobs", 3.0, NOW - timedelta(days=1), workspace="bob")
    store.save_crate("wes_run", "wes__first-job", "first-job", "s3://x/ro-crate-metadata.json", {"@graph": []})
    store.save_crate("job_run", "wes__second-job", "second-job", "elsewhere", {"@graph": []})  # another DAG's run
    body = workspace_page("alice", store=store, platform=platform, record=None, record_error="not read (NoCredentials)",
                          crate_url=lambda r: f"/crates/{r.run_id}", now=NOW)
    rows = re.findall(r"<tr><td>([^<]+)</td><td>wes_run</td><td><span class='pill (\w*)'>(\w+)</span>.*?"
                      r"<td class=n>([0-9.]+) EUR</td><td>(.*?)</td></tr>", body)
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [
        ("second-job", "bad", "FAILED", "0.5000"), ("first-job", "ok", "SUCCEEDED", "1.2500"),
        ("last-month", "ok", "SUCCEEDED", "7.0000")]  # newest first; bob's run is not alice's
    assert "href='/crates/first-job'" in rows[1][4] and "RO-Crate" not in rows[0][4]
    assert "1.75 EUR of a 10.00 EUR budget" in body  # December only
    assert "alice@example.org" in body and "hwtest-alice-jobs" in body and "not read (NoCredentials)" in body
    assert "<svg" in body and body.count("<rect") == 30


def test_the_workspaces_list_shows_each_workspaces_cost_in_the_same_queries_for_3_workspaces_and_for_60(tmp_path):
    from sqlalchemy import event

    deps, _ = door_deps(tmp_path)
    store = deps.store
    platform = PlatformConfig(bucket="hatchway-test-data", prefix="hwtest", price_table={"currency": "EUR"})
    statements: list[str] = []

    def count(conn, cursor, statement, *args) -> None:
        statements.append(statement)

    def listed() -> tuple[dict[str, tuple[str, str]], int]:
        statements.clear()
        event.listen(store.engine, "before_cursor_execute", count)
        try:
            body = workspaces_page(store=store, platform=platform)
        finally:
            event.remove(store.engine, "before_cursor_execute", count)
        rows = re.findall(r"<td><a href='workspaces/([a-z0-9-]+)'>[^<]+</a></td><td>([^<]+)</td>"
                          r"<td class=n>([0-9.]+) EUR</td>", body)
        return {name: (owner, cost) for name, owner, cost in rows}, len(statements)

    for i in range(60):
        store.ensure_workspace(f"ws-{i:02d}", owner=f"user{i}@example.org")
        if i < 3:
            _ran(store, f"run-{i}-a", 1.5 + i, NOW - timedelta(days=40), workspace=f"ws-{i:02d}")
            _ran(store, f"run-{i}-b", 0.25, NOW, workspace=f"ws-{i:02d}")
        if i == 2:
            few, few_queries = listed()
    many, many_queries = listed()
    assert few == {"ws-00": ("user0@example.org", "1.75"), "ws-01": ("user1@example.org", "2.75"),
                   "ws-02": ("user2@example.org", "3.75")}  # all time: last month's runs too
    assert len(many) == 60 and many["ws-59"] == ("user59@example.org", "0.00") and many["ws-01"] == few["ws-01"]
    assert 2 <= few_queries == many_queries <= 4, (few_queries, many_queries)


def test_the_chart_sums_cost_per_day_and_leaves_older_days_out():
    class R:
        def __init__(self, cost, ended):
            self.usage, self.ended_at = type("U", (), {"estimated_cost": cost})(), ended

    svg = usage_chart([R(1.0, NOW), R(2.0, NOW - timedelta(minutes=5)), R(0.5, NOW - timedelta(days=1)),
                       R(9.0, NOW - timedelta(days=40))], NOW)
    titles = dict(re.findall(r"<title>(\d{4}-\d\d-\d\d): ([0-9.]+)</title>", svg))
    assert titles["2026-12-06"] == "3.0000" and titles["2026-12-05"] == "0.5000"
    assert len(titles) == 30 and "2026-10-27" not in titles
    heights = dict(re.findall(r"height='(\d+)' fill='#3b6fd8'><title>(\d{4}-\d\d-\d\d)", svg))
    assert int([h for h, d in heights.items() if d == "2026-12-06"][0]) > int(
        [h for h, d in heights.items() if d == "2026-12-05"][0])


def test_no_airflow_session_no_page(tmp_path):
    deps, settings = door_deps(tmp_path)
    deps.store.ensure_workspace("alice", owner="alice@example.org")
    deps.store.save_crate("job_run", "job__x", "INTP00000000009", "hatchway-store://job_run/job__x",
                          {"@graph": [{"@id": "./", "description": "alice@example.org's run"}]})
    with ThreadedServer(create_app(lambda: deps)) as server:
        for path in ("/ui/workspaces", "/ui/workspaces/alice", "/ui/crates/job_run/job__x"):
            anonymous = requests.get(f"{server.url}{path}", timeout=10)
            forged = requests.get(f"{server.url}{path}", cookies={"_token": "not-a-jwt"}, timeout=10)
            door_token = issue_token(settings, workspace="alice", subject="alice@example.org")
            researcher = requests.get(f"{server.url}{path}", headers={"Authorization": f"Bearer {door_token}"},
                                      timeout=10)  # a workspace token is the door's, not Airflow's login
            assert anonymous.status_code == forged.status_code == researcher.status_code == 401, path
            assert "alice@example.org" not in anonymous.text + forged.text
