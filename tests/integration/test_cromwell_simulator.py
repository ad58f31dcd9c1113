"""The Cromwell simulator against Cromwell's published swagger, over real HTTP.

The contract copy (``tests/contracts/cromwell-api-c805f3c5.yaml``) is Swagger 2.0, which
openapi-core does not read (it takes OpenAPI 3.0/3.1 only). So answers are checked with
``jsonschema`` (draft 4, the dialect of Swagger 2.0 schema objects, with ``date-time``
formats checked) against the response schema the copy declares for the route and status:

- every JSON answer any test receives through the ``api`` client is checked at the end of
  the test against :func:`as_cromwell_answers` (the copy with the documented places where
  Cromwell's code differs put right, each listed in the copy's header);
- :func:`test_swagger_deviations_are_where_the_contract_header_says` shows each of those
  places on its own: the unpatched copy rejects the real answer for the stated reason only;
- statuses a route does not declare (400 of ``/query`` and ``/describe``, injected 503s) must
  be errors in Cromwell's envelope ``{"status": "fail"|"error", "message"}``.
"""

from __future__ import annotations

import copy
import hashlib
import io
import json
import re
import uuid
import zipfile
from pathlib import Path

import httpx
import pytest
import yaml
from jsonschema import Draft4Validator, ValidationError

from hatchway_dev.endpoints import CromwellSimulator

SPEC = Path(__file__).resolve().parents[1] / "contracts" / "cromwell-api-c805f3c5.yaml"
BUCKET = "cromwell-sim-test"
API = "/api/workflows/v1"
ENVELOPE = {"type": "object", "required": ["status", "message"], "additionalProperties": False,
            "properties": {"status": {"enum": ["fail", "error"]}, "message": {"type": "string"}}}
HELLO = """version 1.0
workflow hello {
  input {
    String name
    Int n = 3
  }
  call main { input: who = name }
  output {
    File result = main.out
  }
}
task main {
  input { String who }
  command <<< echo hello ~{who} > result.txt >>>
  output { File out = "result.txt" }
}
"""
TYPE_ERROR = """version 1.0
workflow broken {
  input {
    Int n = 3
  }
  Boolean flag = n + 1
  output {
    Int m = n
  }
}
"""


# -- the contract
def load_spec() -> dict:
    with open(SPEC) as fh:
        return yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def as_cromwell_answers(spec: dict) -> dict:
    """The copy with each documented deviation (its header, items 1, 5, 6, 7) put the way
    Cromwell's code answers; nothing else changes."""
    fixed = copy.deepcopy(spec)
    defs = fixed["definitions"]
    defs["WorkflowOutputsResponse"] = {"required": ["id", "outputs"], "additionalProperties": False,
                                       "properties": {"id": {"type": "string"}, "outputs": {"type": "object"}}}
    fixed["paths"]["/api/workflows/{version}/{id}/outputs"]["get"]["responses"]["200"] = {
        "description": "Successful Request", "schema": {"$ref": "#/definitions/WorkflowOutputsResponse"}}
    defs["LabelsResponse"]["properties"]["labels"] = {"type": "object", "additionalProperties": {"type": "string"}}
    defs["ValueType"]["required"] = ["typeName"]
    defs["ToolInputParameter"]["properties"]["default"] = {"type": ["string", "null"]}
    defs["WorkflowMetadataResponse"]["properties"]["calls"] = {
        "type": "object", "additionalProperties": {"type": "array", "items": {"$ref": "#/definitions/CallMetadata"}}}
    return fixed


