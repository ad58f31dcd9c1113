"""The front door over real HTTP, on this session's Airflow DB: tokens, bad input, tenant isolation,
paging, the WES 1.1 contract (schemathesis), and an independent WES client.

No scheduler runs here, so runs stay QUEUED: what is checked is everything the door decides
itself. The full course of a run (COMPLETE, STAC, cancel) is in tests/e2e/test_wes_e2e.py.
"""

from __future__ import annotations

import base64
import json
import secrets
import time

import jwt
import pytest
import requests

from hatchway.api.airflow_runs import AirflowRuns
from hatchway.api.auth import AuthSettings, TokenVerifier
from hatchway.api.door import DoorDeps, create_app
from hatchway.domain.wes import MAX_PARAMS_BYTES
from hatchway.domain.workspace import PlatformConfig
from hatchway_dev.wes_demo import run_form
from support import register_dags
from support.wes import HELLO, ThreadedServer, callers, check_wes_conformance

BUCKET = "hatchway-test-data"


@pytest.fixture(scope="module")
def door(airflow_db, tmp_path_factory):
    """The door served on a loopback port, its store in a fresh SQLite file, wes_run registered."""
    from hatchway.store import Store

    register_dags("wes_run")
    store = Store(f"sqlite:///{tmp_path_factory.mktemp('door')}/hatchway.db")
    store.migrate()
    settings = AuthSettings(audience="hatchway", issuer="hatchway-test", hs256_key=secrets.token_urlsafe(32))
    deps = DoorDeps(store=store, verifier=TokenVerifier(settings), runs=AirflowRuns(),
                    platform=PlatformConfig(bucket=BUCKET, prefix="hwtest", queue_mode="shared"))
    with ThreadedServer(create_app(lambda: deps)) as server:
        people = callers(server.url, settings, "alice", "bob")
        assert people["alice"].deploy(HELLO).status_code == 201
        public = {**HELLO, "name": "shared", "policy": "public"}
        assert people["alice"].deploy(public).status_code == 201
        yield server, settings, people, store


def _forge(settings: AuthSettings, **claims) -> str:
    now = int(time.time())
    body = {"sub": "mallory", "aud": "hatchway", "iss": "hatchway-test", "iat": now, "exp": now + 600,
            "scope": "workspace:alice", **claims}
    return jwt.encode(body, settings.hs256_key, algorithm="HS256")


