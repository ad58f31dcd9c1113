"""Hatchway's relational store: workspaces, their members, deployed workflows and WES runs.

Not Airflow's database and not Airflow Variables: Airflow owns the DAG runs, this store owns
what the WES API promised its callers (which run belongs to which workspace, what was asked,
whether a cancel was requested). It can share a PostgreSQL database with Airflow; its tables
are all prefixed ``hatchway_``.

Every method is one short transaction and returns plain frozen records, never ORM objects,
so nothing detaches, lazy-loads or leaks a session into a task or a request handler.
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator
from sqlalchemy import Engine, and_, create_engine, event, func, make_url, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from hatchway.domain import names
from hatchway.domain.usage import Usage
from hatchway.domain.access import AccessPolicy, Engine as WorkflowEngine, WorkflowDeploy, can_manage
from hatchway.store.models import CrateRow, MemberRow, RunRow, UsageRow, WorkflowRow, WorkspaceRow

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
# Not Alembic's default "alembic_version": Airflow's own migrations use that table, and the
# store may sit in Airflow's database.
VERSION_TABLE = "hatchway_alembic_version"
# Key of the PostgreSQL advisory lock that serialises concurrent `migrate()` calls.
MIGRATE_LOCK_ID = 0x68617463  # "hatc"
# How long an SQLite writer waits for another's lock before "database is locked".
SQLITE_BUSY_SECONDS = 30
MAX_PAGE_SIZE = 1000
IN_BATCH = 1000  # ids in one IN (...) of a query: SQLite and PostgreSQL bound the parameters of a statement
ROLES = ("owner", "member")
# What a caller decided when it submitted the run; the rest (state, outputs, cancel,
# timestamps) changes afterwards, so a retried add_run is compared on these alone.
SUBMITTED = frozenset({
    "run_id", "dag_id", "dag_run_id", "calling_workspace", "deploying_workspace", "executing_workspace",
    "workflow_name", "workflow_version", "engine", "request", "tags",
})

T = TypeVar("T")

# Alembic's `context` is one module-global proxy: two upgrades in threads of one process
# would overwrite each other's. Processes are kept apart by the database lock (env.py).
_MIGRATE_LOCK = threading.Lock()


class NotAllowed(PermissionError):
    """The caller's workspace may not change this workflow (only its deploying workspace may)."""


class NotFound(LookupError):
    """No such workspace, workflow or run."""


class Conflict(ValueError):
    """The write contradicts what is stored (another submission under the same run id)."""


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


def _check_user(user: str) -> str:
    # Users are token subjects ("alice@example.org", "auth0|5f3c..."), not cloud names: the
    # owner rule of names.py (for AWS tags) would refuse valid ones.
    if not 1 <= len(user) <= 128 or not user.isprintable() or user != user.strip():
        raise ValueError("user must be 1-128 printable characters, without leading or trailing blanks")
    return user


class Workspace(BaseModel):
    """A workspace as the store knows it.

    :param name: workspace name.
    :param owner: the user who owns it.
    :param bucket: its data bucket, once known.
    :param created_at: when the store first saw it.
    """

    model_config = ConfigDict(frozen=True, from_attributes=True)

    name: str
    owner: str
    bucket: str | None = None
    created_at: AwareDatetime


class Member(BaseModel):
    model_config = ConfigDict(frozen=True, from_attributes=True)

    workspace: str
    user: str
    role: str


class Workflow(WorkflowDeploy):
    """A deployed workflow: the deploy request, and where and when it was deployed.

    :param deploying_workspace: the workspace that deployed it, the only one that may change it.
    :param created_at: first deploy.
    :param updated_at: last redeploy or policy change.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, from_attributes=True)

    deploying_workspace: str
    created_at: AwareDatetime
    updated_at: AwareDatetime


class RunRecord(BaseModel):
    """One WES run, as submitted and as last seen.

    :param run_id: the WES run id (at most 32 characters).
    :param dag_id: the DAG that runs it.
    :param dag_run_id: its Airflow DAG run id.
    :param calling_workspace: whose token submitted it; only that workspace lists it.
    :param deploying_workspace: who deployed the workflow.
    :param executing_workspace: whose compute runs it (see :func:`hatchway.domain.access.resolve`).
    :param workflow_name: deployed workflow name.
    :param workflow_version: its version at submission.
    :param engine: workflow language.
    :param request: what was asked: params, tags, engine params.
    :param tags: the run's tags.
    :param state: the last WES state seen.
    :param cancel_requested_at: when a cancel was first asked for.
    :param outputs: where the outputs went, e.g. ``{"catalog": "s3://..."}``.
    :param created_at: submission time; with ``run_id``, the paging key.
    :param updated_at: last change (set by the store).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", from_attributes=True)

    run_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")
    dag_id: str = Field(min_length=1, max_length=250)
    dag_run_id: str = Field(min_length=1, max_length=250)
    calling_workspace: str
    deploying_workspace: str
    executing_workspace: str
    workflow_name: str
    workflow_version: str
    engine: WorkflowEngine
    request: dict[str, Any] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)
    state: str = Field("QUEUED", max_length=32)
    cancel_requested_at: AwareDatetime | None = None
    outputs: dict[str, Any] | None = None
    created_at: AwareDatetime = Field(default_factory=utcnow)
    updated_at: AwareDatetime | None = None

    _workspaces_rule = field_validator("calling_workspace", "deploying_workspace", "executing_workspace")(
        lambda cls, v: names.check_workspace_name(v))


