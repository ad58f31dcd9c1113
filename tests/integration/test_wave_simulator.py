"""The Wave simulator against Wave's contract (the TypeSpec compiled, patched to the code), over real HTTP.

Every answer a test receives through the ``api`` client is checked at the end of the test with
``tests/support/wave.py`` (``check_response``: the schema the contract copy declares for the
route and status; undeclared errors must be ``{"message": ...}``), and so is every request body
the simulator accepted (``check_request``). The tests then hold the simulator to Wave's code:
the build's course over status polls, cached builds (failed ones too), the validation texts of
``ContainerController``, scans, 404s, and a call log without tokens.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re

import httpx
import pytest
from jsonschema import Draft202012Validator

from hatchway_dev.endpoints import WaveSimulator
from support.wave import SPEC, check_request, check_response, load_spec, route_for

PACKAGES = {"type": "CONDA", "entries": ["salmon=1.10.3", "bwa=0.7.18"], "channels": ["conda-forge", "bioconda"]}
TOKEN = "tok-8d1f-not-a-real-platform-token"
BUILD_ID = re.compile(r"^bd-[0-9a-f]{16}_1$")
FAILED = "Container build did not complete successfully"


# -- fixtures
@pytest.fixture(scope="module")
def wave(tmp_path_factory):
    simulator = WaveSimulator(token=TOKEN)
    simulator.start(tmp_path_factory.mktemp("wave"))
    yield simulator
    simulator.stop()


@pytest.fixture
def sim(wave):
    wave.reset()
    return wave


@pytest.fixture
def api(sim):
    """An HTTP client on the simulator; every answer it gets, and every request body the
    simulator accepted, is checked against the contract when the test ends."""
    answers: list[httpx.Response] = []
    with httpx.Client(base_url=sim.url, timeout=10, event_hooks={"response": [answers.append]}) as client:
        yield client
    violations = []
    for resp in answers:
        if resp.request.url.path.startswith("/_sim/"):
            continue
        route = route_for(resp.request.method, resp.request.url.path)
        json_body = resp.headers.get("content-type", "").startswith("application/json")
        try:
            check_response(route, resp.status_code, resp.json() if json_body else resp.text)
        except AssertionError as exc:
            violations.append(str(exc))
    for received in sim.requests():
        if received["status"] == 200:
            try:
                check_request(received["body"])
            except AssertionError as exc:
                violations.append(str(exc))
    assert answers and violations == []


def submit(api: httpx.Client, **fields) -> httpx.Response:
    return api.post("/v1alpha2/container", json=fields)


def build(api: httpx.Client, **fields) -> dict:
    """Submit the standard packages (``fields`` added or overriding) and return the 200 answer."""
    resp = submit(api, **{"packages": PACKAGES, **fields})
    assert resp.status_code == 200, resp.text
    return resp.json()


def polls(api: httpx.Client, request_id: str, n: int) -> list[dict]:
    return [api.get(f"/v1alpha2/container/{request_id}/status").json() for _ in range(n)]


# -- the contract copy itself
def test_contract_copy_is_valid_openapi_3_1_and_names_its_source():
    from openapi_spec_validator import validate

    spec = load_spec()
    validate(spec)
    header = SPEC.read_text().split("\nopenapi:", 1)[0]
    for fact in ("seqeralabs/wave", "typespec/", "7b8b9f6d", "@typespec/compiler 1.16.0",
                 "@typespec/openapi3 1.16.0", "2026-12-04"):
        assert fact in header
    assert spec["openapi"] == "3.1.0"
    assert sorted(spec["paths"]) == sorted([
        "/v1alpha2/container", "/v1alpha2/container/{requestId}", "/v1alpha2/container/{requestId}/status",
        "/v1alpha1/builds/{buildId}", "/v1alpha1/builds/{buildId}/status", "/v1alpha1/builds/{buildId}/logs",
        "/service-info"])


def test_contract_examples_fit_their_patched_schemas():
    spec = load_spec()
    for name, schema in spec["components"]["schemas"].items():
        validator = Draft202012Validator({"allOf": [schema], "components": spec["components"]})
        for example in schema.get("examples", []):
            assert [e.message for e in validator.iter_errors(example)] == [], name


def test_contract_refuses_the_typespec_shapes_the_code_never_sends():
    """The places the header patches: what the TypeSpec says and Wave's code does not do is refused."""
    answer = {"requestId": "a1", "targetImage": "t", "containerImage": "c", "freeze": False, "mirror": False}
    check_response("submit", 200, answer | {"succeeded": None})
    with pytest.raises(AssertionError, match="'status' was unexpected"):
        check_response("submit", 200, answer | {"status": "PENDING"})
    status = {"id": "a1", "status": "DONE", "creationTime": "2026-01-01T00:00:00.000000Z", "duration": "1.5"}
    check_response("status", 200, status | {"vulnerabilities": {"HIGH": 2}})
    with pytest.raises(AssertionError, match="vulnerabilities"):
        check_response("status", 200, status | {"vulnerabilities": {"x": {"severity": "HIGH", "count": 2}}})
    with pytest.raises(AssertionError, match="duration"):
        check_response("build", 200, {"buildId": "b", "targetImage": "t", "startTime": "s", "platform": "p",
                                      "format": "DOCKER", "duration": 12})
    check_request({"packages": PACKAGES, "buildTemplate": "conda/pixi:v1", "towerWorkspaceId": 42})
    with pytest.raises(AssertionError, match="conda-pixi/v1"):
        check_request({"packages": PACKAGES, "buildTemplate": "conda-pixi/v1"})
    with pytest.raises(AssertionError, match="'workspaceId' was unexpected"):
        check_request({"packages": PACKAGES, "workspaceId": 42})
    with pytest.raises(AssertionError, match="towerWorkspaceId"):
        check_request({"packages": PACKAGES, "towerWorkspaceId": "my-workspace"})
    with pytest.raises(AssertionError, match="message"):
        check_response("status", 503, {"detail": "Service Unavailable"})


