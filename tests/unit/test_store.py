"""Hatchway's store on real databases: SQLite files under tmp_path, and a real PostgreSQL 15.

The store tests take either ``url`` (a fresh, empty database) or ``store`` (the same,
migrated). ``test_store_behaves_the_same_on_postgresql_15`` runs every test of
``SHARED`` again against a throw-away PostgreSQL server, each on a database of its own.
"""

from __future__ import annotations

import base64
import inspect
import json
import os
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect as sa_inspect, make_url, text

from hatchway_dev.airflow import Postgres
from hatchway_dev.process import StackError
from hatchway.domain.access import AccessPolicy, WorkflowDeploy
from hatchway.store import Conflict, NotAllowed, NotFound, RunRecord, Store, UsageRecord
from hatchway.store.models import Base
from hatchway.store.store import MIGRATE_LOCK_ID, VERSION_TABLE

REPO = Path(__file__).resolve().parents[2]
BASE_TIME = datetime(2025, 3, 1, 12, 0, tzinfo=timezone.utc)
TABLES = {"hatchway_workspaces", "hatchway_members", "hatchway_workflows", "hatchway_runs", "hatchway_usage",
          "hatchway_crates",
          VERSION_TABLE}


@pytest.fixture
def url(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'hatchway.db'}"


@pytest.fixture
def store(url):
    store = Store(url)
    store.migrate()
    yield store
    store.dispose()


def spec(name: str = "rnaseq", **changes) -> WorkflowDeploy:
    return WorkflowDeploy(**{"name": name, "engine": "NFL", "git_url": "https://github.com/nf-core/rnaseq.git",
                             "git_ref": "3.14.0", **changes})


def run_record(run_id: str, calling: str = "lab-a", created_at: datetime = BASE_TIME, **changes) -> RunRecord:
    return RunRecord(**{
        "run_id": run_id, "dag_id": "wes_run", "dag_run_id": f"wes__{run_id}", "calling_workspace": calling,
        "deploying_workspace": "lab-a", "executing_workspace": calling, "workflow_name": "rnaseq",
        "workflow_version": "1", "engine": "NFL", "request": {"params": {"reads": "s3://lab-a/r/"}},
        "tags": {"project": "p1"}, "created_at": created_at, **changes})


def schema_version(url: str) -> list[str]:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [row[0] for row in conn.execute(text(f"SELECT version_num FROM {VERSION_TABLE}"))]
    finally:
        engine.dispose()


# -- migrations


def test_migrate_twice_is_a_no_op(url):
    Store(url).migrate()
    again = Store(url)
    again.migrate()
    assert schema_version(url) == ["0003"]
    assert TABLES <= set(sa_inspect(again.engine).get_table_names())
    again.dispose()


def test_models_match_the_migrations(store):
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "version_table": VERSION_TABLE})
        assert compare_metadata(context, Base.metadata) == []


def test_concurrent_migrations_do_not_crash(url):
    stores = [Store(url) for _ in range(4)]
    start, errors = threading.Barrier(len(stores)), []

    def migrate(store: Store) -> None:
        start.wait()
        try:
            store.migrate()
        except Exception as err:  # noqa: BLE001 - collected and asserted below
            errors.append(err)

    threads = [threading.Thread(target=migrate, args=(s,)) for s in stores]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert schema_version(url) == ["0003"]
    for s in stores:
        s.dispose()