class Contract:
    """Response schemas of a Swagger 2.0 document, by method, URL path and status."""

    def __init__(self, spec: dict) -> None:
        self.spec = spec
        self.routes = [(re.compile("^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$"), template)
                       for template in spec["paths"]]

    def operation(self, method: str, path: str) -> dict:
        for pattern, template in self.routes:
            if pattern.match(path) and method.lower() in self.spec["paths"][template]:
                return self.spec["paths"][template][method.lower()]
        raise AssertionError(f"{method} {path} is not in the contract")

    def response(self, method: str, path: str, status: int) -> dict | None:
        """The declared response (``$ref`` to ``#/responses`` followed), or None if undeclared."""
        declared = self.operation(method, path)["responses"].get(str(status))
        if declared is not None and "$ref" in declared:
            declared = self.spec["responses"][declared["$ref"].rsplit("/", 1)[1]]
        return declared

    def validator(self, schema: dict) -> Draft4Validator:
        root = {"allOf": [schema], "definitions": self.spec["definitions"]}
        return Draft4Validator(root, format_checker=Draft4Validator.FORMAT_CHECKER)

    def validate(self, schema: dict, body) -> None:
        self.validator(schema).validate(body)

    def violations(self, resp: httpx.Response) -> set[tuple[str, str]]:
        """Every way a 2xx answer breaks its declared schema, as ``(validator, message)``."""
        req = resp.request
        schema = self.response(req.method, req.url.path, resp.status_code)["schema"]
        return {(e.validator, e.message) for e in self.validator(schema).iter_errors(resp.json())}

    def check(self, resp: httpx.Response) -> None:
        """Raise unless the answer is what the contract declares for its route and status."""
        req = resp.request
        declared = self.response(req.method, req.url.path, resp.status_code)
        if declared is None:
            assert resp.status_code >= 400, f"{req.method} {req.url.path}: undeclared success {resp.status_code}"
        if declared is not None and "schema" in declared:
            self.validate(declared["schema"], resp.json())
        else:  # no body declared: errors carry Cromwell's envelope
            Draft4Validator(ENVELOPE).validate(resp.json())


# -- fixtures
@pytest.fixture(scope="module")
def spec() -> dict:
    return load_spec()


@pytest.fixture(scope="module")
def cromwell(moto_server, tmp_path_factory):
    simulator = CromwellSimulator(root=f"s3://{BUCKET}/runs", s3_endpoint=moto_server.url)
    simulator.start(tmp_path_factory.mktemp("cromwell"))
    yield simulator
    simulator.stop()


@pytest.fixture
def sim(cromwell):
    cromwell.reset()
    return cromwell


@pytest.fixture
def api(sim, spec):
    """An HTTP client on the simulator; every answer it gets is checked against the contract
    (as Cromwell answers) when the test ends."""
    answers: list[httpx.Response] = []
    with httpx.Client(base_url=sim.url, timeout=10, event_hooks={"response": [answers.append]}) as client:
        yield client
    contract = Contract(as_cromwell_answers(spec))
    violations = []
    for resp in answers:
        try:
            contract.check(resp)
        except (AssertionError, ValidationError) as exc:
            violations.append(f"{resp.request.method} {resp.request.url.path} {resp.status_code}: "
                              f"{getattr(exc, 'message', exc)}")
    assert answers and violations == []


@pytest.fixture
def s3(moto_server):
    import boto3

    client = boto3.client("s3", endpoint_url=moto_server.url, region_name="us-east-1")
    try:
        client.create_bucket(Bucket=BUCKET)
    except client.exceptions.BucketAlreadyOwnedByYou:
        pass
    return client


def submit(api: httpx.Client, source: str = HELLO, inputs: dict | None = None, labels: dict | None = None,
           **data) -> httpx.Response:
    files = {"workflowSource": ("hello.wdl", source, "text/plain"),
             "workflowInputs": ("inputs.json", json.dumps(inputs or {"hello.name": "world"}), "application/json")}
    if labels is not None:
        data["labels"] = json.dumps(labels)
    return api.post(API, files=files, data=data)


def statuses(api: httpx.Client, wf_id: str, n: int) -> list[str]:
    return [api.get(f"{API}/{wf_id}/status").json()["status"] for _ in range(n)]


def read(s3, url: str) -> str:
    bucket, _, key = url[len("s3://"):].partition("/")
    return s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()


def keys_under(s3, url: str) -> set[str]:
    bucket, _, prefix = url[len("s3://"):].partition("/")
    found = s3.list_objects_v2(Bucket=bucket, Prefix=prefix + "/").get("Contents", [])
    return {obj["Key"][len(prefix) + 1:] for obj in found}


def deps_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        archive.writestr("lib/tasks.wdl", "version 1.0\ntask noop { command <<< true >>> }\n")
    return buf.getvalue()