# -- builds
def test_build_succeeds_after_its_polls_building(sim, api):
    sim.set_course(after=3)
    answer = build(api)
    assert BUILD_ID.match(answer["buildId"])
    assert answer["cached"] is False and "succeeded" not in answer and "status" not in answer
    assert answer["containerToken"] == answer["requestId"] and answer["expiration"]
    assert answer["targetImage"].startswith(f"wave.local/wt/{answer['requestId']}/wave/build:salmon-1.10.3_bwa")
    assert answer["containerImage"].endswith(answer["buildId"][3:-2])  # the tag ends with the container id

    seen = polls(api, answer["requestId"], 5)
    assert [s["status"] for s in seen] == ["BUILDING", "BUILDING", "BUILDING", "DONE", "DONE"]
    assert "succeeded" not in seen[0] and "duration" not in seen[0]
    done = seen[3]
    assert done["succeeded"] is True and done["buildId"] == answer["buildId"]
    assert "reason" not in done and float(done["duration"]) >= 0

    status = api.get(f"/v1alpha1/builds/{answer['buildId']}/status").json()
    assert (status["status"], status["succeeded"]) == ("COMPLETED", True)
    record = api.get(f"/v1alpha1/builds/{answer['buildId']}").json()
    assert (record["exitStatus"], record["format"], record["targetImage"]) == (0, "DOCKER", answer["containerImage"])
    assert "salmon=1.10.3" in record["condaFile"]
    logs = api.get(f"/v1alpha1/builds/{answer['buildId']}/logs")
    assert logs.status_code == 200 and logs.headers["content-type"].startswith("text/plain")
    assert f"pushing {answer['containerImage']}" in logs.text


def test_build_status_polls_advance_the_build_too(sim, api):
    sim.set_course(after=2)
    answer = build(api)
    seen = [api.get(f"/v1alpha1/builds/{answer['buildId']}/status").json() for _ in range(3)]
    assert [(s["status"], s.get("succeeded")) for s in seen] == [("PENDING", None), ("PENDING", None),
                                                                ("COMPLETED", True)]
    assert polls(api, answer["requestId"], 1)[0]["status"] == "DONE"


def test_failing_build_is_done_not_succeeded_with_the_reason_and_a_text_log_ending_in_the_error(sim, api):
    sim.set_course(outcome="fail", after=1)
    answer = build(api)
    seen = polls(api, answer["requestId"], 2)
    assert seen[0]["status"] == "BUILDING"
    assert (seen[1]["status"], seen[1]["succeeded"], seen[1]["reason"]) == ("DONE", False, FAILED)
    assert seen[1]["detailsUri"].endswith(f"/view/builds/{answer['buildId']}")

    logs = api.get(f"/v1alpha1/builds/{answer['buildId']}/logs")
    assert logs.status_code == 200 and logs.headers["content-type"].startswith("text/plain")
    lines = logs.text.strip().splitlines()
    assert len(lines) > 3 and lines[-1].startswith("ERROR: failed to solve:") and "exit code: 1" in lines[-1]
    status = api.get(f"/v1alpha1/builds/{answer['buildId']}/status").json()
    assert (status["status"], status["succeeded"]) == ("COMPLETED", False)
    assert api.get(f"/v1alpha1/builds/{answer['buildId']}").json()["exitStatus"] == 1


