"""Run Airflow locally in a home folder: ``standalone`` (SQLite) or ``celery`` (Postgres + Redis).

``standalone`` is the quick dev loop: one ``airflow standalone`` process (LocalExecutor).
``celery`` is the production shape: PostgreSQL as the metadata DB, Redis as the Celery
broker, and each component in its own process (api-server, scheduler, dag-processor,
triggerer, ``airflow celery worker``), so tasks cross a process and broker boundary.

    with Airflow(home, mode="celery", env=stack.airflow_env()) as af:
        client = AirflowClient(af.url, af.username, af.password)
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import psutil
import requests

from hatchway_dev.endpoints import VENV_BIN, Service
from hatchway_dev.process import ManagedProcess, StackError, free_port, tail, wait_until

REPO = Path(__file__).resolve().parents[1]
DEFAULT_HOME = REPO / ".hatchway-dev" / "airflow"
MODES = ("standalone", "celery")
CELERY_ADMIN = ("admin", "admin")
COMPONENTS = ("api-server", "scheduler", "dag-processor", "triggerer")
HEALTH_KEYS = ("metadatabase", "scheduler", "triggerer", "dag_processor")


def require_tool(name: str, hint: str) -> str:
    """:return: the path of a system program.

    :raises StackError: naming the program and how to install it, when it is missing.
    """
    # Debian keeps the PostgreSQL server binaries off PATH, in a versioned folder.
    path = shutil.which(name) or shutil.which(name, path="/usr/lib/postgresql/15/bin")
    if not path:
        raise StackError(f"{name} not found on PATH: {hint}")
    return path


class Postgres(Service):
    """A throw-away PostgreSQL 15 cluster (trust auth, loopback only) with an ``airflow`` database.

    The data folder is a fresh temp folder, deleted on stop. When we run as root it belongs
    to the ``postgres`` user: PostgreSQL refuses to run as root, and a pytest ``tmp_path``
    (mode 0700, root's) would not be reachable by that user, so it is not used for the data.
    """

    name = "postgres"
    database = "airflow"

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        hint = "install PostgreSQL 15 server binaries (apt-get install postgresql-15)"
        self.initdb = require_tool("initdb", hint)
        self.postgres = require_tool("postgres", hint)
        self.pg_isready = require_tool("pg_isready", hint)
        self.user = "postgres" if os.geteuid() == 0 else None
        self.datadir: Path | None = None

    @property
    def sqlalchemy_url(self) -> str:
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{self.database}"

    def start(self, workdir: Path) -> Postgres:
        self.datadir = Path(tempfile.mkdtemp(prefix="hatchway-pg-"))
        try:
            if self.user:
                shutil.chown(self.datadir, self.user, self.user)
            log_path = Path(workdir) / "initdb.log"
            log_path.parent.mkdir(parents=True, exist_ok=True)
            with open(log_path, "wb") as log:
                # --no-sync and the fsync settings below: a throw-away cluster needs no durability.
                rc = subprocess.run(
                    [self.initdb, "-D", str(self.datadir / "data"), "-U", "postgres", "--auth=trust",
                     "-E", "UTF8", "--no-sync"],
                    stdout=log, stderr=subprocess.STDOUT, cwd=self.datadir, user=self.user,
                ).returncode
            if rc:
                raise StackError(f"initdb failed (rc={rc}):\n{tail(log_path)}")
            return super().start(workdir)
        except BaseException:
            shutil.rmtree(self.datadir, ignore_errors=True)
            raise

    def _argv(self) -> list[str]:
        return [self.postgres, "-D", str(self.datadir / "data"), "-p", str(self.port),
                "-k", str(self.datadir), "-c", "listen_addresses=127.0.0.1",
                "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off",
                "-c", "max_connections=200"]

    def _process_kwargs(self) -> dict:
        # SIGINT is PostgreSQL's fast shutdown; SIGTERM would wait for Airflow's connections.
        return {"user": self.user, "stop_signal": signal.SIGINT, "cwd": self.datadir}

    def _ready(self) -> bool:
        return subprocess.run([self.pg_isready, "-q", "-h", "127.0.0.1", "-p", str(self.port)]).returncode == 0

    def _after_start(self) -> None:
        psql = require_tool("psql", "install postgresql-client-15")
        subprocess.run([psql, "-q", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres",
                        "-c", f"CREATE DATABASE {self.database}"], check=True, capture_output=True)

    def stop(self) -> None:
        super().stop()
        if self.datadir:
            shutil.rmtree(self.datadir, ignore_errors=True)


class Redis(Service):
    """redis-server on a loopback port, in memory only (no RDB, no AOF)."""

    name = "redis"

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.redis_server = require_tool("redis-server", "run `make system-deps` (apt-get install -y redis-server)")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def _argv(self) -> list[str]:
        return [self.redis_server, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "no", "--dir", str(self.workdir)]

    def _ready(self) -> bool:
        with socket.create_connection(("127.0.0.1", self.port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")


class Airflow:
    """Airflow running from ``home``, in ``standalone`` or ``celery`` mode.

    :param home: AIRFLOW_HOME; logs go to ``home/logs`` (``standalone.log``, ``scheduler.log`` ...).
    :param mode: ``standalone`` or ``celery``.
    :param dags_folder: folder of DAG files (default ``<repo>/dags``).
    :param plugins_folder: plugins folder, also put on PYTHONPATH (default ``<repo>/plugins``).
    :param env: extra environment for every component (``AIRFLOW_CONN_*``, ``AIRFLOW_VAR_*``).
    :param port: api-server port (default: a free one).
    :param fresh: empty ``home`` first, so each start has a new metadata DB and no stale runs.
    :param start_timeout: seconds to wait for a healthy API.
    :param worker_concurrency: Celery worker slots (celery mode).
    :param bin_dir: the venv whose ``airflow`` runs (default: this one).
    :param pythonpath: exactly this ``PYTHONPATH`` (``[]``: none, for an installed provider);
        default: the plugins folder, its parent and the caller's ``PYTHONPATH``.
    """

    def __init__(
        self,
        home: Path = DEFAULT_HOME,
        *,
        mode: str = "standalone",
        dags_folder: Path = REPO / "dags",
        plugins_folder: Path = REPO / "plugins",
        env: dict[str, str] | None = None,
        port: int | None = None,
        fresh: bool = True,
        start_timeout: float = 240,
        worker_concurrency: int = 4,
        bin_dir: Path = VENV_BIN,
        pythonpath: list[str] | None = None,
    ) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        self.home = Path(home).resolve()
        self.mode = mode
        self.dags_folder = Path(dags_folder).resolve()
        self.plugins_folder = Path(plugins_folder).resolve()
        self.extra_env = dict(env or {})
        self.port = port or free_port()
        self.fresh = fresh
        self.start_timeout = start_timeout
        self.worker_concurrency = worker_concurrency
        self.bin_dir = Path(bin_dir)
        self.pythonpath = pythonpath
        self.processes: list[ManagedProcess] = []
        self.log_paths: list[Path] = []  # kept after stop, for failure reports
        self.services: list[Service] = []
        self._standalone_pids: dict[str, int] = {}
        self.healthy_in: float | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def logs(self) -> Path:
        return self.home / "logs"

    @property
    def passwords_file(self) -> Path:
        return self.home / "simple_auth_manager_passwords.json.generated"

    @property
    def username(self) -> str:
        return "admin"

    @property
    def password(self) -> str:
        """The admin password: standalone generates it at first start, celery mode writes a known one."""
        return json.loads(self.passwords_file.read_text())[self.username]

    # -- environment
    def _env(self) -> dict[str, str]:
        # Inherited AIRFLOW* settings (a test suite's AIRFLOW_HOME, a user's executor) would
        # leak into the stack: start from a clean slate and set everything that matters.
        # HATCHWAY_TASK_RETRIES too: a test session turns retries off for its in-process
        # ``dag.test()`` runs, but an Airflow started here runs as deployed (retries on) unless
        # ``env`` asks otherwise.
        env = {k: v for k, v in os.environ.items()
               if not k.startswith("AIRFLOW") and k not in ("PYTHONPATH", "HATCHWAY_TASK_RETRIES",
                                                             "HATCHWAY_TASK_RETRY_DELAY")}
        if self.pythonpath is None:  # the repository's package, and whatever the caller had
            pythonpath = [str(self.plugins_folder), str(self.plugins_folder.parent)]
            if os.environ.get("PYTHONPATH"):
                pythonpath.append(os.environ["PYTHONPATH"])
        else:  # exactly this (an installed provider: nothing of the repository)
            pythonpath = list(self.pythonpath)
        if pythonpath:
            env["PYTHONPATH"] = os.pathsep.join(pythonpath)
        env.update(
            # standalone and the executors spawn `airflow ...`: it must be this venv's.
            PATH=f"{self.bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
            AIRFLOW_HOME=str(self.home),
            AIRFLOW__CORE__DAGS_FOLDER=str(self.dags_folder),
            AIRFLOW__CORE__PLUGINS_FOLDER=str(self.plugins_folder),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=f"{self.username}:admin",  # user:role
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(self.passwords_file),
            AIRFLOW__API__HOST="127.0.0.1",
            AIRFLOW__API__PORT=str(self.port),
            AIRFLOW__API__BASE_URL=self.url,
            # One uvicorn worker: this is a 2-core machine and one user.
            AIRFLOW__API__WORKERS="1",
            # Components started apart must agree on these, and on where the Execution API is.
            AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"{self.url}/execution/",
            AIRFLOW__API_AUTH__JWT_SECRET=secrets.token_hex(16),
            AIRFLOW__API__SECRET_KEY=secrets.token_hex(16),
            # The dag-processor parses every DAG file again each interval (30 s by default), changed
            # or not. The dev stack's files do not change while it runs: every 5 minutes is enough,
            # and frees a few % of a CPU per stack.
            AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL="300",
            # Free ports, so a demo and a test stack can run side by side.
            AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT=str(free_port()),
            AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT=str(free_port()),
        )
        if self.mode == "standalone":
            env.update(
                AIRFLOW__CORE__EXECUTOR="LocalExecutor",
                # LocalExecutor starts one worker process per slot up front (32 by default):
                # 8 is plenty on a 2-core machine and keeps start-up and memory down.
                AIRFLOW__CORE__PARALLELISM="8",
                AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{self.home / 'airflow.db'}",
            )
        # Retries as deployed, a short wait before each: on Airflow 3.3 a trigger that fires
        # before the scheduler drained the deferring try's exit event gets the resumed task
        # retried (apache/airflow#71580, #72716; docs/airflow-behaviour.md), and the dev stack
        # should not sit out 30 s for it.
        env["HATCHWAY_TASK_RETRY_DELAY"] = "2"
        env.update(self.extra_env)
        return env

    # -- lifecycle
    def start(self) -> Airflow:
        """Start Airflow and wait until the API reports every component healthy.

        :raises StackError: with the tail of the relevant logs.
        """
        marker = self.home / ".hatchway-devstack"
        if self.fresh and self.home.exists() and any(self.home.iterdir()):
            # Only ever empty a folder this class made: a wrong `home` must not cost data.
            if not marker.exists():
                raise StackError(f"refusing to empty {self.home}: not an Airflow home made by hatchway_dev")
            shutil.rmtree(self.home)
        self.logs.mkdir(parents=True, exist_ok=True)
        marker.touch()
        t0 = time.monotonic()
        try:
            if self.mode == "standalone":
                self._start_standalone()
            else:
                self._start_celery()
            wait_until(self._healthy, timeout=self.start_timeout, what=f"a healthy Airflow at {self.url}",
                       procs=self.processes, interval=1, check=self.check)
        except BaseException:
            self.stop()
            raise
        self.healthy_in = time.monotonic() - t0
        return self

    def _spawn(self, name: str, argv: list[str], env: dict[str, str], **kwargs) -> ManagedProcess:
        proc = ManagedProcess(name, argv, self.logs / f"{name}.log", env=env, cwd=self.home, **kwargs).start()
        self.processes.append(proc)
        self.log_paths.append(proc.log_path)
        return proc

    def _start_standalone(self) -> None:
        # standalone stops its components on KeyboardInterrupt only: SIGINT first.
        self._spawn("standalone", [str(self.bin_dir / "airflow"), "standalone"], self._env(), stop_signal=signal.SIGINT)

    def _start_celery(self) -> None:
        for service in (Postgres(), Redis()):
            service.start(self.home / "services")
            self.services.append(service)
        pg, redis = self.services
        self.passwords_file.write_text(json.dumps({CELERY_ADMIN[0]: CELERY_ADMIN[1]}))
        env = self._env()
        env.update(
            AIRFLOW__CORE__EXECUTOR="CeleryExecutor",
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=pg.sqlalchemy_url,
            AIRFLOW__CELERY__BROKER_URL=redis.url,
            AIRFLOW__CELERY__RESULT_BACKEND="db+" + pg.sqlalchemy_url,
            AIRFLOW__CELERY__WORKER_CONCURRENCY=str(self.worker_concurrency),
        )
        airflow = str(self.bin_dir / "airflow")
        migrate = self.logs / "db-migrate.log"
        with open(migrate, "wb") as log:
            rc = subprocess.run([airflow, "db", "migrate"], env=env, cwd=self.home, stdout=log,
                                stderr=subprocess.STDOUT, timeout=300).returncode
        if rc:
            raise StackError(f"airflow db migrate failed (rc={rc}):\n{tail(migrate)}")
        for component in COMPONENTS:
            self._spawn(component, [airflow, component], env)
        self._spawn("celery-worker", [airflow, "celery", "worker"], env)

    def _check_standalone(self) -> None:
        # standalone outlives a component that crashed (an import error in the dag-processor,
        # say), and health then just stays "unhealthy": notice the exit instead of timing out.
        # Components are tracked by PID: the api-server rewrites its command line later.
        proc = self.processes[0]
        try:
            children = {c.pid: c for c in psutil.Process(proc.pid).children()
                        if c.status() != psutil.STATUS_ZOMBIE}
            for pid, child in children.items():
                if pid not in self._standalone_pids.values() and child.cmdline()[-1:] in ([c] for c in COMPONENTS):
                    self._standalone_pids[child.cmdline()[-1]] = pid
        except psutil.Error:
            return
        for gone in sorted(name for name, pid in self._standalone_pids.items() if pid not in children):
            lines = [line for line in tail(proc.log_path, 2000).splitlines(True) if line.startswith(f"{gone} ")]
            raise StackError(f"standalone's {gone} exited; its last lines in {proc.log_path}:\n{''.join(lines[-40:])}")

    def _healthy(self) -> bool:
        health = requests.get(f"{self.url}/api/v2/monitor/health", timeout=5).json()
        if not all((health.get(key) or {}).get("status") == "healthy" for key in HEALTH_KEYS):
            return False
        if self.mode == "celery":
            # Runs would sit queued without a worker: wait for Celery's "ready" line too.
            return " ready." in tail(self.logs / "celery-worker.log", 200)
        return True

    def check(self) -> None:
        """Raise :class:`StackError` (with the log tail) if any component or service died."""
        for proc in self.processes:
            proc.check()
        for service in self.services:
            service.check()
        if self.mode == "standalone" and self.processes:
            self._check_standalone()

    def component(self, name: str) -> ManagedProcess:
        """The running process of one component (``scheduler``, ``triggerer``, ``celery-worker``...; celery mode)."""
        for proc in self.processes:
            if proc.name == name:
                return proc
        raise KeyError(f"no component {name!r} (celery mode runs {[p.name for p in self.processes]})")

    def kill(self, name: str) -> None:
        """SIGKILL a component and everything it started, as a crash or an OOM kill would."""
        proc = self.component(name)
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.popen.wait(timeout=30)

    def restart(self, name: str) -> ManagedProcess:
        """Start a component again (killed first if it still runs), logging to the same file."""
        old = self.component(name)
        if old.alive():
            self.kill(name)
        new = ManagedProcess(name, old.argv, old.log_path, env=old.env, cwd=old.cwd).start()
        self.processes[self.processes.index(old)] = new
        return new

    def log_tails(self, lines: int = 30) -> str:
        """:return: the last lines of every component log, for failure reports."""
        return "".join(f"\n--- {path}\n{tail(path, lines)}" for path in self.log_paths)

    def stop(self) -> None:
        """Stop the components (newest first), then Redis and Postgres."""
        while self.processes:
            self.processes.pop().stop()
        while self.services:
            self.services.pop().stop()

    def __enter__(self) -> Airflow:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