class UsageRecord(BaseModel):
    """What one Airflow run used, against the workspace that ran it and its cost centre.

    :param dag_id: with ``dag_run_id``, the key: a retried recording replaces, never adds.
    :param run_id: the run as its caller knows it (the WES run id, the job name).
    :param executing_workspace: whose compute ran it; usage is reported per executing workspace.
    :param calling_workspace: who asked for it, when not the executing workspace.
    :param cost_center: the executing workspace's cost centre when the run ended (None: no record).
    :param state: the run's end state (WES states, or the job's last event).
    """

    model_config = ConfigDict(frozen=True, extra="forbid", from_attributes=True)

    dag_id: str = Field(min_length=1, max_length=250)
    dag_run_id: str = Field(min_length=1, max_length=250)
    run_id: str = Field(min_length=1, max_length=250)
    executing_workspace: str = Field(min_length=1, max_length=63)
    calling_workspace: str | None = Field(None, max_length=63)
    cost_center: str | None = Field(None, max_length=256)
    state: str = Field(min_length=1, max_length=32)
    started_at: AwareDatetime | None = None
    ended_at: AwareDatetime
    usage: Usage
    recorded_at: AwareDatetime = Field(default_factory=utcnow)

    @property
    def estimated_cost(self) -> float:
        return self.usage.estimated_cost


def make_engine(url: str) -> Engine:
    """An engine for the store. For SQLite: WAL, a busy timeout, foreign keys, and real
    transactions (``BEGIN``; ``BEGIN IMMEDIATE`` on connections marked ``hatchway_write``).

    :param url: SQLAlchemy URL.
    """
    sqlite = make_url(url).get_backend_name() == "sqlite"
    connect_args = {"check_same_thread": False, "timeout": SQLITE_BUSY_SECONDS} if sqlite else {}
    engine = create_engine(url, future=True, pool_pre_ping=True, connect_args=connect_args)
    if sqlite:
        event.listen(engine, "connect", _sqlite_connect)
        event.listen(engine, "begin", _sqlite_begin)
    return engine


def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # sqlite3's own transaction handling does not BEGIN before SELECT or DDL, so reads are
    # not repeatable and migrations not atomic: we emit BEGIN ourselves (_sqlite_begin).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # WAL: readers (the API) do not wait for the writer (a task updating a run's state).
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")  # durable enough in WAL mode, much faster
    cursor.execute("PRAGMA foreign_keys=ON")  # as PostgreSQL does
    cursor.close()


def _sqlite_begin(conn: Any) -> None:
    # A write transaction takes the write lock up front: a deferred one that reads and then
    # writes fails at once with "database is locked" when another writer got in between,
    # where an immediate one waits its turn (busy timeout). Reads stay deferred, so they
    # never queue behind writers.
    immediate = conn.get_execution_options().get("hatchway_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")


def _encode_token(created_at: datetime, run_id: str) -> str:
    raw = json.dumps([created_at.isoformat(), run_id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _decode_token(token: str) -> tuple[datetime, str]:
    try:
        raw = base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))
        created, run_id = json.loads(raw)
        created_at = datetime.fromisoformat(created)
        if created_at.tzinfo is None or not isinstance(run_id, str):
            raise ValueError
    except (binascii.Error, UnicodeDecodeError, TypeError, ValueError):
        # json and fromisoformat errors are ValueErrors; a non-list unpacks to TypeError.
        raise ValueError("malformed page_token: pass back the next_page_token of the previous page") from None
    return created_at, run_id