def test_course_log_replaces_the_build_log(sim, api):
    sim.set_course(after=0, log="step 1\nstep 2\n")
    answer = build(api)
    polls(api, answer["requestId"], 1)
    assert api.get(f"/v1alpha1/builds/{answer['buildId']}/logs").text == "step 1\nstep 2\n"


def test_repeated_request_is_cached_with_the_same_build_and_starts_no_new_one(sim, api):
    sim.set_course(after=1)
    first = build(api, towerAccessToken=TOKEN)
    again = build(api, towerAccessToken=TOKEN)
    assert again["requestId"] != first["requestId"]
    assert (again["buildId"], again["cached"], "succeeded" in again) == (first["buildId"], True, False)
    assert len(sim.builds()) == 1
    assert [(r["status"], r["requestId"]) for r in sim.requests()] == [(200, first["requestId"]),
                                                                       (200, again["requestId"])]
    assert sim.calls()["submit"] == 2

    assert [s["status"] for s in polls(api, again["requestId"], 2)] == ["BUILDING", "DONE"]
    done = build(api)  # anonymous: the build is found by what defines the image, not by who asks
    assert (done["buildId"], done["cached"], done["succeeded"]) == (first["buildId"], True, True)
    assert polls(api, first["requestId"], 1)[0]["status"] == "DONE"  # the build is shared
    other = build(api, packages=PACKAGES | {"entries": ["samtools=1.21"]})
    assert other["cached"] is False and other["buildId"] != first["buildId"]
    arm = build(api, containerPlatform="linux/arm64")
    assert arm["cached"] is False and arm["buildId"] not in (first["buildId"], other["buildId"])
    assert len(sim.builds()) == 3


def test_cached_failed_build_answers_cached_with_its_target_image_and_succeeded_false(sim, api):
    sim.set_course(outcome="fail", after=0)
    first = build(api)
    assert polls(api, first["requestId"], 1)[0]["succeeded"] is False
    again = build(api)
    assert (again["cached"], again["succeeded"], again["buildId"]) == (True, False, first["buildId"])
    assert again["targetImage"] and again["containerImage"] == first["containerImage"]
    done = polls(api, again["requestId"], 1)[0]
    assert (done["status"], done["succeeded"], done["reason"]) == ("DONE", False, FAILED)
    assert len(sim.builds()) == 1


def test_course_match_picks_builds_by_package_entry(sim, api):
    sim.set_course(outcome="fail", after=0, match={"entry": "samtools"})
    failing = build(api, packages=PACKAGES | {"entries": ["bioconda::samtools=1.21"]})
    passing = build(api)
    assert polls(api, failing["requestId"], 1)[0]["succeeded"] is False
    assert polls(api, passing["requestId"], 3)[-1]["succeeded"] is True


def test_freeze_answers_the_pushed_image_without_token_or_expiration(sim, api):
    repo = "registry.example.org/lab/tools"
    answer = build(api, freeze=True, buildRepository=repo)
    assert "containerToken" not in answer and "expiration" not in answer
    assert answer["freeze"] is True and answer["targetImage"] == answer["containerImage"]
    assert answer["targetImage"].startswith(f"{repo}:salmon-1.10.3_bwa-0.7.18--")
    sif = build(api, freeze=True, buildRepository=repo, format="sif")
    assert sif["targetImage"].startswith(f"oras://{repo}:") and sif["buildId"] != answer["buildId"]
    record = api.get(f"/v1alpha1/builds/{sif['buildId']}").json()
    assert record["format"] == "SINGULARITY"


def test_augmented_image_needs_no_build_and_a_frozen_one_is_built_from_it(sim, api):
    plain = submit(api, containerImage="ubuntu:24.04").json()
    assert "buildId" not in plain and "cached" not in plain and plain["succeeded"] is True
    assert plain["containerImage"] == "docker.io/library/ubuntu:24.04"
    assert plain["targetImage"] == f"wave.local/wt/{plain['requestId']}/library/ubuntu:24.04"
    done = polls(api, plain["requestId"], 1)[0]
    assert (done["status"], done["succeeded"], "buildId" in done) == ("DONE", True, False)

    frozen = submit(api, containerImage="ubuntu:24.04", freeze=True, buildRepository="registry.example.org/lab/base")
    assert frozen.status_code == 200 and BUILD_ID.match(frozen.json()["buildId"])
    record = api.get(f"/v1alpha1/builds/{frozen.json()['buildId']}").json()
    assert record["dockerFile"].startswith("FROM docker.io/library/ubuntu:24.04")


