"""Local endpoints the DAGs talk to, run as supervised subprocesses on loopback ports.

A :class:`Service` starts, waits until ready, stops, and says which environment Airflow
needs to reach it (``AIRFLOW_CONN_*``). :class:`DevStack` runs several as one unit, so a GCS
emulator, a Kafka mock cluster or a Seqera simulator is one more ``Service`` subclass.

    with DevStack([MotoServer()], workdir) as stack:
        env = stack.airflow_env()
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import requests

from hatchway_dev.process import ManagedProcess, StackError, free_port, wait_until

VENV_BIN = Path(sys.executable).parent
REPO = Path(__file__).resolve().parents[1]


class Service:
    """A local server with a lifecycle. Subclasses set ``name`` and implement ``_argv``/``_ready``.

    :param port: port to listen on (default: a free one).
    :param env: extra environment for the server process.
    :param start_timeout: seconds to wait for readiness.
    """

    name = "service"

    def __init__(self, port: int | None = None, env: dict[str, str] | None = None, start_timeout: float = 60) -> None:
        self.port = port or free_port()
        self.extra_env = dict(env or {})
        self.start_timeout = start_timeout
        self.process: ManagedProcess | None = None
        self.workdir: Path | None = None
        self.started_in: float | None = None

    # -- for subclasses
    def _argv(self) -> list[str]:
        raise NotImplementedError

    def _ready(self) -> bool:
        raise NotImplementedError

    def _after_start(self) -> None:
        """Configure the running server (called once it is ready)."""

    def _process_kwargs(self) -> dict:
        return {}

    def airflow_env(self) -> dict[str, str]:
        """:return: environment variables that point Airflow at this service."""
        return {}

    # -- lifecycle
    def start(self, workdir: Path) -> Service:
        """Start the server and wait until it is ready.

        :param workdir: folder for the log file and any data of this service.
        :raises StackError: when it exits or is not ready in time (with the log tail).
        """
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        t0 = time.monotonic()
        self.process = ManagedProcess(
            self.name,
            self._argv(),
            self.workdir / f"{self.name}.log",
            env={**os.environ, **self.extra_env},
            **self._process_kwargs(),
        ).start()
        try:
            wait_until(self._ready, timeout=self.start_timeout, what=f"{self.name} on port {self.port}",
                       procs=[self.process], interval=0.2)
            self._after_start()
        except BaseException:
            self.stop()
            raise
        self.started_in = time.monotonic() - t0
        return self

    def check(self) -> None:
        """Raise :class:`StackError` if the server has died."""
        if self.process:
            self.process.check()

    def stop(self) -> None:
        if self.process:
            self.process.stop()

    @contextmanager
    def running(self, workdir: Path) -> Iterator[Service]:
        """Context manager: ``with MotoServer().running(tmp) as moto: ...``."""
        self.start(workdir)
        try:
            yield self
        finally:
            self.stop()


class MotoServer(Service):
    """moto in server mode: AWS APIs on ``http://127.0.0.1:<port>``.

    :param region: region written into the Airflow connection.
    :param kwargs: see :class:`Service`; ``env`` may carry ``MOTO_ENABLE_RECORDING`` etc.
    """

    name = "moto"
    # AWS has its managed policies (service-role/AWSBatchServiceRole, ...); moto only
    # when asked, and attaching one it lacks fails with NoSuchEntity.
    DEFAULT_ENV = {"MOTO_IAM_LOAD_MANAGED_POLICIES": "true"}

    def __init__(self, region: str = "us-east-1", **kwargs) -> None:
        super().__init__(**kwargs)
        self.extra_env = {**self.DEFAULT_ENV, **self.extra_env}
        self.region = region

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _argv(self) -> list[str]:
        return [str(VENV_BIN / "moto_server"), "-H", "127.0.0.1", "-p", str(self.port)]

    def _ready(self) -> bool:
        return requests.get(f"{self.url}/moto-api/", timeout=2).status_code == 200

    def _after_start(self) -> None:
        # Batch jobs otherwise try to run Docker, which this machine does not have, and FAIL.
        resp = requests.post(f"{self.url}/moto-api/config", json={"batch": {"use_docker": False}}, timeout=5)
        resp.raise_for_status()

    def airflow_env(self) -> dict[str, str]:
        conn = {
            "conn_type": "aws",
            "login": "testing",
            "password": "testing",
            "extra": {"endpoint_url": self.url, "region_name": self.region},
        }
        return {"AIRFLOW_CONN_AWS_DEFAULT": json.dumps(conn)}



class GcsEmulator(Service):
    """gcp-storage-emulator: the GCS JSON API on ``http://127.0.0.1:<port>``, in memory.

    :param project: project id written into the Airflow connection.
    """

    name = "gcs"

    def __init__(self, project: str = "hatchway-dev", **kwargs) -> None:
        super().__init__(**kwargs)
        self.project = project

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _argv(self) -> list[str]:
        return [str(VENV_BIN / "gcp-storage-emulator"), "start", "--host", "127.0.0.1",
                "--port", str(self.port), "--in-memory"]

    def _ready(self) -> bool:
        return requests.get(f"{self.url}/storage/v1/b?project={self.project}", timeout=2).status_code == 200

    def airflow_env(self) -> dict[str, str]:
        # The google provider's GCSHook needs an anonymous connection with a project (docs/airflow-behaviour.md).
        conn = {"conn_type": "google_cloud_platform", "extra": {"is_anonymous": True, "project": self.project}}
        return {"AIRFLOW_CONN_GOOGLE_CLOUD_DEFAULT": json.dumps(conn), "STORAGE_EMULATOR_HOST": self.url}


class KafkaMockCluster(Service):
    """librdkafka's mock cluster as the Kafka broker (``hatchway_dev.kafka_mock``).

    The broker picks its own port; :attr:`bootstrap` is read from the process's output.
    """

    name = "kafka"

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.bootstrap: str | None = None
        self.extra_env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)

    def _argv(self) -> list[str]:
        return [sys.executable, "-m", "hatchway_dev.kafka_mock"]

    def start(self, workdir: Path) -> Service:
        # Logs are appended across starts: an old BOOTSTRAP line would name a dead broker.
        (Path(workdir) / f"{self.name}.log").unlink(missing_ok=True)
        return super().start(workdir)

    def _ready(self) -> bool:
        log = self.workdir / f"{self.name}.log"
        for line in log.read_text(errors="replace").splitlines() if log.exists() else []:
            if line.startswith("BOOTSTRAP="):
                self.bootstrap = line.split("=", 1)[1].strip()
                self.port = int(self.bootstrap.rsplit(":", 1)[1])
                return True
        return False

    def airflow_env(self) -> dict[str, str]:
        extra = {"bootstrap.servers": self.bootstrap, "group.id": "hatchway-intake",
                 "enable.auto.commit": False, "auto.offset.reset": "earliest",
                 "session.timeout.ms": 6000, "heartbeat.interval.ms": 1000}
        return {"AIRFLOW_CONN_KAFKA_DEFAULT": json.dumps({"conn_type": "kafka", "extra": extra})}


class DevStack:
    """Several services started in order and stopped in reverse, as one context manager.

    :param services: the services, started in this order.
    :param workdir: parent folder; each service gets ``workdir/<name>``.
    """

    def __init__(self, services: list[Service], workdir: Path) -> None:
        self.services = list(services)
        self.workdir = Path(workdir)
        self._started: list[Service] = []

    def __getitem__(self, name: str) -> Service:
        for service in self.services:
            if service.name == name:
                return service
        raise KeyError(name)

    def start(self) -> DevStack:
        try:
            for service in self.services:
                service.start(self.workdir / service.name)
                self._started.append(service)
        except BaseException:
            self.stop()
            raise
        return self

    def check(self) -> None:
        """Raise :class:`StackError` if any service has died."""
        for service in self._started:
            service.check()

    def stop(self) -> None:
        errors = []
        while self._started:
            service = self._started.pop()
            try:
                service.stop()
            except Exception as exc:  # noqa: BLE001 - stop the others regardless
                errors.append(f"{service.name}: {exc}")
        if errors:
            raise StackError("stopping the dev stack failed: " + "; ".join(errors))

    def airflow_env(self) -> dict[str, str]:
        """:return: the merged ``AIRFLOW_CONN_*`` environment of all services."""
        env: dict[str, str] = {}
        for service in self.services:
            env.update(service.airflow_env())
        return env

    def __enter__(self) -> DevStack:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


class SimulatorControls:
    """The ``/_sim/`` control routes every simulator has: the request helper and chaos mode
    (:mod:`include.simulators.chaos`). Mixed into a :class:`Service` with a ``url``."""

    url: str

    def _sim(self, method: str, path: str, **kwargs):
        resp = requests.request(method, f"{self.url}/_sim/{path}", timeout=30, **kwargs)
        if resp.status_code >= 400:
            raise requests.HTTPError(f"{method} /_sim/{path} answered {resp.status_code}: {resp.text}",
                                     response=resp)
        return resp.json()

    def chaos(self, **config) -> dict:
        """Turn chaos mode on: API calls go wrong at random, at the given rates (0..1, summing
        to 1 at most): ``rate_5xx``, ``rate_429`` (``Retry-After: retry_after_seconds``),
        ``rate_slow`` (``slow_seconds`` late), ``rate_reset`` (connection reset, no work done),
        ``rate_malformed`` (200 with broken JSON, work done), ``rate_lost`` (connection closed
        after the work was done); ``seed`` repeats a run, ``routes`` limits it (``"/prefix"``,
        ``"METHOD /prefix"``). Replaces the previous config and zeroes the counters.

        :return: :meth:`chaos_stats`.
        :raises requests.HTTPError: a bad value (400, the reason in the message).
        """
        return self._sim("POST", "chaos", json=config)

    def chaos_stats(self) -> dict:
        """``{"config", "counts", "by_route"}``: counts of ``requests``, ``passed`` and each
        kind, in total and per route (``"GET /workflow/{workflowId}"``)."""
        return self._sim("GET", "chaos")

    def calm(self) -> dict:
        """Turn chaos mode off (the counters stay readable until the next :meth:`chaos` or reset).

        :return: :meth:`chaos_stats`.
        """
        return self._sim("DELETE", "chaos")


class SeqeraSimulator(SimulatorControls, Service):
    """The Seqera Platform simulator (``include/simulators/seqera``) on ``http://127.0.0.1:<port>``.

    Started as ``python -m include.simulators.seqera --port <port>`` with the repository root
    on ``PYTHONPATH``; the token travels in ``$SEQERA_SIM_TOKEN``, not on the command line.
    The helpers call its ``/_sim/`` control routes.

    :param token: the Bearer token it accepts (default: a random one).
    :param workspace_id: workspace written into the Airflow connection.
    :param compute_env_id: compute environment written into the Airflow connection.
    :param forbidden_workspaces: workspaces the token may not see (403).
    :param conn_extra: more connection extra (``timeout``, ``max_attempts``, ``backoff_base``...).
    """

    name = "seqera"

    def __init__(self, token: str | None = None, workspace_id: int = 1001, compute_env_id: str = "ce-sim",
                 forbidden_workspaces: tuple[int, ...] = (), conn_extra: dict | None = None, **kwargs) -> None:
        import secrets

        super().__init__(**kwargs)
        self.token = token or secrets.token_urlsafe(24)
        self.workspace_id = workspace_id
        self.compute_env_id = compute_env_id
        self.forbidden_workspaces = tuple(forbidden_workspaces)
        self.conn_extra = dict(conn_extra or {})
        plugins = str(REPO / "plugins")
        self.extra_env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), plugins, os.environ.get("PYTHONPATH")) if p)
        self.extra_env["SEQERA_SIM_TOKEN"] = self.token

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _argv(self) -> list[str]:
        argv = [sys.executable, "-m", "include.simulators.seqera", "--host", "127.0.0.1", "--port", str(self.port),
                "--exit-with-parent"]
        for workspace in self.forbidden_workspaces:
            argv += ["--forbid-workspace", str(workspace)]
        return argv

    def _process_kwargs(self) -> dict:
        return {"cwd": REPO}

    def _ready(self) -> bool:
        return requests.get(f"{self.url}/service-info", timeout=2).status_code == 200

    def connection(self, token: str | None = None, **extra) -> dict:
        """The Airflow connection as a dict (``token`` / ``extra`` override, e.g. for a wrong-token test)."""
        return {"conn_type": "seqera", "host": self.url, "password": token or self.token,
                "extra": {"workspace_id": self.workspace_id, "compute_env_id": self.compute_env_id,
                          **self.conn_extra, **extra}}

    def airflow_env(self) -> dict[str, str]:
        return {"AIRFLOW_CONN_SEQERA_DEFAULT": json.dumps(self.connection())}

    # -- control routes
    def set_course(self, run_name: str, kind: str = "succeed", after: int = 2, **fields) -> dict:
        """Script a run by name, before or after launch: ``succeed``/``fail``/``cancel``/``unknown``
        after ``after`` polls, or ``running`` / ``not_started`` forever (``exit_status``,
        ``error_report``, ``submitted_polls`` optional)."""
        return self._sim("POST", "courses", json={"run_name": run_name, "kind": kind, "after": after, **fields})

    def create_runs(self, runs: list[dict]) -> dict[str, str]:
        """Add runs as if Nextflow had reported them (a Helm-launched head job): name -> workflow id."""
        return self._sim("POST", "runs", json={"runs": runs})["ids"]

    def runs(self) -> list[dict]:
        return self._sim("GET", "runs")["runs"]

    def output_errors(self) -> list[str]:
        """Outputs a succeeding run could not publish (see ``outputs_endpoint_url``)."""
        return self._sim("GET", "runs")["output_errors"]

    def fault(self, status: int | str, count: int = 1, route: str | None = None, **fields) -> dict:
        """Make the next ``count`` API calls (of ``route``, e.g. ``"GET /workflow"``) answer
        ``status``, or ``"hang"`` for ``seconds`` first."""
        return self._sim("POST", "faults", json={"status": status, "count": count, "route": route, **fields})

    def calls(self, since: float = 0.0) -> dict:
        """Counters per route and per workspace, and the timed log ``[t, route, workspace, status]``."""
        return self._sim("GET", "calls", params={"since": since})

    def requests(self) -> list[dict]:
        """Requests received (Authorization redacted), for spec validation."""
        return self._sim("GET", "requests")["requests"]

    def configure(self, **config) -> dict:
        return self._sim("POST", "config", json=config)

    def reset(self) -> None:
        """Forget runs, courses, faults and records; chaos mode off, its counters zeroed."""
        self._sim("POST", "reset")


class CromwellSimulator(SimulatorControls, Service):
    """The Cromwell simulator (``include/simulators/cromwell``) on ``http://127.0.0.1:<port>``.

    Started as ``python -m include.simulators.cromwell --port <port>`` with the repository
    root on ``PYTHONPATH``. Cromwell has no authentication, so neither does the simulator; the
    helpers call its ``/_sim/`` control routes.

    :param root: ``s3://bucket/prefix`` where finishing workflows write their files
        (``None``: paths are reported, nothing is written).
    :param s3_endpoint: S3 endpoint for ``root`` (e.g. :attr:`MotoServer.url`); credentials
        come from the environment.
    """

    name = "cromwell"

    def __init__(self, root: str | None = None, s3_endpoint: str | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.root = root
        self.s3_endpoint = s3_endpoint
        self.extra_env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def api_url(self) -> str:
        """Base of the workflow routes, ``<url>/api/workflows/v1``."""
        return f"{self.url}/api/workflows/v1"

    def _argv(self) -> list[str]:
        argv = [sys.executable, "-m", "include.simulators.cromwell", "--host", "127.0.0.1", "--port", str(self.port),
                "--exit-with-parent"]
        if self.root:
            argv += ["--root", self.root]
        if self.s3_endpoint:
            argv += ["--s3-endpoint", self.s3_endpoint]
        return argv

    def _process_kwargs(self) -> dict:
        return {"cwd": REPO}

    def _ready(self) -> bool:
        return requests.get(f"{self.url}/engine/v1/version", timeout=2).status_code == 200

    def connection(self) -> dict:
        """The Airflow connection as a dict (an ``http`` connection: Cromwell has no credentials)."""
        return {"conn_type": "http", "host": "127.0.0.1", "port": self.port, "schema": "http"}

    def airflow_env(self) -> dict[str, str]:
        return {"AIRFLOW_CONN_CROMWELL_DEFAULT": json.dumps(self.connection())}

    # -- control routes
    def set_course(self, outcome: str = "succeed", after: int = 2, match: dict | None = None, **fields) -> dict:
        """Script workflows: ``succeed`` / ``fail`` after ``after`` observations ``Submitted`` and
        ``after`` more ``Running``, or ``hang`` (``Running`` forever). ``match`` picks them
        (``{"label": "k:v"}`` and/or ``{"name": "wf"}``; ``None``: the default course);
        ``failure``, ``outputs``, ``intermediates``, ``return_code`` optional.

        :return: ``{"course": ..., "changed": [ids of existing workflows now on it]}``.
        """
        return self._sim("POST", "course", json={"match": match, "outcome": outcome, "after": after, **fields})

    def fault(self, status: int, count: int = 1, routes: list[str] | None = None) -> dict:
        """Make the next ``count`` calls of ``routes`` (``submit``, ``status``, ``query``...;
        ``None``: any) answer ``status`` in Cromwell's error envelope."""
        return self._sim("POST", "faults", json={"status": status, "count": count, "routes": routes})

    def unknown_after_submit(self, reads: int) -> dict:
        """New workflows answer 404 on status/metadata/outputs/labels and are missing from
        ``/query`` for their first ``reads`` reads (Cromwell's summary lag, issue #2671)."""
        return self._sim("POST", "faults", json={"unknown_after_submit": reads})

    def calls(self) -> dict[str, int]:
        """Calls per route name (``submit``, ``status``, ``abort``, ``query``...)."""
        return self._sim("GET", "calls")["routes"]

    def call_log(self) -> list[dict]:
        """Every call: ``t``, ``route``, ``method``, ``path``, ``query``, answer ``status`` and
        ``authorization`` (``{"scheme", "sha256"}`` of the header, never the token)."""
        return self._sim("GET", "calls")["log"]

    def calls_with_authorization(self, header: str) -> list[str]:
        """Routes of the calls whose ``Authorization`` header was exactly ``header``."""
        import hashlib

        wanted = hashlib.sha256(header.encode()).hexdigest()
        return [c["route"] for c in self.call_log() if (c["authorization"] or {}).get("sha256") == wanted]

    def submissions(self) -> list[dict]:
        """Every submit received, accepted (``id``) or refused (``error``), with its form parts
        (``value`` for text, ``filename``/``size``/``sha256`` for files)."""
        return self._sim("GET", "submissions")["submissions"]

    def workflows(self) -> list[dict]:
        return self._sim("GET", "workflows")["workflows"]

    def write_errors(self) -> list[str]:
        """Files a workflow could not write under ``root``."""
        return self._sim("GET", "workflows")["write_errors"]

    def workflow(self, workflow_id: str) -> dict:
        """Everything the simulator holds about one workflow (status, observations, course, files written)."""
        return self._sim("GET", f"workflows/{workflow_id}")

    def advance(self, workflow_id: str) -> dict:
        """Observe the workflow once, as a status poll would: ``{"id", "status", "observations"}``."""
        return self._sim("POST", f"advance/{workflow_id}")

    def reset(self) -> None:
        """Forget workflows, courses, faults and records; chaos mode off, its counters zeroed."""
        self._sim("POST", "reset")