# -- the contract copy itself
def test_contract_copy_is_valid_swagger_2_and_names_its_source(spec):
    from openapi_spec_validator import validate
    from openapi_spec_validator.validation import OpenAPIV2SpecValidator

    validate(spec, cls=OpenAPIV2SpecValidator)
    header = SPEC.read_text().split("\nswagger:", 1)[0]
    for fact in ("broadinstitute/cromwell", "engine/src/main/resources/swagger/cromwell.yaml", "c805f3c5"):
        assert fact in header
    assert spec["swagger"] == "2.0"
    assert "/api/ga4gh/wes/v1/runs" not in spec["paths"]  # cut to the routes the simulator serves


def test_swagger_deviations_are_where_the_contract_header_says(sim, api, spec):
    """Each place the copy's header names: the unpatched swagger rejects Cromwell's real answer,
    for that reason only (the patched copy, used on every answer, accepts it)."""
    original = Contract(spec)
    wf_id = submit(api).json()["id"]
    for _ in range(5):
        sim.advance(wf_id)

    outputs = api.get(f"{API}/{wf_id}/outputs")  # 1. {"id", "outputs"}, not WorkflowIdAndStatus
    assert set(outputs.json()) == {"id", "outputs"}
    assert original.violations(outputs) == {("required", "'status' is a required property")}

    on_hold = submit(api, workflowOnHold="true")  # 2./3. 201 "On Hold"; a status the query enum lacks
    assert (on_hold.status_code, on_hold.json()["status"]) == (201, "On Hold")
    assert "201" in spec["paths"]["/api/workflows/{version}"]["post"]["responses"]
    assert "On Hold" not in spec["definitions"]["WorkflowQueryParameter"]["properties"]["status"]["enum"]
    listed = api.get(f"{API}/query", params={"status": "On Hold"}).json()
    assert [r["id"] for r in listed["results"]] == [on_hold.json()["id"]]

    ended = api.post(f"{API}/{wf_id}/abort")  # 4. no 403: an ended workflow is not in the store
    assert "403" in spec["paths"]["/api/workflows/{version}/{id}/abort"]["post"]["responses"]
    assert ended.status_code == 404
    assert ended.json() == {"status": "error",
                            "message": f"Couldn't abort {wf_id} because no workflow with that ID is in progress"}

    labels = api.get(f"{API}/{wf_id}/labels")  # 5. an object, declared a string
    assert original.violations(labels) == {("type", f"{labels.json()['labels']!r} is not of type 'string'")}

    described = api.post("/api/womtool/v1/describe", files={"workflowSource": ("w.wdl", HELLO)})
    assert original.violations(described) == {  # 6. typeName, not valueType; a null default
        ("required", "'valueType' is a required property"), ("type", "None is not of type 'string'")}
    assert {i["name"]: i["default"] for i in described.json()["inputs"]} == {"name": None, "n": "3"}

    metadata = api.get(f"{API}/{wf_id}/metadata")  # 7. calls: name -> list of CallMetadata
    assert spec["definitions"]["WorkflowMetadataResponse"]["properties"]["calls"] == {
        "$ref": "#/definitions/CallMetadata"}
    calls = metadata.json()["calls"]
    assert list(calls) == ["hello.main"] and isinstance(calls["hello.main"], list)
    for entry in calls["hello.main"]:
        original.validate({"$ref": "#/definitions/CallMetadata"}, entry)