def test_container_record_is_the_request_as_wave_stores_it(sim, api):
    answer = build(api, towerAccessToken=TOKEN, towerWorkspaceId=42, fingerprint="abc")
    record = api.get(f"/v1alpha2/container/{answer['requestId']}").json()
    assert (record["id"], record["buildId"], record["buildNew"], record["workspaceId"]) == (
        answer["requestId"], answer["buildId"], True, 42)
    assert record["waveImage"] == answer["targetImage"] and record["sourceImage"] == answer["containerImage"]
    assert record["towerEndpoint"] == "https://api.cloud.seqera.io" and record["user"]["userName"].startswith("user-")


# -- validation
REFUSED = [
    ({"containerFile": base64.b64encode(b"FROM ubuntu:24.04\n").decode(), "freeze": True},
     "Attribute `buildRepository` must be specified when using freeze mode [1]"),
    ({"containerImage": "ubuntu:24.04", "freeze": True},
     "Attribute `buildRepository` must be specified when using freeze mode [2]"),
    ({"packages": PACKAGES, "freeze": True},
     "Attribute `buildRepository` must be specified when using freeze mode [3]"),
    ({"packages": PACKAGES, "containerPlatform": "linux/arm64,linux/amd64"},
     "Only linux/amd64,linux/arm64 multi-platform combination is currently supported"),
    ({"packages": PACKAGES, "containerPlatform": "linux/amd64,linux/arm64", "format": "sif", "freeze": True,
      "buildRepository": "registry.example.org/lab/tools"},
     "Multi-platform builds are not supported for Singularity format"),
    ({"packages": PACKAGES, "format": "sif"},
     "Singularity build is only allowed enabling freeze mode - see 'wave.freeze' setting"),
    ({"packages": PACKAGES, "containerFile": base64.b64encode(b"FROM ubuntu:24.04\n").decode()},
     "Attribute `containerFile` and `packages` conflicts each other"),
    ({"condaFile": base64.b64encode(b"dependencies:\n- bwa\n").decode()},
     "Attribute `condaFile` is deprecated - use `packages` instead"),
    ({"packages": PACKAGES, "buildTemplate": "conda-pixi/v1"},
     "Unexpected or missing package type 'CONDA' or build template 'conda-pixi/v1'"),
    ({"packages": {"type": "CRAN", "entries": ["dplyr"]}, "buildTemplate": "conda/micromamba:v2"},
     "Unexpected or missing package type 'CRAN' or build template 'conda/micromamba:v2'"),
    ({"packages": PACKAGES, "containerPlatform": "linux/s390x"}, "Unsupported container platform: s390x"),
    ({"packages": PACKAGES, "containerImage": "ubuntu:24.04"},
     "Attributes 'containerImage' and 'containerFile' cannot be used in the same request"),
    ({"containerPlatform": "linux/amd64"}, "Specify either 'containerImage' or 'containerFile' attribute"),
]


@pytest.mark.parametrize(("body", "message"), REFUSED, ids=[m[:60] for _, m in REFUSED])
def test_each_validation_error_answers_400_with_the_code_message(sim, api, body, message):
    resp = submit(api, **body)
    assert (resp.status_code, resp.json()) == (400, {"message": message})
    assert [(r["status"], r["error"]) for r in sim.requests()] == [(400, message)]
    assert sim.builds() == []


def test_missing_token_is_refused_only_when_anonymous_access_is_off(sim, api):
    assert submit(api, packages=PACKAGES).status_code == 200
    assert sim.configure(anonymous=False)["anonymous"] is False
    resp = submit(api, packages=PACKAGES)
    assert (resp.status_code, resp.json()) == (400, {"message": "Missing user access token"})
    assert submit(api, packages=PACKAGES, towerAccessToken=TOKEN).status_code == 200


def test_a_body_jackson_cannot_bind_is_refused(sim, api):
    resp = submit(api, packages=PACKAGES, towerWorkspaceId="my-workspace")
    assert resp.status_code == 400 and "towerWorkspaceId" in resp.json()["message"]
    resp = api.post("/v1alpha2/container", content=b"{not json", headers={"content-type": "application/json"})
    assert resp.status_code == 400 and resp.json()["message"].startswith("Invalid JSON")


