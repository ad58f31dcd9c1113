"""Chaos mode (``include/simulators/chaos.py``) on each simulator, over real HTTP.

Every test runs against the Seqera, Cromwell and Wave simulators (one subprocess each, started
by its :class:`~hatchway_dev.endpoints.Service`), with real clients: ``httpx`` and, for the
kinds that drop the connection, ``requests`` too. A :class:`Target` knows, per simulator, one
call that does work (a launch, a submit, a container request), one read, and how to list the
work done, so each test states the behaviour once.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
import requests

from hatchway_dev.endpoints import CromwellSimulator, SeqeraSimulator, Service, WaveSimulator

WS = 1001
WDL = """version 1.0
workflow chaos {
  input { String name }
  output { String greeting = "hello ~{name}" }
}
"""


@dataclass
class Target:
    """One simulator and what the tests do with it.

    :param work: ``(method, path, kwargs)`` of a call that creates something (accepted kwargs
        are the same for ``httpx`` and ``requests``); ``n`` makes each call unique.
    :param done: ids of the things created so far (read through the control routes).
    :param read: ``(method, path, kwargs)`` of a call that changes nothing; ``read_route`` its route key.
    :param fetch: ``(method, path, kwargs)`` of an API read of one created thing, by id.
    :param readiness: the path the simulator's ``Service`` polls until it is up.
    """

    name: str
    sim: Any
    headers: dict[str, str]
    work: Callable[[int], tuple[str, str, dict[str, Any]]]
    work_status: int
    done: Callable[[], list[str]]
    read: tuple[str, str, dict[str, Any]]
    read_route: str
    fetch: Callable[[str], tuple[str, str, dict[str, Any]]]
    readiness: str

    def url(self, path: str) -> str:
        return f"{self.sim.url}{path}"

    def call(self, client: httpx.Client, spec: tuple[str, str, dict[str, Any]]) -> httpx.Response:
        method, path, kwargs = spec
        return client.request(method, path, **kwargs)

    def call_with_requests(self, spec: tuple[str, str, dict[str, Any]]) -> requests.Response:
        method, path, kwargs = spec
        return requests.request(method, self.url(path), headers=self.headers, timeout=10, **kwargs)


def _seqera(sim: SeqeraSimulator) -> Target:
    return Target(
        name="seqera", sim=sim, headers={"Authorization": f"Bearer {sim.token}"},
        work=lambda n: ("POST", "/workflow/launch", {"params": {"workspaceId": WS}, "json": {"launch": {
            "computeEnvId": "ce-sim", "pipeline": "https://github.com/gdp-public/pgsc_calc", "runName": f"chaos-{n}"}}}),
        work_status=200,
        done=lambda: [run["id"] for run in sim.runs()],
        read=("GET", "/workflow", {"params": {"workspaceId": WS}}), read_route="GET /workflow",
        fetch=lambda run_id: ("GET", f"/workflow/{run_id}", {"params": {"workspaceId": WS}}),
        readiness="/service-info")


def _cromwell(sim: CromwellSimulator) -> Target:
    return Target(
        name="cromwell", sim=sim, headers={},
        work=lambda n: ("POST", "/api/workflows/v1", {"files": {
            "workflowSource": ("chaos.wdl", WDL, "text/plain"),
            "workflowInputs": ("inputs.json", json.dumps({"chaos.name": f"n{n}"}), "application/json")}}),
        work_status=201,
        done=lambda: [wf["id"] for wf in sim.workflows()],
        read=("GET", "/api/workflows/v1/backends", {}), read_route="GET /api/workflows/{version}/backends",
        fetch=lambda wf_id: ("GET", f"/api/workflows/v1/{wf_id}/status", {}),
        readiness="/engine/v1/version")


def _wave(sim: WaveSimulator) -> Target:
    return Target(
        name="wave", sim=sim, headers={},
        work=lambda n: ("POST", "/v1alpha2/container", {"json": {"packages": {
            "type": "CONDA", "entries": [f"salmon=1.10.{n}"], "channels": ["conda-forge", "bioconda"]}}}),
        work_status=200,
        done=lambda: [r["requestId"] for r in sim.requests() if r["requestId"]],
        read=("GET", "/v1alpha1/builds/bd-0000000000000000_1/status", {}),
        read_route="GET /v1alpha1/builds/{build_id}/status",
        fetch=lambda request_id: ("GET", f"/v1alpha2/container/{request_id}", {}),
        readiness="/service-info")


SIMULATORS: dict[str, tuple[Callable[[], Service], Callable[[Any], Target]]] = {
    "seqera": (lambda: SeqeraSimulator(workspace_id=WS), _seqera),
    "cromwell": (CromwellSimulator, _cromwell),
    "wave": (WaveSimulator, _wave),
}


@pytest.fixture(scope="module", params=list(SIMULATORS))
def started(request, tmp_path_factory) -> Iterator[Target]:
    make, target = SIMULATORS[request.param]
    simulator = make()
    simulator.start(tmp_path_factory.mktemp(request.param))
    yield target(simulator)
    simulator.stop()


@pytest.fixture
def target(started: Target) -> Target:
    started.sim.reset()
    return started


@pytest.fixture
def api(target: Target) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=target.sim.url, headers=target.headers, timeout=10) as client:
        yield client


# -- each kind at rate 1.0
def test_5xx_answers_an_error_and_does_no_work(target, api):
    target.sim.chaos(rate_5xx=1.0, seed=3)
    answers = [target.call(api, target.work(n)) for n in range(6)]
    assert {r.status_code for r in answers} <= {500, 502, 503}
    assert len({r.status_code for r in answers}) > 1  # the status is drawn too
    for resp in answers:
        assert resp.headers["content-type"] == "application/json"
        assert "Simulated chaos" in resp.json()["message"]
        if target.name == "cromwell":
            assert resp.json()["status"] == "error"  # Cromwell's envelope
    assert target.done() == []
    assert target.sim.chaos_stats()["counts"]["5xx"] == 6


def test_429_carries_retry_after_and_does_no_work(target, api):
    target.sim.chaos(rate_429=1.0, retry_after_seconds=7)
    resp = target.call(api, target.work(0))
    assert resp.status_code == 429
    assert resp.headers["Retry-After"] == "7"
    assert "message" in resp.json()
    assert target.done() == []


def test_reset_is_a_connection_error_and_does_no_work(target, api):
    target.sim.chaos(rate_reset=1.0)
    with pytest.raises(httpx.ReadError, match="reset"):
        target.call(api, target.work(0))
    with pytest.raises(requests.ConnectionError, match="reset"):
        target.call_with_requests(target.work(1))
    assert target.done() == []
    assert target.sim.chaos_stats()["counts"]["reset"] == 2


def test_lost_is_a_connection_error_after_the_work_was_done(target, api):
    target.sim.chaos(rate_lost=1.0)
    with pytest.raises(httpx.RemoteProtocolError, match="without sending a response"):
        target.call(api, target.work(0))
    with pytest.raises(requests.ConnectionError, match="without response"):
        target.call_with_requests(target.work(1))
    created = target.done()
    assert len(created) == 2
    target.sim.calm()
    for item in created:
        assert target.call(api, target.fetch(item)).status_code == 200


def test_malformed_is_200_with_a_body_json_refuses_and_the_work_done(target, api):
    target.sim.chaos(rate_malformed=1.0)
    for spec in (target.work(0), target.read):
        resp = target.call(api, spec)
        assert resp.status_code == 200
        assert resp.headers["content-type"] == "application/json"
        with pytest.raises(ValueError):
            json.loads(resp.content)
    assert len(target.done()) == 1


def test_slow_answers_normally_after_slow_seconds(target, api):
    target.sim.chaos(rate_slow=1.0, slow_seconds=0.3)
    t0 = time.monotonic()
    resp = target.call(api, target.work(0))
    assert time.monotonic() - t0 >= 0.3
    assert resp.status_code == target.work_status
    assert len(target.done()) == 1


# -- what chaos never touches
def test_control_readiness_and_unknown_routes_are_never_touched(target, api):
    target.sim.chaos(rate_5xx=0.5, rate_reset=0.5)  # every API call goes wrong
    for _ in range(10):
        assert api.get(target.readiness).status_code == 200
        assert target.sim._ready()
        target.sim.chaos_stats()
        target.done()
        assert api.get("/no/such/route").status_code == 404
    assert target.sim.chaos_stats()["counts"]["requests"] == 0
    try:
        assert target.call(api, target.read).status_code >= 500
    except httpx.TransportError:
        pass
    assert target.sim.chaos_stats()["counts"]["requests"] == 1


def test_routes_limit_chaos_and_the_counters_name_routes(target, api):
    target.sim.chaos(rate_5xx=1.0, routes=["GET /"])
    assert target.call(api, target.work(0)).status_code == target.work_status
    assert target.call(api, target.read).status_code >= 500
    stats = target.sim.chaos_stats()
    assert stats["config"]["routes"] == ["GET /"]
    assert {route: (c["requests"], c["5xx"]) for route, c in stats["by_route"].items()} == {
        target.read_route: (1, 1)}


# -- rates below 1
def _outcome(resp_or_error: httpx.Response | Exception) -> str:
    if isinstance(resp_or_error, Exception):
        return "reset"
    if resp_or_error.status_code in (500, 502, 503):
        return "5xx"
    if resp_or_error.status_code == 429:
        return "429"
    try:
        json.loads(resp_or_error.content)
    except ValueError:
        return "malformed"
    return "passed"


def _mixed_run(target: Target, api: httpx.Client, calls: int) -> list[str]:
    seen = []
    for _ in range(calls):
        try:
            seen.append(_outcome(target.call(api, target.read)))
        except httpx.TransportError as exc:
            seen.append(_outcome(exc))
    return seen


def test_seeded_rates_over_200_calls_land_in_a_sane_band_and_repeat(target, api):
    config = {"rate_5xx": 0.2, "rate_429": 0.2, "rate_reset": 0.2, "rate_malformed": 0.2, "seed": 20261205}
    target.sim.chaos(**config)
    first = _mixed_run(target, api, 200)
    stats = target.sim.chaos_stats()
    seen = Counter(first)
    counts = stats["counts"]
    assert counts["requests"] == 200
    assert {kind: counts[kind] for kind in seen} == dict(seen)  # what the client saw is what was counted
    for kind in ("5xx", "429", "reset", "malformed", "passed"):
        assert 20 <= counts[kind] <= 60, (kind, counts)  # 40 expected; 3.5 standard deviations either side
    assert stats["config"]["seed"] == config["seed"]
    target.sim.chaos(**config)  # the same seed: the same calls go wrong, the same way
    assert _mixed_run(target, api, 200) == first


# -- configuration
@pytest.mark.parametrize("config, reason", [
    ({"rate_5xx": 1.5}, "rate_5xx must be a probability between 0 and 1"),
    ({"rate_lost": -0.1}, "rate_lost must be a probability between 0 and 1"),
    ({"rate_5xx": 0.6, "rate_reset": 0.6}, "the rates sum to 1.2, more than 1"),
    ({"rate_slow": "often"}, "rate_slow must be a number"),
    ({"rate_429": True}, "rate_429 must be a number"),
    ({"slow_seconds": -1}, "slow_seconds must be between 0 and"),
    ({"retry_after_seconds": 1.5}, "retry_after_seconds must be an integer"),
    ({"seed": "x"}, "seed must be an integer or null"),
    ({"enabled": "yes"}, "enabled must be true or false"),
    ({"routes": "/workflow"}, "routes must be a list"),
    ({"routes": ["FETCH /x"]}, "'FETCH' is not an HTTP method"),
    ({"routes": ["workflow"]}, "the path must start with '/'"),
    ({"rate_5xxx": 0.1}, "unknown chaos settings ['rate_5xxx']"),
])
def test_bad_config_is_400_with_the_reason_and_changes_nothing(target, config, reason):
    with pytest.raises(requests.HTTPError, match="400") as raised:
        target.sim.chaos(**config)
    assert reason in raised.value.response.text
    assert target.sim.chaos_stats()["config"]["enabled"] is False


def test_a_body_that_is_not_a_json_object_is_400(target):
    for body in (b"{not json", b"[0.5]"):
        resp = httpx.post(target.url("/_sim/chaos"), content=body, timeout=10)
        assert resp.status_code == 400, body


def test_calm_stops_chaos_and_keeps_the_counters_reset_zeroes_them(target, api):
    target.sim.chaos(rate_5xx=1.0)
    assert target.call(api, target.read).status_code >= 500
    stats = target.sim.calm()
    assert stats["config"]["enabled"] is False and stats["counts"]["5xx"] == 1
    assert target.call(api, target.read).status_code < 500
    assert target.sim.chaos_stats()["counts"]["requests"] == 1  # calm: nothing drawn, nothing counted

    target.sim.chaos(rate_5xx=1.0)
    target.sim.reset()
    stats = target.sim.chaos_stats()
    assert stats["config"]["enabled"] is False
    assert set(stats["counts"].values()) == {0} and stats["by_route"] == {}
    assert target.call(api, target.work(0)).status_code == target.work_status


def test_one_shot_faults_still_fire_beside_chaos(target, api):
    target.sim.chaos(rate_slow=1.0, slow_seconds=0)
    route = {"seqera": {"route": "POST /workflow/launch"}, "cromwell": {"routes": ["submit"]},
             "wave": {"routes": ["submit"]}}[target.name]
    target.sim.fault(503, count=1, **route)
    assert target.call(api, target.work(0)).status_code == 503
    assert target.call(api, target.work(1)).status_code == target.work_status
    assert target.sim.chaos_stats()["counts"]["slow"] == 2