def test_every_route_answers_per_contract_in_every_state(sim, api, spec):
    """One call of each route in each state it can be in; the ``api`` fixture checks them all."""
    assert api.get(f"{API}/backends").json() == {"supportedBackends": ["AWSBatch"], "defaultBackend": "AWSBatch"}
    assert set(api.get("/engine/v1/version").json()) == {"cromwell"}
    assert api.get("/engine/v1/status").json() == {}
    sim.set_course("fail", after=1, match={"label": "course:fail"})
    sim.set_course("hang", after=1, match={"label": "course:hang"})
    ids = {kind: submit(api, labels={"course": kind}).json()["id"] for kind in ("succeed", "fail", "hang")}
    held = submit(api, workflowOnHold="true").json()["id"]
    seen: dict[str, set[str]] = {kind: set() for kind in ids}
    for _ in range(4):
        for kind, wf_id in ids.items():
            seen[kind].add(api.get(f"{API}/{wf_id}/status").json()["status"])
            api.get(f"{API}/{wf_id}/metadata")
            api.get(f"{API}/{wf_id}/outputs")
        api.get(f"{API}/query", params={"additionalQueryResultFields": "labels"})
        api.post(f"{API}/query", json=[{"label": "course:hang"}, {"status": "Running"}])
    assert seen == {"succeed": {"Submitted", "Running", "Succeeded"}, "fail": {"Submitted", "Failed"},
                    "hang": {"Submitted", "Running"}}
    assert api.post(f"{API}/{ids['hang']}/abort").json()["status"] == "Aborting"
    assert api.get(f"{API}/{ids['hang']}/metadata").json()["status"] == "Aborted"
    assert api.post(f"{API}/{held}/releaseHold").json() == {"id": held, "status": "Submitted"}
    assert api.post(f"{API}/{held}/releaseHold").status_code == 403
    assert api.patch(f"{API}/{held}/labels", json={"team": "genomics"}).status_code == 200
    # errors: malformed id, unknown id, bad query, bad describe
    malformed = api.get(f"{API}/not-a-uuid/status")
    assert malformed.json() == {"status": "fail", "message": "Invalid workflow ID: 'not-a-uuid'."}
    unknown = str(uuid.uuid4())
    for route in ("status", "metadata", "outputs", "labels"):
        resp = api.get(f"{API}/{unknown}/{route}")
        assert resp.json() == {"status": "fail", "message": f"Unrecognized workflow ID: {unknown}"}
    assert api.post(f"{API}/{unknown}/abort").status_code == 404
    assert api.get(f"{API}/query", params={"colour": "red"}).json()["message"] == "Unrecognized query keys: colour"
    assert api.post("/api/womtool/v1/describe", files={"workflowInputs": ("i.json", "{}")}).status_code == 400
    assert sim.calls() == {"backends": 1, "version": 1, "engine_status": 1, "submit": 4, "status": 14, "metadata": 14,
                           "outputs": 13, "query": 9, "abort": 2, "releaseHold": 2, "labels": 2, "describe": 1}


# -- submit
def test_submit_records_every_form_field_and_only_a_digest_of_the_token(sim, api):
    token = "cromwell-test-token-" + uuid.uuid4().hex
    requested = str(uuid.uuid4())
    deps = deps_zip()
    options = json.dumps({"final_workflow_outputs_dir": "s3://out", "hogGroup": "alice"})
    inputs = json.dumps({"hello.name": "world"})
    resp = api.post(API, headers={"Authorization": f"Bearer {token}"}, files={
        "workflowSource": ("hello.wdl", HELLO, "text/plain"),
        "workflowInputs": ("inputs.json", inputs, "application/json"),
        "workflowOptions": ("options.json", options, "application/json"),
        "workflowDependencies": ("deps.zip", deps, "application/zip"),
    }, data={"labels": json.dumps({"user": "alice"}), "workflowType": "WDL", "workflowTypeVersion": "1.0",
             "workflowOnHold": "false", "requestedWorkflowId": requested})
    assert resp.status_code == 201
    assert resp.json() == {"id": requested, "status": "Submitted"}
    [record] = sim.submissions()
    fields = {f["name"]: f for f in record["fields"]}
    assert set(fields) == {"workflowSource", "workflowInputs", "workflowOptions", "workflowDependencies", "labels",
                           "workflowType", "workflowTypeVersion", "workflowOnHold", "requestedWorkflowId"}
    assert fields["workflowDependencies"]["filename"] == "deps.zip"
    assert fields["workflowDependencies"]["size"] == len(deps)
    assert fields["workflowDependencies"]["sha256"] == hashlib.sha256(deps).hexdigest()
    assert fields["workflowSource"]["sha256"] == hashlib.sha256(HELLO.encode()).hexdigest()
    assert fields["labels"]["value"] == json.dumps({"user": "alice"})
    assert fields["requestedWorkflowId"]["value"] == requested and record["id"] == requested
    header_digest = hashlib.sha256(f"Bearer {token}".encode()).hexdigest()
    assert record["authorization"] == {"scheme": "Bearer", "sha256": header_digest}
    api.get(f"{API}/{requested}/status")
    assert sim.calls_with_authorization(f"Bearer {token}") == ["submit"]  # the status poll sent none
    assert token not in json.dumps([sim.submissions(), sim.call_log(), sim.workflows()])
    submitted = api.get(f"{API}/{requested}/metadata", params={"includeKey": "submittedFiles"}).json()["submittedFiles"]
    assert submitted == {"workflow": HELLO, "inputs": inputs, "options": options,
                         "labels": json.dumps({"user": "alice"}), "workflowType": "WDL", "workflowTypeVersion": "1.0"}