# -- scans
def test_required_scan_shows_scanning_before_done_with_the_vulnerabilities(sim, api):
    sim.set_course(after=1, scan_polls=2, vulnerabilities={"HIGH": 2})
    answer = build(api, scanMode="required", scanLevels=["LOW", "MEDIUM", "HIGH"])
    assert answer["scanId"].startswith("sc-") and "succeeded" not in answer
    seen = polls(api, answer["requestId"], 5)
    assert [s["status"] for s in seen] == ["BUILDING", "SCANNING", "SCANNING", "DONE", "DONE"]
    assert "succeeded" not in seen[1] and "duration" not in seen[1]
    assert (seen[3]["succeeded"], seen[3]["vulnerabilities"]) == (True, {"HIGH": 2})
    assert seen[3]["detailsUri"].endswith(f"/view/scans/{answer['scanId']}")


def test_required_scan_fails_on_a_severity_outside_the_levels(sim, api):
    sim.set_course(after=0, scan_polls=1, vulnerabilities={"CRITICAL": 1, "LOW": 3})
    answer = build(api, scanMode="required", scanLevels=["LOW"])
    seen = polls(api, answer["requestId"], 2)
    assert [s["status"] for s in seen] == ["SCANNING", "DONE"]
    assert seen[1]["succeeded"] is False
    assert seen[1]["reason"] == ("Container security scan operation found one or more vulnerabilities with "
                                 "severity: CRITICAL")


def test_async_scan_never_holds_the_status_and_a_failed_build_is_not_scanned(sim, api):
    sim.set_course(after=0, scan_polls=3)
    answer = build(api, scanMode="async")
    assert answer["scanId"] and [s["status"] for s in polls(api, answer["requestId"], 1)] == ["DONE"]
    sim.set_course(outcome="fail", after=0, scan_polls=3)
    failed = build(api, scanMode="required", packages=PACKAGES | {"entries": ["samtools"]})
    assert [(s["status"], s["succeeded"]) for s in polls(api, failed["requestId"], 1)] == [("DONE", False)]


def test_scan_by_default_leaves_succeeded_out_of_every_build_answer(sim, api):
    sim.configure(scan_by_default=True)
    answer = build(api)
    assert answer["scanId"] and "succeeded" not in answer


# -- not found, faults, records
def test_unknown_ids_and_a_log_still_being_built_answer_404(sim, api):
    for path in ("/v1alpha2/container/0123456789ab", "/v1alpha2/container/0123456789ab/status",
                 "/v1alpha1/builds/bd-0000000000000000_1", "/v1alpha1/builds/bd-0000000000000000_1/status",
                 "/v1alpha1/builds/bd-0000000000000000_1/logs"):
        resp = api.get(path)
        assert resp.status_code == 404 and "message" in resp.json(), path
    sim.set_course(after=2)
    answer = build(api)
    assert api.get(f"/v1alpha1/builds/{answer['buildId']}/logs").status_code == 404
    assert api.get(f"/v1alpha1/builds/{answer['buildId']}").json().get("exitStatus") is None


def test_injected_faults_hit_only_their_routes_and_count(sim, api):
    sim.set_course(after=0)
    answer = build(api)
    sim.fault(503, count=2, routes=["status"])
    assert api.get("/service-info").status_code == 200
    codes = [api.get(f"/v1alpha2/container/{answer['requestId']}/status").status_code for _ in range(3)]
    assert codes == [503, 503, 200]
    assert sim.calls()["status"] == 3
    assert [c["status"] for c in sim.call_log() if c["route"] == "status"] == [503, 503, 200]


def test_call_log_requests_and_records_hold_no_token(sim, api):
    answer = build(api, towerAccessToken=TOKEN, towerRefreshToken=TOKEN + "-refresh")
    polls(api, answer["requestId"], 3)
    api.get(f"/v1alpha2/container/{answer['requestId']}", headers={"Authorization": f"Bearer {TOKEN}"})
    api.get(f"/v1alpha1/builds/{answer['buildId']}")
    digest = hashlib.sha256(TOKEN.encode()).hexdigest()
    log, received = sim.call_log(), sim.requests()
    assert log[0]["route"] == "submit" and log[0]["tower_token"] == {"sha256": digest}
    assert received[0]["body"]["towerAccessToken"] == f"sha256:{digest}"
    for record in (log, received, sim.builds(), api.get(f"/v1alpha2/container/{answer['requestId']}").json()):
        assert TOKEN not in json.dumps(record)
    assert TOKEN not in (sim.workdir / "wave.log").read_text()


def test_service_info_and_airflow_env_point_at_the_simulator(wave):
    assert httpx.get(f"{wave.url}/service-info", timeout=5).json()["serviceInfo"]["version"]
    conn = json.loads(wave.airflow_env()["AIRFLOW_CONN_WAVE_DEFAULT"])
    assert conn == {"conn_type": "wave", "host": "127.0.0.1", "port": wave.port, "schema": "http", "password": TOKEN}
    assert "password" not in WaveSimulator(port=1).connection()