def _b64(obj: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()


def test_bad_tokens_get_401_with_a_reason(door):
    server, settings, people, _ = door
    good = people["alice"].token
    header, payload, signature = good.split(".")
    claims = json.loads(base64.urlsafe_b64decode(payload + "=="))
    bad = {
        "expired": _forge(settings, exp=int(time.time()) - 120),
        "wrong audience": _forge(settings, aud="someone-else"),
        "unsigned": f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{payload}.",
        "tampered": f"{header}.{_b64({**claims, 'scope': 'workspace:bob'})}.{signature}",
        "other key": jwt.encode({**claims}, "not-the-key-" + "x" * 32, algorithm="HS256"),
        "no workspace scope": _forge(settings, scope="openid"),
    }
    for case, token in bad.items():
        resp = requests.get(f"{server.url}/ga4gh/wes/v1/runs", headers={"Authorization": f"Bearer {token}"},
                            timeout=10)
        assert resp.status_code == 401, case
        assert resp.json()["status_code"] == 401 and resp.json()["msg"], case
        assert resp.headers["www-authenticate"].startswith("Bearer"), case
    assert requests.get(f"{server.url}/ga4gh/wes/v1/runs", timeout=10).status_code == 401
    assert people["alice"].get("/runs").status_code == 200


def test_oversized_params_and_bad_workflow_urls_get_400_with_a_reason(door):
    _, _, people, store = door
    alice = people["alice"]
    before = store.count_runs()
    big = json.dumps({"greeting": "x" * (1024 * 1024)})
    resp = alice.run("hatchway://alice/hello", raw_params=big)
    assert resp.status_code == 400 and "workflow_params" in resp.json()["msg"]
    assert str(MAX_PARAMS_BYTES) in resp.json()["msg"]
    for url, reason in (("hatchway://alice/../bob/hello", ".."), ("ftp://alice/hello", "scheme"),
                        ("https://evil.example.org/hello.nf", "scheme"), ("file:///etc/passwd", "scheme")):
        resp = alice.run(url)
        assert resp.status_code == 400, url
        assert reason in resp.json()["msg"], (url, resp.json())
    assert alice.run("hatchway://alice/hello", raw_params="{not json").status_code == 400
    assert alice.run("hatchway://alice/hello", {"greeting": 5}).status_code == 400  # the workflow's schema
    assert alice.run("hatchway://alice/hello", workflow_type="CWL").status_code == 400
    assert store.count_runs() == before  # nothing was recorded for a refused request


def test_workspaces_never_see_each_others_runs(door):
    _, _, people, store = door
    alice, bob = people["alice"], people["bob"]
    resp = alice.run("hatchway://alice/hello", {"greeting": "hi"}, tags={"project": "a"})
    assert resp.status_code == 200, resp.text
    run_id = resp.json()["run_id"]
    assert alice.state(run_id) == "QUEUED"
    assert run_id in [r["run_id"] for r in alice.get("/runs").json()["runs"]]

    assert run_id not in [r["run_id"] for r in bob.get("/runs", params={"page_size": 500}).json()["runs"]]
    for path in (f"/runs/{run_id}", f"/runs/{run_id}/status", f"/runs/{run_id}/tasks",
                 f"/runs/{run_id}/tasks/launch"):
        resp = bob.get(path)
        assert resp.status_code == 404 and resp.json()["msg"] == "run not found", path
    assert bob.post(f"/runs/{run_id}/cancel").status_code == 404
    assert store.get_run(run_id).cancel_requested_at is None  # bob's cancel changed nothing
    unknown = bob.get(f"/runs/{'0' * 32}")
    assert unknown.status_code == 404 and unknown.json() == bob.get(f"/runs/{run_id}").json()

    # A's private workflow: same answer as a workflow that does not exist.
    private = bob.run("hatchway://alice/hello")
    missing = bob.run("hatchway://alice/nothing-here")
    assert private.status_code == missing.status_code == 403
    assert private.json()["msg"].replace("hello", "X") == missing.json()["msg"].replace("nothing-here", "X")
    assert bob.deploy({**HELLO, "description": "hijack"}, workspace="alice").status_code == 403
    assert requests.delete(f"{bob.base}/workspaces/alice/workflows/hello", headers=bob.headers,
                           timeout=10).status_code == 404
    assert requests.get(f"{bob.base}/workspaces/alice/workflows/hello", headers=bob.headers,
                        timeout=10).status_code == 404


def test_public_workflow_called_by_another_workspace_runs_in_the_callers_workspace(door):
    _, _, people, store = door
    resp = people["bob"].run("hatchway://alice/shared@1", {"greeting": "from bob"})
    assert resp.status_code == 200, resp.text
    record = store.get_run(resp.json()["run_id"])
    assert (record.calling_workspace, record.deploying_workspace, record.executing_workspace) == ("bob", "alice",
                                                                                                   "bob")
    conf = _dag_run_conf(record.dag_run_id)
    assert conf["executing"] == conf["calling"] == "bob" and conf["workflow"]["name"] == "shared"
    # The executing workspace decides where and as whom it runs, and how it is tagged.
    assert conf["context"]["job_role"] == "hwtest-bob-jobs" and conf["context"]["namespace"] == "hwtest-bob"
    assert conf["context"]["job_queue"] == "hwtest-shared-queue" and conf["context"]["share_identifier"]
    assert conf["context"]["tags"]["hatchway:workspace"] == "bob"
    assert conf["context"]["tags"]["hatchway:owner"] == "bob@example.org"
    assert people["alice"].get(f"/runs/{record.run_id}").status_code == 404  # the deployer cannot see it either


def test_user_service_runs_in_the_deploying_workspace(door):
    _, _, people, store = door
    assert people["alice"].deploy({**HELLO, "name": "service", "policy": "user-service"}).status_code == 201
    resp = people["bob"].run("hatchway://alice/service")
    assert resp.status_code == 200, resp.text
    record = store.get_run(resp.json()["run_id"])
    assert (record.calling_workspace, record.executing_workspace) == ("bob", "alice")
    context = _dag_run_conf(record.dag_run_id)["context"]
    assert context["job_role"] == "hwtest-alice-jobs"  # steps run as the deploying workspace
    assert context["tags"]["hatchway:workspace"] == "alice" and context["tags"]["hatchway:owner"] == "alice@example.org"
    assert context["tags"]["hatchway:calling-workspace"] == "bob"


def test_runs_are_paged_by_token(door):
    server, settings, _, _ = door
    carol = callers(server.url, settings, "carol")["carol"]
    assert carol.deploy({**HELLO, "name": "pager"}).status_code == 201
    made = {carol.run("hatchway://carol/pager").json()["run_id"] for _ in range(7)}
    seen, token, pages = [], "", 0
    while True:
        body = carol.get("/runs", params={"page_size": 3, **({"page_token": token} if token else {})}).json()
        seen += [r["run_id"] for r in body["runs"]]
        pages += 1
        token = body["next_page_token"]
        if not token:
            break
    assert pages == 3 and len(seen) == 7 and set(seen) == made
    assert carol.get("/runs", params={"page_token": "not-a-token"}).status_code == 400
    assert len(carol.get("/runs", params={"page_size": 0}).json()["runs"]) == 7  # clamped to the default
    assert len(carol.get("/runs", params={"page_size": 10**9}).json()["runs"]) == 7


def test_a_page_of_runs_costs_the_same_database_queries_for_5_runs_and_for_100(door):
    """GET /runs reads Airflow once per DAG for the page's runs and once for their tasks, and
    writes the changed states back in one transaction: 100 live runs cost what 5 do."""
    from sqlalchemy import event

    from airflow import settings as airflow_settings

    server, settings, _, store = door
    erin = callers(server.url, settings, "erin")["erin"]
    assert erin.deploy({**HELLO, "name": "many"}).status_code == 201
    made = [erin.run("hatchway://erin/many").json()["run_id"] for _ in range(100)]
    statements: list[str] = []

    def count(conn, cursor, statement, *args) -> None:
        statements.append(statement)

    def listed(page_size: int) -> tuple[dict[str, str], int]:
        # Every run's stored state is stale: the door must find QUEUED in Airflow and write it back.
        store.update_states(dict.fromkeys(made, "INITIALIZING"))
        statements.clear()
        for engine in (airflow_settings.engine, store.engine):
            event.listen(engine, "before_cursor_execute", count)
        try:
            body = erin.get("/runs", params={"page_size": page_size}).json()
        finally:
            for engine in (airflow_settings.engine, store.engine):
                event.remove(engine, "before_cursor_execute", count)
        return {r["run_id"]: r["state"] for r in body["runs"]}, len(statements)

    few, few_queries = listed(5)
    many, many_queries = listed(100)
    assert len(few) == 5 and set(many) == set(made)
    assert set(many.values()) == {"QUEUED"} and {store.get_run(r).state for r in made} == {"QUEUED"}
    assert many_queries == few_queries, (few_queries, many_queries)
    assert many_queries <= 10, many_queries


def test_cancel_marks_the_run_failed_and_reports_canceling_until_the_teardowns_ran(door):
    """No scheduler runs here, so the teardowns never run: the run stays CANCELING (the e2e test
    sees CANCELED). What matters: the DAG run is failed, and no route ever says COMPLETE."""
    _, _, people, store = door
    alice = people["alice"]
    run_id = alice.run("hatchway://alice/hello").json()["run_id"]
    assert alice.post(f"/runs/{run_id}/cancel").json() == {"run_id": run_id}
    first = store.get_run(run_id).cancel_requested_at
    assert first is not None
    # Airflow's mark-failed: every task but the teardowns skipped; the run ends once they ran.
    states = _task_states(store.get_run(run_id).dag_run_id)
    assert {t: states[t] for t in ("prepare", "launch", "wait_for_workflow", "harvest_outputs")} == dict.fromkeys(
        ("prepare", "launch", "wait_for_workflow", "harvest_outputs"), "skipped")
    assert states["stop_workflow"] is None and states["clean_work"] is None
    assert alice.state(run_id) == "CANCELING"
    assert alice.get(f"/runs/{run_id}").json()["state"] == "CANCELING"
    listed = {r["run_id"]: r["state"] for r in alice.get("/runs", params={"page_size": 500}).json()["runs"]}
    assert listed[run_id] == "CANCELING"
    assert alice.post(f"/runs/{run_id}/cancel").status_code == 200  # again: idempotent
    assert store.get_run(run_id).cancel_requested_at == first


def test_an_independent_wes_client_works_unchanged(door, tmp_path):
    """wes-service's WESClient (common-workflow-language/workflow-service), called as its users call it.

    Its ``run()`` cannot submit to any authenticated WES: it sends no Authorization header (the
    line is commented out in wes-service 5.0) and derives ``workflow_type`` from a file
    extension (.cwl/.wdl/.py). So its run request is checked to be refused cleanly (401), and
    the run is submitted with the same kind of form (strings, an attachment, engine
    parameters); every other call goes through WESClient unchanged.
    """
    from wes_client.util import WESClient

    server, _, people, store = door
    alice = people["alice"]
    client = WESClient({"auth": alice.headers, "proto": "http", "host": server.url.removeprefix("http://")})
    params = tmp_path / "params.json"
    params.write_text(json.dumps({"greeting": "from wes-client"}))
    workflow = tmp_path / "main.wdl"
    workflow.write_text("version 1.0\nworkflow hello {}\n")
    with pytest.raises(Exception, match="401"):
        client.run(str(workflow), f"file://{params}", attachments=[f"file://{params}"])

    fields = {"workflow_url": "hatchway://alice/hello", "workflow_type": "NFL", "workflow_type_version": "DSL2",
              "workflow_params": params.read_text(), "workflow_engine_parameters": json.dumps({"-resume": "true"}),
              "tags": json.dumps({"client": "wes-service"})}
    with params.open("rb") as attachment:
        resp = requests.post(f"{alice.wes}/runs", data=fields, headers=alice.headers, timeout=30,
                             files=[("workflow_attachment", ("params.json", attachment))])
    assert resp.status_code == 200, resp.text
    run_id = resp.json()["run_id"]
    assert client.get_run_status(run_id) == {"run_id": run_id, "state": "QUEUED"}
    log = client.get_run_log(run_id)
    assert log["request"]["workflow_params"] == {"greeting": "from wes-client"}
    assert log["request"]["workflow_engine_parameters"] == {"-resume": "true"}
    assert [a["name"] for a in log["request"]["workflow_attachment"]] == ["params.json"]
    assert run_id in [r["run_id"] for r in client.list_runs()["runs"]]
    assert client.cancel(run_id) == {"run_id": run_id}
    assert client.get_run_status(run_id)["state"] == "CANCELING"
    assert client.get_service_info()["supported_wes_versions"] == ["1.1.0"]


# -- the WES 1.1 contract, generated by schemathesis from the spec --------------------------
def test_every_answer_conforms_to_wes_1_1(door):
    """Every operation of the spec, with generated inputs (hypothesis), against the running door,
    with a valid token: every answer's status, content type and body conform to the spec."""
    server, _, people, _ = door
    run_id = people["alice"].run("hatchway://alice/hello", {"greeting": "spec"}).json()["run_id"]
    checked = check_wes_conformance(f"{server.url}/ga4gh/wes/v1", people["alice"].headers, run_id)
    assert len(checked) == 8 + 4, checked


def _dag_run_conf(dag_run_id: str) -> dict:
    from sqlalchemy import select

    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    with create_session() as session:
        return session.scalar(select(DagRun.conf).where(DagRun.run_id == dag_run_id))


def _task_states(dag_run_id: str) -> dict[str, str | None]:
    return AirflowRuns().view(dag_run_id).task_states



# -- a door the deployment has not configured ------------------------------------------------
def test_an_unconfigured_door_answers_503_naming_what_is_missing_and_401_without_a_token(
        airflow_db, tmp_path, monkeypatch):
    """The plugin's own dependency factory (Variable ``hatchway_config``, connection
    ``hatchway_api``), not a test double: nothing missing may surface as a 500 with a trace."""
    from hatchway.api.door import LazyDeps, deps_from_airflow

    key = secrets.token_urlsafe(32)
    settings = AuthSettings(audience="hatchway", hs256_key=key)
    monkeypatch.delenv("AIRFLOW_VAR_HATCHWAY_CONFIG", raising=False)
    monkeypatch.delenv("AIRFLOW_CONN_HATCHWAY_API", raising=False)
    monkeypatch.setenv("HATCHWAY_DB_URL", f"sqlite:///{tmp_path}/door.db")
    with ThreadedServer(create_app(LazyDeps(deps_from_airflow, ttl=0))) as server:
        alice = callers(server.url, settings, "alice")["alice"]
        runs = f"{server.url}/ga4gh/wes/v1/runs"

        health = f"{server.url}/health"
        resp = requests.get(health, timeout=10)  # a probe needs no token
        assert resp.status_code == 503 and resp.json() == {"status": "unavailable", "checks": {"config": "missing"}}

        # Neither the connection nor the Variable: a token cannot be checked, so 503 naming both.
        resp = alice.get("/runs")
        assert resp.status_code == 503, resp.text
        assert "hatchway_api" in resp.json()["msg"] and "hatchway_config" in resp.json()["msg"]
        assert requests.get(runs, timeout=10).status_code == 401

        # The connection is there, the Variable is not.
        monkeypatch.setenv("AIRFLOW_CONN_HATCHWAY_API", json.dumps({"conn_type": "generic", "password": key,
                                                                    "extra": {"audience": "hatchway"}}))
        resp = alice.get("/runs")
        assert resp.status_code == 503, resp.text
        body = resp.json()
        assert body["status_code"] == 503 and "hatchway_config" in body["msg"]
        assert "hatchway_api" not in body["msg"] and key not in resp.text
        assert resp.headers["retry-after"]
        assert requests.get(runs, timeout=10).status_code == 401  # no token
        forged = requests.get(runs, timeout=10, headers={"Authorization": f"Bearer {_forge(settings, aud='x')}"})
        assert forged.status_code == 401  # a bad token is still refused as such
        assert alice.run("hatchway://alice/hello").status_code == 503

        # Configured now: the door comes up without a restart (failures are not cached).
        monkeypatch.setenv("AIRFLOW_VAR_HATCHWAY_CONFIG", json.dumps({"bucket": BUCKET}))
        resp = alice.get("/runs")
        assert resp.status_code == 200 and resp.json()["runs"] == []
        resp = requests.get(health, timeout=10)
        assert resp.status_code == 200 and resp.json() == {"status": "ok", "checks": {"config": "ok", "store": "ok"}}

        # The store gone: the probe says so, without the URL or its password.
        monkeypatch.setenv("HATCHWAY_DB_URL", "postgresql+psycopg2://door:s3cret@127.0.0.1:9/hatchway")
        resp = requests.get(health, timeout=30)
        assert resp.status_code == 503 and resp.json()["status"] == "unavailable", resp.text
        assert resp.json()["checks"] == {"config": "error"}  # the store is opened (and migrated) with the deps
        assert "s3cret" not in resp.text and "9/hatchway" not in resp.text


def test_a_container_block_is_checked_at_the_door_and_reaches_the_run(door):
    _, _, people, store = door
    alice = people["alice"]
    before = store.count_runs()

    def run_with(container: str):
        form = run_form("hatchway://alice/hello", json.dumps({"greeting": "hi"}))
        form["workflow_engine_parameters"] = (None, json.dumps({"container": container}))
        return alice.post("/runs", files=form)

    for raw, reason in (("{not json", "not JSON"),
                        (json.dumps({"packages": ["samtools 1.19; rm -rf /"]}), "samtools 1.19; rm -rf /"),
                        (json.dumps({"packages": ["samtools"], "platform": "linux/s390x"}), "platform"),
                        (json.dumps({"packages": ["samtools"], "format": "sif"}), "freeze"),
                        (json.dumps({"image": "quay.io/x/y:1", "packages": ["samtools"]}), "container")):
        resp = run_with(raw)
        assert resp.status_code == 400, (raw, resp.text)
        assert reason in resp.json()["msg"], (raw, resp.json())
    assert store.count_runs() == before  # nothing recorded for a refused request

    block = {"packages": ["samtools=1.19"], "channels": ["conda-forge", "bioconda"]}
    resp = run_with(json.dumps(block))
    assert resp.status_code == 200, resp.text
    conf = _dag_run_conf(store.get_run(resp.json()["run_id"]).dag_run_id)
    assert conf["container"]["packages"] == ["samtools=1.19"]


def test_a_retried_submission_with_an_idempotency_key_gets_the_same_run(door):
    _, _, people, store = door
    alice, bob = people["alice"], people["bob"]

    def submit(caller, key: str, greeting: str = "once"):
        form = run_form("hatchway://alice/shared@1", json.dumps({"greeting": greeting}))
        return requests.post(f"{caller.wes}/runs", files=form, timeout=30,
                             headers={**caller.headers, "Idempotency-Key": key})

    before = store.count_runs()
    key = f"backend-job-{secrets.token_hex(4)}"
    first, again = submit(alice, key), submit(alice, key)  # the second is a client's retry after a lost answer
    assert first.status_code == again.status_code == 200, (first.text, again.text)
    run_id = first.json()["run_id"]
    assert again.json()["run_id"] == run_id and store.count_runs() == before + 1
    assert _dag_run_conf(store.get_run(run_id).dag_run_id)["run_id"] == run_id

    other = submit(bob, key)  # keys are the caller's own: another workspace's same key is another run
    assert other.status_code == 200 and other.json()["run_id"] != run_id

    changed = submit(alice, key, greeting="twice")
    assert changed.status_code == 400 and "Idempotency-Key" in changed.json()["msg"]
    assert submit(alice, "").status_code == 400 and submit(alice, "x" * 300).status_code == 400
    assert store.count_runs() == before + 2


def test_a_workspace_reads_its_own_usage_by_time_and_no_other_workspace_does(door):
    from datetime import datetime, timedelta, timezone

    from hatchway.domain.usage import Usage
    from hatchway.store import UsageRecord

    _, _, people, store = door
    alice, bob = people["alice"], people["bob"]
    resp = alice.run("hatchway://alice/hello", {"greeting": "costed"})
    assert resp.status_code == 200, resp.text
    run_id = resp.json()["run_id"]
    record = store.get_run(run_id)
    day = datetime(2026, 11, 2, tzinfo=timezone.utc)
    for n in range(30):  # what the runs' record_usage teardowns wrote: one run ending each day of November
        ours = n == 5
        store.record_usage(UsageRecord(
            dag_id=record.dag_id if ours else "wes_run", dag_run_id=record.dag_run_id if ours else f"wes__old{n}",
            run_id=run_id if ours else f"old{n}", executing_workspace="alice", calling_workspace="alice",
            cost_center="cc-7", state="SUCCEEDED", started_at=day + timedelta(days=n, hours=-1),
            ended_at=day + timedelta(days=n),
            usage=Usage(engine="nextflow", cpu_hours=2.0, memory_gib_hours=8.0, wall_seconds=3600, task_count=2,
                        failed_tasks=0, estimated_cost=0.25, currency="USD")))
    usage_url = f"{alice.base}/workspaces/alice/usage"
    week = requests.get(usage_url, params={"from": "2026-11-05", "to": "2026-11-12T00:00:00Z"},
                        headers=alice.headers, timeout=10)
    assert week.status_code == 200, week.text
    body = week.json()
    assert [r["ended_at"] for r in body["runs"]] == [f"2026-11-{d:02d}T00:00:00Z" for d in range(5, 12)]
    assert body["totals"] == {"runs": 7, "cpu_hours": 14.0, "memory_gib_hours": 56.0, "task_count": 14,
                              "work_bytes": 0, "results_bytes": 0, "estimated_cost": 1.75}
    assert (body["currency"], body["basis"], body["from"]) == ("USD", "estimate", "2026-11-05T00:00:00Z")
    assert requests.get(usage_url, headers=alice.headers, timeout=10).json()["totals"]["runs"] == 30

    # Bob's token: alice's usage does not exist for him, as a workspace nobody has.
    theirs = requests.get(usage_url, headers=bob.headers, timeout=10)
    nobody = requests.get(f"{bob.base}/workspaces/nobody-here/usage", headers=bob.headers, timeout=10)
    assert theirs.status_code == nobody.status_code == 404 and theirs.json() == nobody.json()
    assert requests.get(f"{bob.base}/workspaces/bob/usage", headers=bob.headers, timeout=10).json()["runs"] == []
    for bad in ({"from": "last tuesday"}, {"from": "2026-11-12", "to": "2026-11-05"}):
        wrong = requests.get(usage_url, params=bad, headers=alice.headers, timeout=10)
        assert wrong.status_code == 400 and ("ISO 8601" in wrong.json()["msg"] or "before" in wrong.json()["msg"])

    # The run's WES log carries its usage.
    log = alice.get(f"/runs/{run_id}").json()
    assert log["outputs"]["usage"]["estimated_cost"] == 0.25 and log["outputs"]["usage"]["cost_center"] == "cc-7"


def test_a_workspace_past_its_monthly_budget_is_refused_new_runs_with_the_figures(airflow_db, tmp_path):
    from datetime import datetime, timedelta, timezone

    from hatchway.domain.usage import month_start
    from support.usage import spend
    from support.wes import door_deps

    register_dags("wes_run")
    deps, settings = door_deps(tmp_path)
    deps.platform = PlatformConfig(bucket=BUCKET, prefix="hwtest", queue_mode="shared",
                                   budgets={"alice": {"amount": 2.0}})
    store = deps.store
    now = datetime.now(timezone.utc)

    def submit(caller, key: str):
        form = run_form("hatchway://alice/hello", json.dumps({"greeting": "hi"}))
        return requests.post(f"{caller.wes}/runs", files=form, timeout=30,
                             headers={**caller.headers, "Idempotency-Key": key})

    with ThreadedServer(create_app(lambda: deps)) as server:
        people = callers(server.url, settings, "alice", "bob")
        alice, bob = people["alice"], people["bob"]
        assert alice.deploy(HELLO).status_code == 201 and bob.deploy(HELLO).status_code == 201
        spend(store, "alice", "last-month", 50.0, month_start(now) - timedelta(seconds=1))  # another month's budget
        spend(store, "alice", "this-month", 1.5, month_start(now) + timedelta(seconds=1))
        first = submit(alice, "k1")
        assert first.status_code == 200, first.text  # 1.50 of 2.00 spent: may start

        spend(store, "alice", "then", 0.6, month_start(now) + timedelta(seconds=2))  # 2.10 of 2.00
        refused = submit(alice, "k2")
        assert refused.status_code == 403
        message = refused.json()["msg"]
        assert "used an estimated 2.10 USD of its 2.00 USD budget" in message and "refused until" in message
        assert store.count_runs("alice") == 1  # nothing was started
        assert submit(alice, "k1").json()["run_id"] == first.json()["run_id"]  # a retry still gets its run
        bob_run = requests.post(f"{bob.wes}/runs", files=run_form("hatchway://bob/hello", "{}"), timeout=30,
                                headers=bob.headers)
        assert bob_run.status_code == 200, bob_run.text  # no budget of his own
    store.dispose()


def test_a_runs_ro_crate_is_served_to_its_workspace_only(door):
    _, _, people, store = door
    alice, bob = people["alice"], people["bob"]
    ran = alice.run("hatchway://alice/hello", {"greeting": "crated"}).json()["run_id"]
    pending = alice.run("hatchway://alice/hello", {"greeting": "not yet"}).json()["run_id"]
    record = store.get_run(ran)
    crate = {"@context": "https://w3id.org/ro/crate/1.3/context", "@graph": [{"@id": "./", "@type": "Dataset"}]}
    store.save_crate(record.dag_id, record.dag_run_id, ran, f"s3://{BUCKET}/alice/processing-results/{ran}/"
                     "ro-crate-metadata.json", crate)  # what the run's write_crate teardown stores
    served = alice.get(f"/runs/{ran}/ro-crate")
    assert served.status_code == 200 and served.headers["content-type"].startswith("application/ld+json")
    assert served.json() == crate
    log = alice.get(f"/runs/{ran}").json()
    assert log["outputs"]["ro_crate"]["url"].endswith(f"/ga4gh/wes/v1/runs/{ran}/ro-crate")
    assert log["outputs"]["ro_crate"]["location"].startswith(f"s3://{BUCKET}/alice/processing-results/{ran}/")
    assert bob.get(f"/runs/{ran}/ro-crate").status_code == 404  # another workspace: no such run
    missing = alice.get(f"/runs/{pending}/ro-crate")
    assert missing.status_code == 404 and "written when the run ends" in missing.json()["msg"]