class WaveSimulator(SimulatorControls, Service):
    """The Wave simulator (``include/simulators/wave``) on ``http://127.0.0.1:<port>``.

    Started as ``python -m include.simulators.wave --port <port>`` with the repository root on
    ``PYTHONPATH``. Wave takes the Platform token in the request body (``towerAccessToken``) and
    the simulator accepts any; the connection carries ``token`` (if given) for the client to
    send. The helpers call its ``/_sim/`` control routes.

    :param token: the Platform access token written into the connection's password (``None``:
        anonymous requests).
    :param conn_extra: connection extra (``timeout``, ``poll_interval``...), for the client to read.
    """

    name = "wave"

    def __init__(self, token: str | None = None, conn_extra: dict | None = None, **kwargs) -> None:
        super().__init__(**kwargs)
        self.token = token
        self.conn_extra = dict(conn_extra or {})
        self.extra_env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), os.environ.get("PYTHONPATH")) if p)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _argv(self) -> list[str]:
        return [sys.executable, "-m", "include.simulators.wave", "--host", "127.0.0.1", "--port", str(self.port),
                "--exit-with-parent"]

    def _process_kwargs(self) -> dict:
        return {"cwd": REPO}

    def _ready(self) -> bool:
        return requests.get(f"{self.url}/service-info", timeout=2).status_code == 200

    def connection(self, token: str | None = None, **extra) -> dict:
        """The Airflow connection as a dict (``token`` / ``extra`` override, e.g. for a no-token test)."""
        conn = {"conn_type": "wave", "host": "127.0.0.1", "port": self.port, "schema": "http"}
        if token or self.token:
            conn["password"] = token or self.token
        if self.conn_extra or extra:
            conn["extra"] = {**self.conn_extra, **extra}
        return conn

    def airflow_env(self) -> dict[str, str]:
        return {"AIRFLOW_CONN_WAVE_DEFAULT": json.dumps(self.connection())}

    # -- control routes
    def set_course(self, outcome: str = "succeed", after: int = 2, scan_polls: int = 1, log: str | None = None,
                   match: dict | None = None, **fields) -> dict:
        """Script builds started from now on: ``succeed`` / ``fail`` after ``after`` status polls
        that see them running; a ``scanMode: required`` request then sees ``SCANNING`` for
        ``scan_polls`` polls. ``log`` replaces the build log; ``vulnerabilities``
        (severity -> count) is the scan's summary. ``match`` picks the builds
        (``{"entry": "<package>"}`` and/or ``{"image": "<containerImage>"}``; ``None``: the default).

        :return: ``{"course": ...}``.
        """
        return self._sim("POST", "course", json={"outcome": outcome, "after": after, "scan_polls": scan_polls,
                                                 "log": log, "match": match, **fields})

    def fault(self, status: int, count: int = 1, routes: list[str] | None = None) -> dict:
        """Make the next ``count`` calls of ``routes`` (``submit``, ``status``, ``container``,
        ``build``, ``build_status``, ``logs``, ``service_info``; ``None``: any) answer ``status``
        with ``{"message": ...}``."""
        return self._sim("POST", "faults", json={"status": status, "count": count, "routes": routes})

    def configure(self, **config) -> dict:
        """Server settings: ``anonymous`` (False: a request without ``towerAccessToken`` is 400
        "Missing user access token"), ``scan_by_default`` (scan every build, as Wave's code does
        with a scanner), ``public_repository`` (where freeze builds without ``buildRepository`` go)."""
        return self._sim("POST", "config", json=config)["config"]

    def calls(self) -> dict[str, int]:
        """Calls per route name (``submit``, ``status``, ``build_status``, ``logs``...)."""
        return self._sim("GET", "calls")["routes"]

    def call_log(self) -> list[dict]:
        """Every call: ``t``, ``route``, ``method``, ``path``, answer ``status``, ``tower_token``
        (``{"sha256"}`` of the body's token, never the token) and ``authorization``
        (``{"scheme", "sha256"}`` of the header)."""
        return self._sim("GET", "calls")["log"]

    def requests(self) -> list[dict]:
        """Every ``POST /v1alpha2/container`` body received (tokens as ``sha256:<hex>``), with the
        answer's ``status``, ``requestId`` or ``error``."""
        return self._sim("GET", "requests")["requests"]

    def builds(self) -> list[dict]:
        """Every build: id, container id, target image, observations, running, succeeded, course."""
        return self._sim("GET", "builds")["builds"]

    def reset(self) -> None:
        """Forget requests, builds, courses, faults, configuration and records; chaos mode off,
        its counters zeroed."""
        self._sim("POST", "reset")