def test_processes_starting_together_all_migrate(url):
    # What a deployment does: scheduler, API server and triggerer start at once, each
    # migrating. We hold the migration lock while they start, so all three are provably
    # queued on it together; released, one migrates and the others find the schema current.
    code = "import sys; from hatchway.store import Store; print('ready', flush=True); Store(sys.argv[1]).migrate()"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO / "plugins"), str(REPO)])}
    holder = Store(url)
    with holder.engine.execution_options(hatchway_write=True).connect() as conn, conn.begin():
        if conn.dialect.name == "postgresql":
            conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATE_LOCK_ID})
        procs = [subprocess.Popen([sys.executable, "-c", code, url], env=env, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for _ in range(3)]
        assert [p.stdout.readline() for p in procs] == ["ready\n"] * 3
        time.sleep(1)
        assert [p.poll() for p in procs] == [None] * 3, "a migration did not wait for the lock"
    results = [(p.wait(60), p.stderr.read()) for p in procs]
    holder.dispose()
    assert results == [(0, "")] * 3
    assert schema_version(url) == ["0003"]


def test_from_env_prefers_hatchway_db_url_then_airflow_home(monkeypatch, tmp_path):
    monkeypatch.setenv("HATCHWAY_DB_URL", f"sqlite:///{tmp_path / 'x' / 'own.db'}")
    assert Store.from_env().url == f"sqlite:///{tmp_path / 'x' / 'own.db'}"
    monkeypatch.delenv("HATCHWAY_DB_URL")
    monkeypatch.setenv("AIRFLOW_HOME", str(tmp_path / "home"))
    assert Store.from_env().url == f"sqlite:///{tmp_path / 'home' / 'hatchway.db'}"
    monkeypatch.delenv("AIRFLOW_HOME")
    assert Store.from_env().url == f"sqlite:///{Path.home() / 'airflow' / 'hatchway.db'}"


# -- workspaces


def test_ensure_workspace_is_idempotent_and_makes_the_owner_a_member(store):
    first = store.ensure_workspace("lab-a", "alice@example.org")
    assert store.ensure_workspace("lab-a", "alice@example.org", bucket="lab-a-data").created_at == first.created_at
    assert store.get_workspace("lab-a").bucket == "lab-a-data"
    assert store.get_workspace("lab-z") is None
    store.add_member("lab-a", "bob")
    store.add_member("lab-a", "carol", role="owner")
    store.add_member("lab-a", "Auth0|5f3c")  # token subjects, whatever their provider's form
    # Any member's request ensures the workspace: the first owner and bucket stay.
    again = store.ensure_workspace("lab-a", "bob", bucket="other-bucket")
    assert (again.owner, again.bucket, again.created_at) == ("alice@example.org", "lab-a-data", first.created_at)
    assert {m.user: m.role for m in store.members("lab-a")} == {
        "alice@example.org": "owner", "bob": "member", "carol": "owner", "Auth0|5f3c": "member"}
    with pytest.raises(ValueError, match="user must be 1-128 printable characters"):
        store.add_member("lab-a", "bob\n")
    with pytest.raises(NotFound):
        store.add_member("lab-z", "bob")
    with pytest.raises(ValueError, match="role must be one of"):
        store.add_member("lab-a", "bob", role="admin")


# -- workflows


def test_redeploy_by_the_deploying_workspace_updates_the_workflow(store):
    first = store.deploy_workflow("lab-a", spec(parameter_schema={"type": "object"}))
    assert first.deploying_workspace == "lab-a" and first.policy is AccessPolicy.PRIVATE
    assert store.get_workflow("lab-a", "rnaseq") == first
    second = store.deploy_workflow("lab-a", spec(version="2", git_ref="3.15.0", policy="public"))
    assert (second.version, second.git_ref, second.policy, second.parameter_schema) == (
        "2", "3.15.0", AccessPolicy.PUBLIC, {})
    assert second.created_at == first.created_at and second.updated_at >= first.updated_at
    store.deploy_workflow("lab-a", spec("mapper", git_url=None, git_ref=None, pipeline="nf-core/sarek"))
    assert [w.name for w in store.list_workflows("lab-a")] == ["mapper", "rnaseq"]
    assert store.get_workflow("lab-b", "rnaseq") is None
    assert store.list_workflows("lab-b") == []


def test_another_workspace_may_not_change_a_workflow(store):
    deployed = store.deploy_workflow("lab-a", spec())
    with pytest.raises(NotAllowed):
        store.deploy_workflow("lab-a", spec(version="evil"), caller="lab-b")
    with pytest.raises(NotAllowed):
        store.set_policy("lab-b", "lab-a", "rnaseq", AccessPolicy.PUBLIC)
    with pytest.raises(NotAllowed):
        store.remove_workflow("lab-b", "lab-a", "rnaseq")
    # Refused without a lookup, so the answer says nothing about whether it exists.
    with pytest.raises(NotAllowed):
        store.set_policy("lab-b", "lab-a", "no-such-workflow", "public")
    assert store.get_workflow("lab-a", "rnaseq") == deployed
    # Its own workflow of the same name is its own business.
    assert store.deploy_workflow("lab-b", spec(version="9")).deploying_workspace == "lab-b"
    assert store.get_workflow("lab-a", "rnaseq").version == "1"


def test_the_deploying_workspace_republishes_and_removes_its_workflow(store):
    store.deploy_workflow("lab-a", spec())
    assert store.set_policy("lab-a", "lab-a", "rnaseq", "user-service").policy is AccessPolicy.USER_SERVICE
    assert store.get_workflow("lab-a", "rnaseq").policy is AccessPolicy.USER_SERVICE
    assert store.remove_workflow("lab-a", "lab-a", "rnaseq") is True
    assert store.get_workflow("lab-a", "rnaseq") is None
    assert store.remove_workflow("lab-a", "lab-a", "rnaseq") is False
    with pytest.raises(NotFound):
        store.set_policy("lab-a", "lab-a", "rnaseq", "public")


# -- runs


def test_runs_page_newest_first_without_duplicates_or_other_workspaces(store):
    # Three runs per second: ties on created_at straddle the page boundaries, so the
    # run_id half of the key is exercised too.
    for i in range(25):
        store.add_run(run_record(f"a{i:02d}", created_at=BASE_TIME + timedelta(seconds=i // 3)))
    for i in range(7):
        store.add_run(run_record(f"b{i:02d}", calling="lab-b", created_at=BASE_TIME + timedelta(seconds=i)))
    pages, token = [], None
    while True:
        page, token = store.list_runs("lab-a", page_size=10, page_token=token)
        pages.append(page)
        if token is None:
            break
    assert [len(p) for p in pages] == [10, 10, 5]
    listed = [r for page in pages for r in page]
    assert {r.calling_workspace for r in listed} == {"lab-a"}
    assert len({r.run_id for r in listed}) == 25
    assert [r.run_id for r in listed] == sorted((f"a{i:02d}" for i in range(25)), reverse=True)
    assert [(r.created_at, r.run_id) for r in listed] == sorted(((r.created_at, r.run_id) for r in listed),
                                                               reverse=True)
    assert store.list_runs("lab-c", page_size=10) == ([], None)
    assert (store.count_runs(), store.count_runs("lab-b")) == (32, 7)


def test_a_malformed_page_token_is_refused(store):
    store.add_run(run_record("r1"))
    encode = lambda value: base64.urlsafe_b64encode(json.dumps(value).encode()).decode()  # noqa: E731
    for token in ("not a token!", "bm90IGpzb24", encode({"a": 1}), encode(["yesterday", "r1"]),
                  encode(["2025-03-01T12:00:00", "r1"]), encode(["2025-03-01T12:00:00+00:00", 5])):
        with pytest.raises(ValueError, match="malformed page_token"):
            store.list_runs("lab-a", page_size=10, page_token=token)
    with pytest.raises(ValueError, match="page_size must be 1-1000"):
        store.list_runs("lab-a", page_size=0)


def test_adding_the_same_run_twice_is_a_no_op_but_a_different_one_is_refused(store):
    record = run_record("r1")
    stored = store.add_run(record)
    assert store.add_run(record) == stored == store.get_run("r1")
    assert stored.state == "QUEUED" and stored.updated_at == record.created_at
    # A retried submission after the run moved on is still the same submission.
    store.update_run("r1", state="RUNNING")
    assert store.add_run(record).state == "RUNNING"
    with pytest.raises(Conflict, match="different submission"):
        store.add_run(run_record("r1", request={"params": {"reads": "s3://lab-b/"}}))
    with pytest.raises(Conflict, match="dag_run_id"):
        store.add_run(run_record("r2", dag_run_id="wes__r1"))
    assert store.count_runs() == 1
    assert store.get_run("r2") is None


def test_state_and_outputs_are_recorded(store):
    store.add_run(run_record("r1"))
    store.update_run("r1", state="RUNNING")
    done = store.update_run("r1", state="COMPLETE", outputs={"catalog": "s3://lab-a-data/catalog/r1/"})
    assert store.get_run("r1") == done
    assert (done.state, done.outputs) == ("COMPLETE", {"catalog": "s3://lab-a-data/catalog/r1/"})
    assert store.update_run("r1", state="COMPLETE").outputs == done.outputs
    assert done.created_at.tzinfo is not None and done.updated_at > done.created_at
    with pytest.raises(NotFound):
        store.update_run("nope", state="RUNNING")


def test_cancel_is_requested_once(store):
    store.add_run(run_record("r1"))
    assert store.get_run("r1").cancel_requested_at is None
    first = store.request_cancel("r1")
    assert first.cancel_requested_at is not None
    assert store.request_cancel("r1").cancel_requested_at == first.cancel_requested_at
    with pytest.raises(NotFound):
        store.request_cancel("nope")


SHARED = [
    test_migrate_twice_is_a_no_op,
    test_models_match_the_migrations,
    test_concurrent_migrations_do_not_crash,
    test_processes_starting_together_all_migrate,
    test_ensure_workspace_is_idempotent_and_makes_the_owner_a_member,
    test_redeploy_by_the_deploying_workspace_updates_the_workflow,
    test_another_workspace_may_not_change_a_workflow,
    test_the_deploying_workspace_republishes_and_removes_its_workflow,
    test_runs_page_newest_first_without_duplicates_or_other_workspaces,
    test_a_malformed_page_token_is_refused,
    test_adding_the_same_run_twice_is_a_no_op_but_a_different_one_is_refused,
    test_state_and_outputs_are_recorded,
    test_cancel_is_requested_once,
]


def test_store_behaves_the_same_on_postgresql_15(tmp_path):
    try:
        server = Postgres()
    except StackError as err:
        # A skip would let the PostgreSQL path go untested unnoticed.
        pytest.fail(f"this test needs the PostgreSQL 15 server binaries: {err}", pytrace=False)
    server.start(tmp_path / "postgres")
    admin = create_engine(server.sqlalchemy_url, isolation_level="AUTOCOMMIT")
    try:
        for n, test in enumerate(SHARED):
            database = f"store_{n}"
            with admin.connect() as conn:
                conn.exec_driver_sql(f"CREATE DATABASE {database}")
            url = make_url(server.sqlalchemy_url).set(database=database).render_as_string(hide_password=False)
            if "url" in inspect.signature(test).parameters:
                test(url)
                continue
            store = Store(url)
            store.migrate()
            try:
                test(store)
            finally:
                store.dispose()
    finally:
        admin.dispose()
        server.stop()


# -- usage
def usage_record(dag_run_id: str, workspace: str = "lab-a", ended: datetime = BASE_TIME, cost: float = 1.0,
                 **changes) -> UsageRecord:
    from hatchway.domain.usage import Usage

    usage = Usage(engine="nextflow", cpu_hours=2.0, memory_gib_hours=8.0, wall_seconds=3600, task_count=3,
                  failed_tasks=0, estimated_cost=cost, currency="USD")
    return UsageRecord(dag_id="wes_run", dag_run_id=dag_run_id, run_id=dag_run_id.removeprefix("wes__"),
                       executing_workspace=workspace, cost_center="cc-1", state="COMPLETE",
                       started_at=ended - timedelta(hours=1), ended_at=ended, usage=usage, **changes)


def test_recording_usage_twice_keeps_one_row_with_the_last_figures(store):
    store.record_usage(usage_record("wes__r1", cost=1.0))
    store.record_usage(usage_record("wes__r1", cost=2.5))  # a retried task records again
    rows = store.usage_of("lab-a")
    assert [(r.dag_run_id, r.usage.estimated_cost) for r in rows] == [("wes__r1", 2.5)]
    assert store.spent("lab-a") == 2.5


def test_usage_of_a_workspace_between_two_times_and_no_other_workspace(store):
    for n in range(48):  # one run ending every hour for two days, in two workspaces
        store.record_usage(usage_record(f"wes__a{n}", ended=BASE_TIME + timedelta(hours=n), cost=0.5))
        store.record_usage(usage_record(f"wes__b{n}", workspace="lab-b", ended=BASE_TIME + timedelta(hours=n)))
    day_two = store.usage_of("lab-a", BASE_TIME + timedelta(hours=24), BASE_TIME + timedelta(hours=48))
    assert [r.run_id for r in day_two] == [f"a{n}" for n in range(24, 48)]
    assert {r.executing_workspace for r in day_two} == {"lab-a"}
    assert store.spent("lab-a", BASE_TIME + timedelta(hours=24)) == pytest.approx(12.0)
    assert store.spent("lab-c") == 0.0


def test_concurrent_recordings_of_one_run_leave_one_row(store):
    start, errors = threading.Barrier(6), []

    def record(cost: float) -> None:
        start.wait()
        try:
            store.record_usage(usage_record("wes__same", cost=cost))
        except Exception as err:  # noqa: BLE001 - collected and asserted below
            errors.append(err)

    threads = [threading.Thread(target=record, args=(float(n),)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    assert len(store.usage_of("lab-a")) == 1


def test_crated_finds_the_kept_crates_among_more_runs_than_one_statement_takes(store):
    from hatchway.store.store import IN_BATCH

    runs = [("wes_run" if i % 2 else "job_run", f"run__{i:05d}") for i in range(2 * IN_BATCH + 500)]
    kept = runs[::7]
    for dag_id, run in kept:
        store.save_crate(dag_id, run, run, "hatchway-store://x", {"@graph": []})
    store.save_crate("cromwell_run", runs[1][1], "other", "elsewhere", {"@graph": []})  # same run id, other DAG
    from sqlalchemy import event

    sizes: list[int] = []

    def count(conn, cursor, statement, parameters, *args) -> None:
        if "hatchway_crates" in statement:
            sizes.append(len(parameters))

    event.listen(store.engine, "before_cursor_execute", count)
    try:
        assert store.crated(runs) == set(kept)
    finally:
        event.remove(store.engine, "before_cursor_execute", count)
    assert len(sizes) == 3 and max(sizes) <= IN_BATCH, sizes  # bounded statements, not one per run
    assert store.crated(runs[:3]) == {runs[0]} and store.crated([]) == set()
