"""Wave's contract (``tests/contracts/wave-api-7b8b9f6d.yaml``) as checks on bodies.

The copy is OpenAPI 3.1, whose schemas are JSON Schema 2020-12: bodies are checked with
``jsonschema``'s :class:`~jsonschema.Draft202012Validator` against the schema the copy declares
for the route and status, its ``$ref`` resolved inside the copy (as the Cromwell simulator's
test does with its Swagger 2.0 copy).

- :func:`check_request`: a ``POST /v1alpha2/container`` body. Stricter than the copy on one
  point: an attribute the request schema does not declare is refused, at the top level and in
  ``packages``. Wave ignores unknown attributes, so a misspelt one (``workspaceId`` for
  ``towerWorkspaceId``) would be silently lost.
- :func:`check_response`: an answer of a route by name (:data:`ROUTES`); a status the route does
  not declare must be an error with Wave's ``{"message": ...}`` body.

Both raise :class:`AssertionError` listing every violation with where it is.
"""

from __future__ import annotations

import copy
import functools
import re
from pathlib import Path
from typing import Any

import yaml
from jsonschema import Draft202012Validator

SPEC = Path(__file__).resolve().parents[1] / "contracts" / "wave-api-7b8b9f6d.yaml"
# route name -> (method, path template)
ROUTES = {
    "submit": ("post", "/v1alpha2/container"),
    "container": ("get", "/v1alpha2/container/{requestId}"),
    "status": ("get", "/v1alpha2/container/{requestId}/status"),
    "build": ("get", "/v1alpha1/builds/{buildId}"),
    "build_status": ("get", "/v1alpha1/builds/{buildId}/status"),
    "logs": ("get", "/v1alpha1/builds/{buildId}/logs"),
    "service_info": ("get", "/service-info"),
}
_STRICT = ("ContainerRequest", "PackagesSpec")


@functools.lru_cache(maxsize=1)
def load_spec() -> dict[str, Any]:
    """The contract copy (parsed once; callers must not change it)."""
    with open(SPEC) as fh:
        return yaml.load(fh, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))


def route_for(method: str, path: str) -> str:
    """The route name of a request, e.g. ``route_for("GET", "/v1alpha1/builds/bd-x_1/logs") == "logs"``."""
    for name, (verb, template) in ROUTES.items():
        pattern = "^" + re.sub(r"\{[^}]+\}", "[^/]+", template) + "$"
        if verb == method.lower() and re.match(pattern, path):
            return name
    raise AssertionError(f"{method} {path} is not a route of the Wave contract")


def _validator(schema: dict[str, Any], strict: bool = False) -> Draft202012Validator:
    components = load_spec()["components"]
    if strict:
        components = copy.deepcopy(components)
        for name in _STRICT:
            components["schemas"][name]["additionalProperties"] = False
    return Draft202012Validator({"allOf": [schema], "components": components})


def _violations(validator: Draft202012Validator, body: Any) -> list[str]:
    found = sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
    return [f"  at {'/'.join(str(p) for p in e.absolute_path) or '(root)'}: {e.message}" for e in found]


def check_request(body: dict) -> None:
    """Raise :class:`AssertionError` unless ``body`` is a ``POST /v1alpha2/container`` request
    the contract accepts (with no undeclared attribute)."""
    schema = {"$ref": "#/components/schemas/ContainerRequest"}
    problems = _violations(_validator(schema, strict=True), body)
    if problems:
        raise AssertionError("POST /v1alpha2/container request breaks the Wave contract:\n" + "\n".join(problems))


def check_response(route: str, status: int, body: Any) -> None:
    """Raise :class:`AssertionError` unless ``body`` is what the contract declares for ``route``
    (a name of :data:`ROUTES`) answering ``status``.

    :param body: the parsed JSON, or the text of a ``text/plain`` answer (``logs``).
    """
    if route not in ROUTES:
        raise AssertionError(f"unknown Wave route {route!r}; one of {', '.join(ROUTES)}")
    method, path = ROUTES[route]
    declared = load_spec()["paths"][path][method]["responses"].get(str(status))
    where = f"{method.upper()} {path} answering {status}"
    if declared is None:
        if status < 400:
            raise AssertionError(f"{where}: the contract declares no such success")
        schema = {"$ref": "#/components/schemas/ErrorResponse"}  # undeclared errors carry Wave's body
    else:
        content = declared.get("content") or {}
        if not content:
            return
        media = "application/json" if "application/json" in content else next(iter(content))
        schema = content[media]["schema"]
    problems = _violations(_validator(schema), body)
    if problems:
        raise AssertionError(f"{where} breaks the Wave contract:\n" + "\n".join(problems))


# -- the Wave lifecycle's test bed (fixtures imported by the modules that use them) -----------------
import json  # noqa: E402

import pytest  # noqa: E402

NOTIFY_TO = "alice@lab.example.org"


@pytest.fixture(scope="module")
def wave_simulator(tmp_path_factory):
    from hatchway_dev.endpoints import WaveSimulator

    simulator = WaveSimulator()
    simulator.start(tmp_path_factory.mktemp("wave"))
    yield simulator
    simulator.stop()


@pytest.fixture
def wave(wave_simulator, monkeypatch, airflow_db):
    """A reset simulator, the connection ``wave_default`` and fast container settings."""
    wave_simulator.reset()
    for key, value in wave_simulator.airflow_env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("AIRFLOW_VAR_HATCHWAY_CONTAINER_CONFIG", json.dumps(
        {"poll_interval_seconds": 0.2, "timeout_seconds": 30, "log_tail_lines": 5}))
    return wave_simulator


def notify_by_mail(monkeypatch, aws, when: str = "always", to: str = NOTIFY_TO) -> None:
    """Mail every notice through SES on the test's moto (its sender verified) to ``to``."""
    from support.notify import SENDER

    aws.client("ses").verify_email_identity(EmailAddress=SENDER)
    monkeypatch.setenv("AIRFLOW_VAR_HATCHWAY_NOTIFY_CONFIG", json.dumps(
        {"email": {"backend": "ses", "sender": SENDER}, "default": {"when": when, "email": [to]}}))


def submitted(simulator) -> list[dict]:
    """The ``POST /v1alpha2/container`` bodies the simulator took, each checked against the contract."""
    received = simulator.requests()
    for entry in received:
        check_request(entry["body"])
    return received