@pytest.mark.parametrize(("data", "files", "reason"), [
    ({}, {"workflowInputs": ("i.json", "{}")}, "Either workflow source or url has to be supplied"),
    ({"labels": '["user", "alice"]'}, None, 'Expected a JsObject of "labelKey": "labelValue" values.'),
    ({"labels": json.dumps({"": "x"})}, None, "Invalid label: `` can't be empty"),
    ({"labels": json.dumps({"k": "v" * 256})}, None, "is 256 characters. The maximum is 255."),
    ({"workflowInputs": "[1, 2, 3]"}, None, "To submit more than one workflow at a time, use the batch endpoint."),
    ({"workflowInputs": '"just text"'}, None, "Submitted inputs couldn't be processed"),
    ({}, {"workflowSource": ("w.wdl", HELLO), "workflowDependencies": ("d.zip", b"not a zip")},
     "workflowDependencies is not a valid zip file"),
    ({"workflowTypeVersion": "2.0"}, None, "Unsupported WDL version '2.0'"),
    ({"collectionName": "alice"}, None, "Unexpected body part name: collectionName"),
])
def test_submit_refuses_what_cromwell_refuses_with_its_envelope(sim, api, data, files, reason):
    files = files if files is not None else {"workflowSource": ("w.wdl", HELLO)}
    resp = api.post(API, data=data, files=files)
    assert resp.status_code == 400
    assert resp.json()["status"] == "fail" and resp.json()["message"].startswith("Error(s): ")
    assert reason in resp.json()["message"]
    assert sim.submissions()[-1]["id"] is None and reason in sim.submissions()[-1]["error"]
    assert sim.workflows() == []


# -- courses
def test_status_moves_submitted_running_then_outcome_one_step_per_observation(sim, api):
    wf_id = submit(api).json()["id"]
    assert statuses(api, wf_id, 6) == ["Submitted", "Submitted", "Running", "Running", "Succeeded", "Succeeded"]
    assert sim.workflow(wf_id)["observations"] == 6
    sim.set_course("succeed", after=3)  # a new default course: later workflows only
    later = submit(api).json()["id"]
    assert statuses(api, later, 7)[-2:] == ["Running", "Succeeded"]
    held = submit(api, workflowOnHold="true").json()["id"]
    assert statuses(api, held, 3) == ["On Hold"] * 3  # held workflows do not advance


def test_failing_course_reports_failures_call_return_code_and_writes_no_outputs(sim, api, s3):
    sim.set_course("fail", after=1, match={"label": "case:fail"}, failure="PLINK2 ran out of memory",
                   return_code=137, intermediates=["call-main/execution/scratch.tmp"])
    wf_id = submit(api, labels={"case": "fail"}).json()["id"]
    assert statuses(api, wf_id, 3) == ["Submitted", "Running", "Failed"]
    meta = api.get(f"{API}/{wf_id}/metadata").json()
    assert meta["failures"] == [{"message": "PLINK2 ran out of memory", "causedBy": []}]
    [call] = meta["calls"]["hello.main"]
    assert (call["executionStatus"], call["backendStatus"], call["returnCode"]) == ("Failed", "FAILED", 137)
    assert call["failures"] == [{"message": "PLINK2 ran out of memory", "causedBy": []}]
    assert api.get(f"{API}/{wf_id}/outputs").json() == {"id": wf_id, "outputs": {}}
    root = meta["workflowRoot"]
    assert root == f"s3://{BUCKET}/runs/hello/{wf_id}"
    assert keys_under(s3, root) == {"call-main/execution/script", "call-main/execution/stdout",
                                    "call-main/execution/stderr", "call-main/execution/rc",
                                    "call-main/execution/scratch.tmp"}
    assert read(s3, f"{root}/call-main/execution/rc") == "137\n"
    assert "PLINK2 ran out of memory" in read(s3, f"{root}/call-main/execution/stderr")


