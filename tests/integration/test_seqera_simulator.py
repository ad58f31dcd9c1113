"""The Seqera simulator against Seqera's published OpenAPI document, over real HTTP.

Every answer of every spec route, in every run state the control routes can produce, is
validated with openapi-core; so is every request the hook sends (captured at the simulator).
Statuses the spec does not list (401, 429, 5xx) are checked against ``ErrorResponse``.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
import pytest
import yaml

from hatchway_dev.endpoints import SeqeraSimulator
from hatchway.hooks.seqera import SeqeraHook

SPEC = Path(__file__).resolve().parents[1] / "contracts" / "seqera-platform-api-1.187.yaml"
WS = 1001


@pytest.fixture(scope="module")
def spec_dict() -> dict:
    with open(SPEC) as fh:
        return yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


@pytest.fixture(scope="module")
def spec(spec_dict):
    from openapi_core import OpenAPI

    return OpenAPI.from_dict(spec_dict)




@pytest.fixture
def api(sim):
    with httpx.Client(base_url=sim.url, headers={"Authorization": f"Bearer {sim.token}"}, timeout=10) as client:
        yield client


def _mock_request(base: str, method: str, path: str, query, headers: dict, body: bytes | None, content_type: str):
    from openapi_core.testing import MockRequest

    return MockRequest(base, method.lower(), path, args=query, headers={k: v for k, v in headers.items() if v},
                       data=body, content_type=content_type or "application/json")


def check_answer(spec, resp: httpx.Response) -> None:
    """Validate one real answer of the simulator against the spec (raises on any violation)."""
    from openapi_core.testing import MockResponse

    req = resp.request
    content_type = req.headers.get("content-type", "application/json")
    mock_req = _mock_request(f"{req.url.scheme}://{req.url.netloc.decode()}", req.method, req.url.path,
                             list(req.url.params.multi_items()),
                             {"Authorization": req.headers.get("authorization")}, req.content or None, content_type)
    spec.validate_response(mock_req, MockResponse(resp.content, status_code=resp.status_code,
                                                  content_type=resp.headers.get("content-type", "application/json")))


def check_error_body(spec_dict, resp: httpx.Response) -> None:
    """For statuses the spec does not list: the body is still an ``ErrorResponse``."""
    from openapi_schema_validator import OAS30Validator

    OAS30Validator(spec_dict["components"]["schemas"]["ErrorResponse"]).validate(resp.json())


def test_every_route_and_state_answers_per_spec(sim, api, spec, spec_dict):
    kinds = {"succeed": "SUCCEEDED", "fail": "FAILED", "cancel": "CANCELLED", "unknown": "UNKNOWN",
             "running": "RUNNING"}
    ids = sim.create_runs([{"run_name": f"st-{kind}", "workspace_id": WS, "course": {"kind": kind, "after": 1}}
                           for kind in kinds] + [
        {"run_name": "st-submitted", "workspace_id": WS, "course": {"kind": "running", "submitted_polls": 5}},
        {"run_name": "st-hidden", "workspace_id": WS, "course": {"kind": "not_started"}}])
    check_answer(spec, api.get("/service-info"))
    seen: dict[str, set[str]] = {}
    for _ in range(3):  # first poll: RUNNING / SUBMITTED; then the end states
        resp = api.get("/workflow", params={"workspaceId": WS, "search": "st-", "max": 50, "offset": 0,
                                            "attributes": "labels,optimized"})
        assert resp.status_code == 200
        check_answer(spec, resp)
        for element in resp.json()["workflows"]:
            seen.setdefault(element["workflow"]["runName"], set()).add(element["workflow"]["status"])
    assert {name: statuses for name, statuses in seen.items()} == {
        **{f"st-{kind}": ({"RUNNING", status} if status != "RUNNING" else {"RUNNING"})
           for kind, status in kinds.items()},
        "st-submitted": {"SUBMITTED"}}
    assert "st-hidden" not in seen  # not started: Seqera has not heard of it yet
    for name, run_id in ids.items():
        resp = api.get(f"/workflow/{run_id}", params={"workspaceId": WS, "attributes": "labels"})
        assert resp.status_code == 200
        check_answer(spec, resp)
        tasks = api.get(f"/workflow/{run_id}/tasks", params={"workspaceId": WS, "max": 10, "offset": 0})
        assert tasks.status_code == 200
        check_answer(spec, tasks)
        statuses = [element["task"]["status"] for element in tasks.json()["tasks"]]
        assert statuses == {"st-succeed": ["COMPLETED"], "st-fail": ["FAILED"], "st-cancel": ["ABORTED"],
                            "st-unknown": ["COMPLETED"], "st-running": ["RUNNING"]}.get(name, []), name
    assert api.get(f"/workflow/{ids['st-hidden']}", params={"workspaceId": WS}).json()["workflow"]["status"] \
        == "SUBMITTED"

    launched = api.post("/workflow/launch", params={"workspaceId": WS}, json={"launch": {
        "computeEnvId": "ce1", "pipeline": "https://github.com/pgscatalog/pgsc_calc", "revision": "v2.0.0",
        "runName": "st-launched", "workDir": "s3://bucket/work", "paramsText": json.dumps({"a": 1})}})
    assert launched.status_code == 200
    check_answer(spec, launched)
    run_id = launched.json()["workflowId"]
    cancelled = api.post(f"/workflow/{run_id}/cancel", params={"workspaceId": WS}, json={})
    assert cancelled.status_code == 204
    check_answer(spec, cancelled)
    again = api.post(f"/workflow/{run_id}/cancel", params={"workspaceId": WS}, json={})
    assert again.status_code == 400  # already ended
    check_answer(spec, again)
    bad_launch = api.post("/workflow/launch", params={"workspaceId": WS}, json={"launch": {"pipeline": "x"}})
    assert bad_launch.status_code == 400
    # The spec's 400 here is oneOf ErrorResponse / WorkflowLaunchValidationErrorResponse with no
    # discriminator, and any ErrorResponse is also a valid WorkflowLaunchValidationErrorResponse:
    # no body can match exactly one. So check the ambiguity is the only complaint, then the body.
    from openapi_core.validation.response.exceptions import InvalidData

    with pytest.raises(InvalidData) as ambiguous:
        check_answer(spec, bad_launch)
    assert "is valid under each of" in str(ambiguous.value)
    check_error_body(spec_dict, bad_launch)
    unknown = api.get("/workflow/doesNotExist", params={"workspaceId": WS})
    assert unknown.status_code == 403
    check_answer(spec, unknown)
    other_workspace = api.get(f"/workflow/{run_id}", params={"workspaceId": WS + 1})
    assert other_workspace.status_code == 403
    forbidden = api.get("/workflow", params={"workspaceId": 666})
    assert forbidden.status_code == 403
    check_answer(spec, forbidden)


def test_missing_or_wrong_token_is_401_and_forbidden_workspace_403(sim, spec_dict):
    with httpx.Client(base_url=sim.url, timeout=10) as anonymous:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": f"Basic {sim.token}"}):
            resp = anonymous.get("/workflow", params={"workspaceId": WS}, headers=headers)
            assert resp.status_code == 401
            check_error_body(spec_dict, resp)
            assert sim.token not in resp.text
        assert anonymous.get("/service-info").status_code == 200  # the spec has no security on it
    sim.configure(forbidden_workspaces=[WS])
    with httpx.Client(base_url=sim.url, headers={"Authorization": f"Bearer {sim.token}"}) as api:
        assert api.get("/workflow", params={"workspaceId": WS}).status_code == 403
        assert api.get("/workflow", params={"workspaceId": WS + 1}).status_code == 200


def test_search_matches_run_name_substring_newest_first_with_pages(sim, api):
    sim.create_runs([{"run_name": f"ns-intp{i:03d}", "workspace_id": WS} for i in range(7)]
                    + [{"run_name": "other-run", "workspace_id": WS}, {"run_name": "ns-intp999", "workspace_id": 5}])
    page = api.get("/workflow", params={"workspaceId": WS, "search": "NS-INTP", "max": 3, "offset": 0}).json()
    assert page["totalSize"] == 7 and page["hasMore"] is True
    assert [e["workflow"]["runName"] for e in page["workflows"]] == ["ns-intp006", "ns-intp005", "ns-intp004"]
    last = api.get("/workflow", params={"workspaceId": WS, "search": "ns-intp", "max": 3, "offset": 6}).json()
    assert [e["workflow"]["runName"] for e in last["workflows"]] == ["ns-intp000"] and last["hasMore"] is False
    assert api.get("/workflow", params={"workspaceId": WS, "search": "intp003"}).json()["totalSize"] == 1
    everything = api.get("/workflow", params={"workspaceId": WS}).json()
    assert everything["totalSize"] == 8  # workspace 5's run is not listed in workspace 1001


def test_course_set_after_launch_counts_polls_from_then(sim, api):
    run_id = api.post("/workflow/launch", params={"workspaceId": WS}, json={"launch": {
        "computeEnvId": "ce1", "pipeline": "p", "runName": "late-course"}}).json()["workflowId"]
    for _ in range(2):  # the default course: RUNNING for two polls
        assert api.get(f"/workflow/{run_id}", params={"workspaceId": WS}).json()["workflow"]["status"] == "RUNNING"
    sim.set_course("late-course", "fail", after=2, exit_status=3, error_report="first\nsecond")
    statuses = [api.get("/workflow", params={"workspaceId": WS, "search": "late-course"}).json()
                ["workflows"][0]["workflow"] for _ in range(3)]
    assert [wf["status"] for wf in statuses] == ["RUNNING", "RUNNING", "FAILED"]
    assert (statuses[-1]["exitStatus"], statuses[-1]["errorReport"]) == (3, "first\nsecond")
    assert [r for r in sim.runs() if r["id"] == run_id][0]["polls"] == 5


def test_faults_and_counters(sim, api, spec_dict):
    sim.fault(429, count=2, route="GET /workflow", retry_after=1)
    sim.fault(500, count=1, route="GET /workflow", workspace_id=2002)
    answers = [api.get("/workflow", params={"workspaceId": WS}) for _ in range(3)]
    assert [r.status_code for r in answers] == [429, 429, 200]
    assert answers[0].headers["Retry-After"] == "1"
    check_error_body(spec_dict, answers[0])
    other = [api.get("/workflow", params={"workspaceId": 2002}).status_code for _ in range(2)]
    assert other == [500, 200]
    api.get("/service-info")
    calls = sim.calls()
    assert calls["routes"] == {"GET /workflow": 5}  # service-info is not a gated (counted) route
    assert calls["by_workspace"]["GET /workflow"] == {str(WS): 3, "2002": 2}
    assert [entry[3] for entry in calls["log"]] == [429, 429, 200, 500, 200]
    sim.reset()
    assert sim.calls()["routes"] == {}


def test_hang_outlasts_a_client_timeout_and_the_server_keeps_answering(sim):
    sim.fault("hang", count=1, route="GET /workflow", seconds=2)
    headers = {"Authorization": f"Bearer {sim.token}"}
    t0 = time.monotonic()
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(f"{sim.url}/workflow", params={"workspaceId": WS}, headers=headers, timeout=0.5)
    assert httpx.get(f"{sim.url}/workflow", params={"workspaceId": WS}, headers=headers, timeout=5).status_code == 200
    assert time.monotonic() - t0 < 2  # the hang blocked one request, not the server


def test_hook_requests_follow_the_spec(sim, spec):
    hook = SeqeraHook()
    try:
        hook.service_info()
        workflow_id = hook.launch("spec-run", "https://github.com/pgscatalog/pgsc_calc", "v2.0.0",
                                  {"target_build": "GRCh38", "n": 2}, "s3://bucket/work/spec-run")
        hook.list_workflows(search="spec-", max=10, offset=0)
        hook.get_workflow(workflow_id)
        hook.list_tasks(workflow_id)
        hook.cancel(workflow_id)
        hook.find_workflow("spec-run", workspace_id=WS)
    finally:
        hook.close()
    recorded = sim.requests()
    assert {r["route"] for r in recorded} == {"GET /workflow", "POST /workflow/launch", "GET /workflow/{workflowId}",
                                              "GET /workflow/{workflowId}/tasks", "POST /workflow/{workflowId}/cancel"}
    violations = []
    for r in recorded:
        req = _mock_request(sim.url, r["method"], r["path"], r["query"], {
            "Authorization": r["headers"]["authorization"], "Content-Type": r["headers"]["content-type"]},
            r["body"].encode() if r["body"] else None, r["headers"]["content-type"] or "application/json")
        try:
            spec.validate_request(req)
        except Exception as exc:  # noqa: BLE001 - collect every violation for the message
            violations.append(f"{r['method']} {r['path']}: {exc}")
    assert violations == []
    launch = json.loads(next(r["body"] for r in recorded if r["route"] == "POST /workflow/launch"))["launch"]
    assert launch == {"computeEnvId": sim.compute_env_id, "pipeline": "https://github.com/pgscatalog/pgsc_calc",
                      "revision": "v2.0.0", "runName": "spec-run", "workDir": "s3://bucket/work/spec-run",
                      "paramsText": json.dumps({"n": 2, "target_build": "GRCh38"}, sort_keys=True)}


def test_tasks_page_and_add_up_to_the_progress_load(sim, api, spec):
    """A run of 120 tasks lists them in pages; the ended run's load sums what its tasks list."""
    specs = [{"cpus": 1 + n % 4, "memory_gib": 2.0 * (1 + n % 3), "minutes": 1.0 + n, "machine_type": "m5.xlarge",
              "price_model": "standard" if n % 2 else "spot", "write_bytes": 1000 * n} for n in range(120)]
    ids = sim.create_runs([{"run_name": "st-many", "workspace_id": WS,
                            "course": {"kind": "fail", "after": 0, "tasks": specs}}])
    run_id = ids["st-many"]
    described = api.get(f"/workflow/{run_id}", params={"workspaceId": WS}).json()
    assert described["workflow"]["status"] == "FAILED"
    hook = SeqeraHook()
    try:
        tasks = hook.list_tasks(run_id, workspace_id=WS, page_size=50)
    finally:
        hook.close()
    assert len(tasks) == 120 and len({t["taskId"] for t in tasks}) == 120
    assert [t["status"] for t in tasks].count("FAILED") == 1 and tasks[-1]["status"] == "FAILED"
    load = described["progress"]["workflowProgress"]
    assert load["cpuTime"] == sum(t["cpus"] * t["realtime"] for t in tasks) == \
        sum(s["cpus"] * s["minutes"] * 60_000 for s in specs)
    assert load["writeBytes"] == sum(s["write_bytes"] for s in specs)
    assert abs(load["cost"] - sum(t["cost"] for t in tasks)) < 1e-3
    pages = [r for r in sim.requests() if r["route"] == "GET /workflow/{workflowId}/tasks"]
    assert len(pages) == 3  # 50 + 50 + 20