class Store:
    """Hatchway's own database.

    :param url: SQLAlchemy URL, e.g. ``sqlite:////var/lib/hatchway.db`` or
        ``postgresql+psycopg2://user@host/db``. Call :meth:`migrate` before first use.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        sa_url = make_url(url)
        if sa_url.get_backend_name() == "sqlite" and sa_url.database not in (None, "", ":memory:"):
            Path(sa_url.database).parent.mkdir(parents=True, exist_ok=True)
        self.engine = make_engine(url)
        self._reader = sessionmaker(self.engine, expire_on_commit=False)
        self._writer = sessionmaker(self.engine.execution_options(hatchway_write=True), expire_on_commit=False)

    @classmethod
    def from_env(cls) -> Store:
        """The store at ``$HATCHWAY_DB_URL``, else ``sqlite:///$AIRFLOW_HOME/hatchway.db``."""
        url = os.environ.get("HATCHWAY_DB_URL")
        if not url:
            home = Path(os.environ.get("AIRFLOW_HOME") or "~/airflow").expanduser()
            url = f"sqlite:///{home / 'hatchway.db'}"
        return cls(url)

    @classmethod
    @contextmanager
    def migrated_from_env(cls) -> Iterator[Store]:
        """:meth:`from_env`, migrated, disposed of afterwards: a task's short use of the store
        (a worker may write before the door has ever started; migrating is a no-op once current)."""
        store = cls.from_env()
        try:
            store.migrate()
            yield store
        finally:
            store.dispose()

    def dispose(self) -> None:
        self.engine.dispose()

    def migrate(self) -> None:
        """Bring the schema to the latest revision (``alembic upgrade head``).

        Idempotent and safe at every start, from several processes at once: ``env.py`` runs
        the version check and all migrations in one transaction under a lock (an advisory
        lock on PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite), so latecomers find the schema
        current and do nothing.
        """
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        # configparser reads '%' as interpolation: a URL-encoded password would break it.
        config.set_main_option("sqlalchemy.url", self.url.replace("%", "%%"))
        with _MIGRATE_LOCK, self.engine.execution_options(hatchway_write=True).connect() as connection:
            config.attributes["connection"] = connection
            command.upgrade(config, "head")

    # -- transactions
    @contextmanager
    def _read(self) -> Iterator[Session]:
        with self._reader.begin() as session:
            yield session

    @contextmanager
    def _write(self) -> Iterator[Session]:
        with self._writer.begin() as session:
            yield session

    def _upsert(self, fn: Callable[[Session], T]) -> T:
        """Run a read-then-insert-or-update write; if a concurrent writer inserted the same
        key first, the second try finds the row and updates it."""
        try:
            with self._write() as session:
                return fn(session)
        except IntegrityError:
            with self._write() as session:
                return fn(session)

    # -- workspaces
    def ensure_workspace(self, name: str, owner: str, bucket: str | None = None) -> Workspace:
        """Create the workspace, its owner as an ``owner`` member, unless it exists.

        Called on every request of a workspace (by whichever member calls): an existing
        workspace is returned as it is, its first owner kept; only a missing bucket is filled in.

        :param owner: a token subject (any non-blank string of at most 128 characters).
        """
        names.check_workspace_name(name)
        _check_user(owner)
        if bucket is not None:
            names.check_s3_bucket(bucket)

        def run(session: Session) -> Workspace:
            row = session.get(WorkspaceRow, name)
            if row is None:
                row = WorkspaceRow(name=name, owner=owner, bucket=bucket, created_at=utcnow())
                session.add(row)
                session.flush()  # the member row refers to it; no ORM relationship orders the two
                session.add(MemberRow(workspace=name, user=owner, role="owner"))
                session.flush()
            elif row.bucket is None and bucket is not None:
                row.bucket = bucket
            return Workspace.model_validate(row)

        return self._upsert(run)

    def get_workspace(self, name: str) -> Workspace | None:
        with self._read() as session:
            row = session.get(WorkspaceRow, name)
            return None if row is None else Workspace.model_validate(row)

    def list_workspaces(self) -> list[Workspace]:
        """Every workspace the store knows, by name."""
        with self._read() as session:
            return [Workspace.model_validate(row) for row in session.scalars(select(WorkspaceRow).order_by(
                WorkspaceRow.name))]

    def add_member(self, workspace: str, user: str, role: str = "member") -> Member:
        """Add ``user`` to ``workspace``, or change their role.

        :raises NotFound: when the workspace does not exist.
        """
        _check_user(user)
        if role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, not {role!r}")

        def run(session: Session) -> Member:
            if session.get(WorkspaceRow, workspace) is None:
                raise NotFound(f"no workspace {workspace!r}")
            row = session.get(MemberRow, (workspace, user))
            if row is None:
                row = MemberRow(workspace=workspace, user=user, role=role)
                session.add(row)
                session.flush()
            row.role = role
            return Member.model_validate(row)

        return self._upsert(run)

    def members(self, workspace: str) -> list[Member]:
        with self._read() as session:
            rows = session.scalars(select(MemberRow).where(MemberRow.workspace == workspace).order_by(MemberRow.user))
            return [Member.model_validate(row) for row in rows]

    # -- workflows
    def deploy_workflow(self, deploying_workspace: str, spec: WorkflowDeploy, *, caller: str | None = None) -> Workflow:
        """Deploy ``spec`` in ``deploying_workspace``, or redeploy it there (an upsert).

        :param caller: the token's workspace when it is not the deploying one (API handlers
            pass it); defaults to ``deploying_workspace``.
        :raises NotAllowed: when ``caller`` is not the deploying workspace.
        """
        names.check_workspace_name(deploying_workspace)
        if not can_manage(deploying_workspace, caller or deploying_workspace):
            raise NotAllowed(f"only workspace {deploying_workspace!r} may deploy workflows there")
        fields = spec.model_dump(exclude={"deploying_workspace", "created_at", "updated_at"})
        fields.update(engine=spec.engine.value, policy=spec.policy.value)

        def run(session: Session) -> Workflow:
            now = utcnow()
            row = session.get(WorkflowRow, (deploying_workspace, spec.name), with_for_update=True)
            if row is None:
                row = WorkflowRow(deploying_workspace=deploying_workspace, created_at=now, updated_at=now, **fields)
                session.add(row)
                session.flush()
            else:
                for key, value in fields.items():
                    setattr(row, key, value)
                row.updated_at = now
            return Workflow.model_validate(row)

        return self._upsert(run)

    def get_workflow(self, deploying_workspace: str, name: str) -> Workflow | None:
        """:return: the workflow, or None. Whether the caller may run it is :func:`access.resolve`'s call."""
        with self._read() as session:
            row = session.get(WorkflowRow, (deploying_workspace, name))
            return None if row is None else Workflow.model_validate(row)

    def list_workflows(self, deploying_workspace: str) -> list[Workflow]:
        with self._read() as session:
            query = select(WorkflowRow).where(WorkflowRow.deploying_workspace == deploying_workspace)
            return [Workflow.model_validate(row) for row in session.scalars(query.order_by(WorkflowRow.name))]

    def set_policy(self, caller_ws: str, deploying_ws: str, name: str, policy: AccessPolicy | str) -> Workflow:
        """Re-publish a workflow under another access policy.

        :raises NotAllowed: when ``caller_ws`` is not the deploying workspace.
        :raises NotFound: when there is no such workflow.
        """
        policy = AccessPolicy(policy)
        # Checked before any read: the answer must not depend on whether the workflow exists.
        if not can_manage(deploying_ws, caller_ws):
            raise NotAllowed(f"only workspace {deploying_ws!r} may change its workflows")
        with self._write() as session:
            row = session.get(WorkflowRow, (deploying_ws, name), with_for_update=True)
            if row is None:
                raise NotFound(f"no workflow {deploying_ws}/{name}")
            row.policy, row.updated_at = policy.value, utcnow()
            return Workflow.model_validate(row)

    def remove_workflow(self, caller_ws: str, deploying_ws: str, name: str) -> bool:
        """Remove a workflow; its past runs stay.

        :return: whether there was one to remove.
        :raises NotAllowed: when ``caller_ws`` is not the deploying workspace.
        """
        if not can_manage(deploying_ws, caller_ws):
            raise NotAllowed(f"only workspace {deploying_ws!r} may remove its workflows")
        with self._write() as session:
            row = session.get(WorkflowRow, (deploying_ws, name))
            if row is None:
                return False
            session.delete(row)
            return True

    # -- runs
    def add_run(self, record: RunRecord) -> RunRecord:
        """Record a submitted run. Idempotent: the same submission again returns the stored run.

        :raises Conflict: when the run id (or the DAG run id) is taken by a different submission.
        """
        try:
            with self._write() as session:
                row = session.get(RunRow, record.run_id)
                if row is None:
                    values = record.model_dump()
                    values.update(engine=record.engine.value, updated_at=record.updated_at or record.created_at)
                    row = RunRow(**values)
                    session.add(row)
                    session.flush()
                    return RunRecord.model_validate(row)
                found = RunRecord.model_validate(row)
        except IntegrityError:
            # A concurrent add_run of the same id got in first, or the dag_run_id is taken.
            found = self.get_run(record.run_id)
            if found is None:
                raise Conflict(f"dag_run_id {record.dag_run_id!r} already belongs to another run") from None
        if found.model_dump(mode="json", include=SUBMITTED) != record.model_dump(mode="json", include=SUBMITTED):
            raise Conflict(f"run {record.run_id!r} already exists with a different submission")
        return found

    def get_run(self, run_id: str) -> RunRecord | None:
        """:return: the run, whoever submitted it: callers check ``calling_workspace``."""
        with self._read() as session:
            row = session.get(RunRow, run_id)
            return None if row is None else RunRecord.model_validate(row)

    def list_runs(
        self, calling_workspace: str, page_size: int, page_token: str | None = None
    ) -> tuple[list[RunRecord], str | None]:
        """One page of a workspace's runs, newest first.

        Keyset paging on (created_at, run_id): a page never repeats or skips a run when new
        runs arrive between pages, and costs the same on page 1 and page 1000.

        :param calling_workspace: only runs submitted by this workspace are listed.
        :param page_size: 1 to 1000.
        :param page_token: ``next_page_token`` of the previous page.
        :return: the runs and the token of the next page (None on the last page).
        :raises ValueError: on a bad page size or a malformed token.
        """
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be 1-{MAX_PAGE_SIZE} (got {page_size})")
        query = select(RunRow).where(RunRow.calling_workspace == calling_workspace)
        if page_token:
            created_at, run_id = _decode_token(page_token)
            query = query.where(or_(
                RunRow.created_at < created_at,
                and_(RunRow.created_at == created_at, RunRow.run_id < run_id),
            ))
        query = query.order_by(RunRow.created_at.desc(), RunRow.run_id.desc()).limit(page_size + 1)
        with self._read() as session:
            runs = [RunRecord.model_validate(row) for row in session.scalars(query)]
        if len(runs) <= page_size:
            return runs, None
        last = runs[page_size - 1]
        return runs[:page_size], _encode_token(last.created_at, last.run_id)

    def update_run(self, run_id: str, *, state: str | None = None, outputs: dict[str, Any] | None = None) -> RunRecord:
        """Record the last state seen and/or the outputs. :raises NotFound: no such run."""
        with self._write() as session:
            row = session.get(RunRow, run_id, with_for_update=True)
            if row is None:
                raise NotFound(f"no run {run_id!r}")
            if state is not None:
                row.state = state
            if outputs is not None:
                row.outputs = outputs
            row.updated_at = utcnow()
            return RunRecord.model_validate(row)

    def update_states(self, states: dict[str, str]) -> None:
        """Record the last state seen of several runs in one transaction: one UPDATE per distinct
        state, not per run (a page of ``GET /runs``). Unknown run ids are ignored."""
        by_state: dict[str, list[str]] = {}
        for run_id, state in states.items():
            by_state.setdefault(state, []).append(run_id)
        now = utcnow()
        with self._write() as session:
            for state, run_ids in by_state.items():
                session.execute(update(RunRow).where(RunRow.run_id.in_(run_ids)).values(state=state, updated_at=now))

    def request_cancel(self, run_id: str) -> RunRecord:
        """Mark the run for cancelling. Idempotent: the first request's time is kept.

        :raises NotFound: no such run.
        """
        with self._write() as session:
            row = session.get(RunRow, run_id, with_for_update=True)
            if row is None:
                raise NotFound(f"no run {run_id!r}")
            if row.cancel_requested_at is None:
                row.cancel_requested_at = row.updated_at = utcnow()
            return RunRecord.model_validate(row)

    # -- usage
    def record_usage(self, record: UsageRecord) -> UsageRecord:
        """Store what a run used. Idempotent: a retried or repeated recording of the same
        Airflow run replaces its row (the figures of the last recording win), never adds one."""
        values = record.model_dump(exclude={"usage"})
        values.update(usage=record.usage.model_dump(mode="json"), estimated_cost=record.usage.estimated_cost,
                      currency=record.usage.currency)

        def run(session: Session) -> UsageRecord:
            row = session.get(UsageRow, (record.dag_id, record.dag_run_id), with_for_update=True)
            if row is None:
                row = UsageRow(**values)
                session.add(row)
            else:
                for key, value in values.items():
                    setattr(row, key, value)
            session.flush()
            return UsageRecord.model_validate(row)

        return self._upsert(run)

    def usage_of(self, executing_workspace: str, start: datetime | None = None,
                 end: datetime | None = None) -> list[UsageRecord]:
        """The runs a workspace executed that ended in ``[start, end)``, oldest first."""
        query = select(UsageRow).where(UsageRow.executing_workspace == executing_workspace)
        if start is not None:
            query = query.where(UsageRow.ended_at >= start)
        if end is not None:
            query = query.where(UsageRow.ended_at < end)
        with self._read() as session:
            return [UsageRecord.model_validate(row)
                    for row in session.scalars(query.order_by(UsageRow.ended_at, UsageRow.dag_run_id))]

    def get_usage(self, dag_id: str, dag_run_id: str) -> UsageRecord | None:
        with self._read() as session:
            row = session.get(UsageRow, (dag_id, dag_run_id))
            return None if row is None else UsageRecord.model_validate(row)

    # -- provenance
    def save_crate(self, dag_id: str, dag_run_id: str, run_id: str, location: str, crate: dict[str, Any]) -> None:
        """Keep the run's RO-Crate (``location``: where it was written). A rewrite replaces it."""

        def run(session: Session) -> None:
            row = session.get(CrateRow, (dag_id, dag_run_id), with_for_update=True)
            if row is None:
                session.add(CrateRow(dag_id=dag_id, dag_run_id=dag_run_id, run_id=run_id, location=location,
                                     crate=crate, written_at=utcnow()))
            else:
                row.run_id, row.location, row.crate, row.written_at = run_id, location, crate, utcnow()

        self._upsert(run)

    def get_crate(self, dag_id: str, dag_run_id: str) -> tuple[str, dict[str, Any]] | None:
        """``(location, crate)`` of the run, or None when none was written yet."""
        with self._read() as session:
            row = session.get(CrateRow, (dag_id, dag_run_id))
            return None if row is None else (row.location, row.crate)

    def crated(self, runs: Iterable[tuple[str, str]]) -> set[tuple[str, str]]:
        """Which of ``runs`` (``(dag_id, dag_run_id)`` pairs) have a kept RO-Crate: one query per
        :data:`IN_BATCH` runs (a database bounds the parameters of one statement)."""
        wanted = set(runs)
        ids = sorted({run for _, run in wanted})
        found: set[tuple[str, str]] = set()
        with self._read() as session:
            for start in range(0, len(ids), IN_BATCH):
                query = select(CrateRow.dag_id, CrateRow.dag_run_id).where(
                    CrateRow.dag_run_id.in_(ids[start:start + IN_BATCH]))
                found.update((dag, run) for dag, run in session.execute(query))
        return found & wanted

    def spent(self, executing_workspace: str, start: datetime | None = None) -> float:
        """Estimated cost of the workspace's runs that ended since ``start`` (all when None), in one query."""
        query = select(func.coalesce(func.sum(UsageRow.estimated_cost), 0.0)).where(
            UsageRow.executing_workspace == executing_workspace)
        if start is not None:
            query = query.where(UsageRow.ended_at >= start)
        with self._read() as session:
            return float(session.scalar(query))

    def spent_by_workspace(self, start: datetime | None = None) -> dict[str, float]:
        """Estimated cost of every workspace's runs that ended since ``start`` (all when None), in
        one query: workspace -> cost, for the workspaces with a recorded run."""
        query = select(UsageRow.executing_workspace, func.sum(UsageRow.estimated_cost)).group_by(
            UsageRow.executing_workspace)
        if start is not None:
            query = query.where(UsageRow.ended_at >= start)
        with self._read() as session:
            return {workspace: float(cost or 0.0) for workspace, cost in session.execute(query)}

    def ping(self) -> None:
        """One round trip to the database (``SELECT 1``); raises what the driver raises."""
        with self._read() as session:
            session.execute(select(1))

    def count_runs(self, calling_workspace: str | None = None) -> int:
        query = select(func.count()).select_from(RunRow)
        if calling_workspace is not None:
            query = query.where(RunRow.calling_workspace == calling_workspace)
        with self._read() as session:
            return session.scalar(query)