def test_succeeding_course_writes_outputs_and_intermediates_to_s3(sim, api, s3):
    sim.set_course("succeed", after=1, match={"name": "hello"}, intermediates=[
        {"path": "call-align/execution/aligned.bam", "content": "BAM"}], outputs={
        "hello.report": {"path": "call-report/execution/report.html", "content": "<h1>ok</h1>"},
        "scores": {"path": "call-report/execution/scores.tsv", "content": "id\tscore\n"},
        "hello.count": 42, "hello.label": "cohort-a"})
    wf_id = submit(api).json()["id"]
    assert api.get(f"{API}/{wf_id}/outputs").json()["outputs"] == {}  # nothing exists before the end
    assert statuses(api, wf_id, 3) == ["Submitted", "Running", "Succeeded"]
    root = f"s3://{BUCKET}/runs/hello/{wf_id}"
    outputs = api.get(f"{API}/{wf_id}/outputs").json()["outputs"]
    assert outputs == {"hello.report": f"{root}/call-report/execution/report.html",
                       "hello.scores": f"{root}/call-report/execution/scores.tsv",
                       "hello.count": 42, "hello.label": "cohort-a"}
    assert read(s3, outputs["hello.report"]) == "<h1>ok</h1>"
    assert read(s3, outputs["hello.scores"]) == "id\tscore\n"
    assert read(s3, f"{root}/call-align/execution/aligned.bam") == "BAM"
    for task in ("report", "align"):
        assert {f"call-{task}/execution/{f}" for f in ("script", "stdout", "stderr", "rc")} <= keys_under(s3, root)
        assert read(s3, f"{root}/call-{task}/execution/rc") == "0\n"
    meta = api.get(f"{API}/{wf_id}/metadata").json()
    assert set(meta["calls"]) == {"hello.report", "hello.align"}
    assert meta["calls"]["hello.report"][0]["outputs"] == {"report": outputs["hello.report"],
                                                          "scores": outputs["hello.scores"]}
    assert sim.write_errors() == []


def test_default_course_writes_result_txt(sim, api, s3):
    wf_id = submit(api).json()["id"]
    for _ in range(5):
        sim.advance(wf_id)
    result = api.get(f"{API}/{wf_id}/outputs").json()["outputs"]["hello.result"]
    assert result == f"s3://{BUCKET}/runs/hello/{wf_id}/call-main/execution/result.txt"
    assert read(s3, result) == "ok"


def test_abort_before_start_is_aborted_at_once_and_a_running_one_passes_through_aborting(sim, api):
    queued = submit(api).json()["id"]
    assert api.post(f"{API}/{queued}/abort").json() == {"id": queued, "status": "Aborted"}
    assert statuses(api, queued, 1) == ["Aborted"]
    running = submit(api).json()["id"]
    assert statuses(api, running, 3)[-1] == "Running"
    assert api.post(f"{API}/{running}/abort").json() == {"id": running, "status": "Aborting"}
    assert api.post(f"{API}/{running}/abort").json()["status"] == "Aborting"  # asked again: still on its way
    assert statuses(api, running, 2) == ["Aborted", "Aborted"]
    [call] = api.get(f"{API}/{running}/metadata").json()["calls"]["hello.main"]
    assert call["executionStatus"] == "Aborted" and "end" in call
    again = api.post(f"{API}/{running}/abort")
    assert again.status_code == 404 and again.json()["status"] == "error"
    assert sim.calls()["abort"] == 4


# -- query
def test_query_by_labels_status_name_and_pages(sim, api):
    sim.set_course("hang", after=100)  # the default: every workflow stays Submitted while queried
    people = [("alice", "x"), ("alice", "y"), ("bob", "x"), ("carol", "y"), ("alice", "x")]
    ids = [submit(api, labels={"user": u, "proj": p}).json()["id"] for u, p in people]
    newest_first = ids[::-1]

    def query(**params):
        answer = api.get(f"{API}/query", params=params).json()
        return [r["id"] for r in answer["results"]], answer["totalResultsCount"]

    assert query(label=["user:alice", "proj:x"]) == ([ids[4], ids[0]], 2)  # AND
    assert query(labelor=["user:bob", "user:carol"]) == ([ids[3], ids[2]], 2)  # OR
    assert query(label="user:alice", excludeLabelOr="proj:y") == ([ids[4], ids[0]], 2)
    assert query(status="Submitted") == (newest_first, 5)
    assert query(status=["Running", "Failed"]) == ([], 0)
    assert query(name="hello", id=[ids[1], ids[2]]) == ([ids[2], ids[1]], 2)
    pages = [query(pageSize=2, page=page) for page in (1, 2, 3)]
    assert pages == [(newest_first[:2], 5), (newest_first[2:4], 5), (newest_first[4:], 5)]
    posted = api.post(f"{API}/query", json=[{"label": "user:alice"}, {"pageSize": "2"}]).json()
    assert [r["id"] for r in posted["results"]] == [ids[4], ids[1]] and posted["totalResultsCount"] == 3
    plain = api.get(f"{API}/query", params={"id": ids[0]}).json()["results"][0]
    with_labels = api.get(f"{API}/query", params={"id": ids[0], "additionalQueryResultFields": "labels"}).json()
    assert "labels" not in plain
    assert with_labels["results"][0]["labels"] == {"cromwell-workflow-id": f"cromwell-{ids[0]}", "user": "alice",
                                                   "proj": "x"}
    bad = api.get(f"{API}/query", params={"status": "Done", "label": "no-colon", "pageSize": "0"})
    assert bad.status_code == 400
    for reason in ("Unrecognized status values: Done", "label-key:label-value", "pageSize must be an integer"):
        assert reason in bad.json()["message"]


def test_query_counts_as_an_observation_and_reports_the_summary_before_it(sim, api):
    wf_id = submit(api).json()["id"]
    seen = [api.get(f"{API}/query", params={"id": wf_id}).json()["results"][0]["status"] for _ in range(6)]
    assert seen == ["Submitted", "Submitted", "Submitted", "Running", "Running", "Succeeded"]
    assert sim.workflow(wf_id)["observations"] == 6


# -- metadata
def test_metadata_include_and_exclude_keys_filter_top_level_and_call_keys(sim, api):
    wf_id = submit(api).json()["id"]
    for _ in range(4):
        sim.advance(wf_id)
    url = f"{API}/{wf_id}/metadata"
    slim = api.get(url, params={"includeKey": ["status", "executionStatus", "backendStatus"],
                                "expandSubWorkflows": "true"}).json()
    assert slim == {"id": wf_id, "status": "Succeeded", "calls": {"hello.main": [
        {"executionStatus": "Done", "backendStatus": "SUCCEEDED", "shardIndex": -1, "attempt": 1}]}}
    assert api.get(url, params={"includeKey": "workflowN"}).json() == {"id": wf_id, "workflowName": "hello"}
    no_calls = api.get(url, params={"excludeKey": ["calls", "submittedFiles"]}).json()
    assert "calls" not in no_calls and "submittedFiles" not in no_calls and no_calls["workflowName"] == "hello"
    no_std = api.get(url, params={"excludeKey": "std"}).json()["calls"]["hello.main"][0]
    assert "stdout" not in no_std and "stderr" not in no_std and no_std["returnCode"] == 0
    both = api.get(url, params={"includeKey": "status", "excludeKey": "calls"})
    assert both.status_code == 400
    assert both.json() == {"status": "fail", "message": "includeKey and excludeKey may not be specified together"}


def test_labels_patch_merges_and_validates(sim, api):
    wf_id = submit(api, labels={"user": "alice"}).json()["id"]
    patched = api.patch(f"{API}/{wf_id}/labels", json={"user": "bob", "stage": "qc"}).json()
    assert patched == {"id": wf_id, "labels": {"cromwell-workflow-id": f"cromwell-{wf_id}", "user": "bob",
                                               "stage": "qc"}}
    assert api.get(f"{API}/{wf_id}/labels").json() == patched
    assert api.get(f"{API}/query", params={"label": "stage:qc"}).json()["totalResultsCount"] == 1
    refused = api.patch(f"{API}/{wf_id}/labels", json={"": "x"})
    assert refused.status_code == 400 and "can't be empty" in refused.json()["message"]


# -- faults
def test_new_workflow_is_unknown_for_its_first_reads_then_found(sim, api):
    sim.unknown_after_submit(3)
    wf_id = submit(api).json()["id"]
    assert api.get(f"{API}/{wf_id}/status").status_code == 404
    assert api.get(f"{API}/{wf_id}/metadata").json() == {"status": "fail",
                                                         "message": f"Unrecognized workflow ID: {wf_id}"}
    assert api.get(f"{API}/query", params={"id": wf_id}).json() == {"results": [], "totalResultsCount": 0}
    assert api.get(f"{API}/{wf_id}/status").json() == {"id": wf_id, "status": "Submitted"}
    assert sim.workflow(wf_id)["observations"] == 1  # hidden reads are no observations


def test_injected_faults_hit_only_their_routes_and_count(sim, api):
    wf_id = submit(api).json()["id"]
    sim.fault(503, count=2, routes=["status", "query"])
    first = api.get(f"{API}/{wf_id}/status")
    assert first.status_code == 503 and first.json()["status"] == "error"
    assert api.get(f"{API}/backends").status_code == 200
    assert api.get(f"{API}/query").status_code == 503
    assert api.get(f"{API}/{wf_id}/status").json()["status"] == "Submitted"
    assert sim.workflow(wf_id)["observations"] == 1  # a faulted poll observes nothing
    assert sim.calls() == {"submit": 1, "status": 2, "backends": 1, "query": 1}
    assert [(c["route"], c["status"]) for c in sim.call_log()] == [
        ("submit", 201), ("status", 503), ("backends", 200), ("query", 503), ("status", 200)]
    with pytest.raises(Exception, match="400"):
        sim.fault(200)


# -- womtool describe
def test_describe_valid_wdl_lists_inputs_and_outputs(sim, api):
    answer = api.post("/api/womtool/v1/describe", files={"workflowSource": ("w.wdl", HELLO)}).json()
    assert (answer["valid"], answer["validWorkflow"], answer["isRunnableWorkflow"], answer["errors"]) == (
        True, True, True, [])
    assert answer["name"] == "hello"
    assert answer["submittedDescriptorType"] == {"descriptorType": "WDL", "descriptorTypeVersion": "1.0"}
    assert [(i["name"], i["typeDisplayName"], i["optional"]) for i in answer["inputs"]] == [
        ("n", "Int", True), ("name", "String", False)]
    assert answer["outputs"] == [{"name": "result", "valueType": {"typeName": "File"}, "typeDisplayName": "File"}]
    missing = api.post("/api/womtool/v1/describe", files={"workflowSource": ("w.wdl", HELLO),
                                                           "workflowInputs": ("i.json", "{}")}).json()
    assert (missing["valid"], missing["validWorkflow"]) == (False, True)
    assert missing["errors"] == ["Required workflow input 'hello.name' not specified"]


def test_describe_type_error_is_invalid_with_its_line(sim, api):
    answer = api.post("/api/womtool/v1/describe", files={"workflowSource": ("w.wdl", TYPE_ERROR)}).json()
    assert (answer["valid"], answer["validWorkflow"], answer["isRunnableWorkflow"]) == (False, False, False)
    assert len(answer["errors"]) == 1
    assert "Expected Boolean instead of Int" in answer["errors"][0] and "line 6" in answer["errors"][0]


def test_airflow_env_points_at_the_simulator(cromwell):
    conn = json.loads(cromwell.airflow_env()["AIRFLOW_CONN_CROMWELL_DEFAULT"])
    assert conn == {"conn_type": "http", "host": "127.0.0.1", "port": cromwell.port, "schema": "http"}
    assert httpx.get(f"{cromwell.api_url}/backends", timeout=5).json()["defaultBackend"] == "AWSBatch"


def test_without_root_outputs_are_paths_and_nothing_is_written():
    from fastapi.testclient import TestClient

    from include.simulators.cromwell import create_app

    with TestClient(create_app()) as client:
        wf_id = submit(client).json()["id"]
        for _ in range(5):
            client.post(f"/_sim/advance/{wf_id}")
        assert client.get(f"{API}/{wf_id}/outputs").json()["outputs"] == {
            "hello.result": f"/cromwell-executions/hello/{wf_id}/call-main/execution/result.txt"}
        state = client.get(f"/_sim/workflows/{wf_id}").json()
        assert (state["status"], state["written"]) == ("Succeeded", [])
