"""In-memory state of the Seqera Platform simulator: runs, their scripted course, faults, counters.

Plain Python with no web framework, so the rules of a run's course can be read (and tested)
on their own. The web layer (:mod:`.app`) turns requests into calls on :class:`SimState`.

A run's status is a function of how often it has been *polled*: a poll is a
``GET /workflow`` or ``GET /workflow/{workflowId}`` answer that contains the run. That
makes outcomes deterministic for tests regardless of wall-clock timing.
"""

from __future__ import annotations

import json
import os
import secrets
import string
import time
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from include.simulators.chaos import take_fault

TERMINAL = frozenset({"SUCCEEDED", "FAILED", "CANCELLED", "UNKNOWN"})
KINDS = ("succeed", "fail", "cancel", "unknown", "running", "not_started")
_OUTCOME = {"succeed": "SUCCEEDED", "fail": "FAILED", "cancel": "CANCELLED", "unknown": "UNKNOWN"}

# Shaped like a real Nextflow error report: the first line names the failing process,
# which is what Hatchway reports as ``trace_name``.
DEFAULT_ERROR_REPORT = (
    "Error executing process > 'PGSC_CALC:PGSC_CALC_APPLY:PLINK2_SCORE (1)'\n"
    "\n"
    "Caused by:\n"
    "  Process `PGSC_CALC:PGSC_CALC_APPLY:PLINK2_SCORE (1)` terminated with an error exit status (12)\n"
    "\n"
    "Command exit status:\n"
    "  12\n"
)
_ID_CHARS = string.ascii_letters + string.digits
# A task of a run whose course names none: what a small nf-core process asks of AWS Batch.
DEFAULT_TASK: dict[str, Any] = {"process": "PGSC_CALC:PGSC_CALC_APPLY:PLINK2_SCORE", "cpus": 2, "memory_gib": 4.0,
                                "minutes": 10.0, "machine_type": "m5.large", "price_model": "spot",
                                "write_bytes": 1 << 20}
# What the simulator charges per hour of a whole instance (Seqera prices tasks from the cloud's list).
SIM_HOURLY = {("m5.large", "spot"): 0.035, ("m5.large", "standard"): 0.096,
              ("m5.xlarge", "spot"): 0.07, ("m5.xlarge", "standard"): 0.192}


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass
class Course:
    """How a run behaves as it is polled.

    :param kind: ``succeed``, ``fail``, ``cancel``, ``unknown`` (terminal after ``after``
        polls), ``running`` (RUNNING forever) or ``not_started`` (absent from lists forever;
        ``GET /workflow/{id}`` says SUBMITTED).
    :param after: polls that see the run RUNNING before it ends (0: the first poll sees the end).
    :param submitted_polls: of those, how many first see it SUBMITTED (not started yet).
    :param exit_status: ``exitStatus`` of a failed run.
    :param error_report: ``errorReport`` of a failed run (multi-line).
    :param outputs: files a succeeding run writes under its ``outdir`` param (relative path ->
        text), as a pipeline's publishDir would; written once, when the run reaches SUCCEEDED.
    :param tasks: the run's tasks as ``GET /workflow/{id}/tasks`` lists them once it ended, each
        ``{"process", "cpus", "memory_gib", "minutes", "machine_type", "price_model",
        "write_bytes"}`` (any left out: :data:`DEFAULT_TASK`'s); ``None``: one default task. A
        failed run's last task FAILED, a cancelled run's ABORTED.
    """

    kind: str = "succeed"
    after: int = 2
    submitted_polls: int = 0
    exit_status: int = 12
    error_report: str = DEFAULT_ERROR_REPORT
    outputs: dict[str, str] | None = None
    tasks: list[dict[str, Any]] | None = None

    def __post_init__(self) -> None:
        for task in self.tasks or []:
            unknown = set(task) - set(DEFAULT_TASK)
            if unknown:
                raise ValueError(f"unknown task fields {sorted(unknown)}; known: {sorted(DEFAULT_TASK)}")
        if self.kind not in KINDS:
            raise ValueError(f"unknown course kind {self.kind!r}; one of {KINDS}")
        if self.after < 0 or self.submitted_polls < 0:
            raise ValueError("after and submitted_polls must be >= 0")
        for path in self.outputs or {}:
            if not path or path.startswith("/") or ".." in path.split("/"):
                raise ValueError(f"output path {path!r} must be relative, without '..'")

    def status_at(self, poll: int) -> str | None:
        """Status seen by the ``poll``-th poll (1-based) since the course was set; ``None``: absent."""
        if self.kind == "not_started":
            return None
        if poll <= self.submitted_polls:
            return "SUBMITTED"
        if self.kind == "running" or poll <= self.after:
            return "RUNNING"
        return _OUTCOME[self.kind]


@dataclass
class Run:
    """One workflow record."""

    id: str
    run_name: str
    workspace_id: int | None
    pipeline: str
    revision: str | None
    work_dir: str | None
    compute_env_id: str | None
    params_text: str | None
    course: Course
    submit: float
    polls: int = 0
    course_base: int = 0  # polls already counted when the current course was set
    status: str = "SUBMITTED"
    start: float | None = None
    complete: float | None = None
    last_updated: float = 0.0
    session_id: str = field(default_factory=lambda: _uuid())
    on_succeeded: Any = field(default=None, repr=False, compare=False)

    @property
    def params(self) -> dict[str, Any]:
        try:
            value = json.loads(self.params_text or "{}")
        except ValueError:
            return {}
        return value if isinstance(value, dict) else {}

    @property
    def visible_in_lists(self) -> bool:
        return self.course.kind != "not_started" or self.status in TERMINAL

    def poll(self, now: float) -> None:
        """Count one poll and move the run along its course (terminal states are final)."""
        self.polls += 1
        if self.status in TERMINAL:
            return
        new = self.course.status_at(self.polls - self.course_base) or "SUBMITTED"
        self._move(new, now)

    def _move(self, new: str, now: float) -> None:
        if new == self.status:
            return
        if new != "SUBMITTED" and self.start is None:
            self.start = now
        if new in TERMINAL:
            self.complete = now
        self.status = new
        self.last_updated = now
        if new == "SUCCEEDED" and self.on_succeeded is not None:
            self.on_succeeded(self)

    def cancel(self, now: float) -> None:
        self._move("CANCELLED", now)

    # -- answers (fields that would be null are left out: the spec has them non-nullable)
    def workflow_dto(self, *, max_fields: bool = False) -> dict[str, Any]:
        wf: dict[str, Any] = {
            "id": self.id,
            "ownerId": 1,
            "submit": _iso(self.submit),
            "dateCreated": _iso(self.submit),
            "lastUpdated": _iso(self.last_updated or self.submit),
            "runName": self.run_name,
            "sessionId": self.session_id,
            "profile": "standard",
            "userName": "hatchway-sim",
            "projectName": self.pipeline.removeprefix("https://github.com/"),
            "repository": self.pipeline if "://" in self.pipeline else f"https://github.com/{self.pipeline}",
            "scriptName": "main.nf",
            "launchId": f"launch-{self.id}",
            "status": self.status,
            "projectDir": f"/.nextflow/assets/{self.pipeline.removeprefix('https://github.com/')}",
            "launchDir": "/",
            "resume": False,
            "deleted": False,
        }
        if self.revision:
            wf["revision"] = self.revision
        if self.work_dir:
            wf["workDir"] = self.work_dir
        if self.start is not None:
            wf["start"] = _iso(self.start)
        if self.complete is not None:
            wf["complete"] = _iso(self.complete)
            wf["duration"] = int((self.complete - (self.start or self.submit)) * 1000)
        if self.status in TERMINAL:
            wf["success"] = self.status == "SUCCEEDED"
            if self.status == "SUCCEEDED":
                wf["exitStatus"] = 0
            elif self.status == "FAILED":
                wf["exitStatus"] = self.course.exit_status
                wf["errorReport"] = self.course.error_report
                wf["errorMessage"] = self.course.error_report.splitlines()[0]
            elif self.status == "CANCELLED":
                wf["errorMessage"] = "Workflow execution cancelled"
        if max_fields:
            wf["logFile"] = f"{self.work_dir or '/work'}/nf-{self.id}.log"
            wf["nextflowVersion"] = "24.10.4"
        return wf

    def progress(self) -> dict[str, Any]:
        done = 1 if self.status == "SUCCEEDED" else 0
        load = {k: 0 for k in (
            "aborted", "cached", "cpuLoad", "cpuTime", "cpus", "failed", "ignored", "invCtxSwitch", "loadCpus",
            "loadMemory", "loadTasks", "memoryReq", "memoryRss", "peakCpus", "peakMemory", "peakTasks", "pending",
            "readBytes", "retries", "running", "submitted", "succeeded", "volCtxSwitch", "writeBytes")}
        load["succeeded"] = done
        load["running"] = 1 if self.status == "RUNNING" else 0
        load["failed"] = 1 if self.status == "FAILED" else 0
        if self.status in TERMINAL and self.start is not None:
            tasks = self.tasks()
            load["cpuTime"] = sum(t["cpus"] * t["realtime"] for t in tasks)  # cpu-milliseconds, as Seqera
            load["memoryReq"] = sum(t["memory"] for t in tasks)
            load["writeBytes"] = sum(t["writeBytes"] for t in tasks)
            load["cost"] = round(sum(t["cost"] for t in tasks), 6)
        return {"workflowProgress": load, "processesProgress": [], "totalProcesses": 1}

    def task_specs(self) -> list[dict[str, Any]]:
        return [{**DEFAULT_TASK, **task} for task in (self.course.tasks or [{}])]

    def tasks(self) -> list[dict[str, Any]]:
        """``Task`` objects of the spec: none before the run starts; all ended once the run has."""
        if self.start is None:
            return []
        specs = self.task_specs()
        out = []
        for number, spec in enumerate(specs, start=1):
            realtime = int(spec["minutes"] * 60_000)
            task: dict[str, Any] = {
                "taskId": number, "hash": f"{number:02x}/{self.id[:6].lower()}", "process": spec["process"],
                "name": f"{spec['process']} ({number})", "tag": str(number), "attempt": 1,
                "executor": "awsbatch", "cpus": spec["cpus"], "memory": int(spec["memory_gib"] * 2**30),
                "machineType": spec["machine_type"], "priceModel": spec["price_model"],
                "workdir": f"{self.work_dir or '/work'}/{number:02x}/{self.id.lower()}",
                "submit": _iso(self.start), "dateCreated": _iso(self.start),
            }
            if self.status not in TERMINAL:
                task.update(status="RUNNING", start=_iso(self.start))
            else:
                last = number == len(specs)
                status = {"FAILED": "FAILED", "CANCELLED": "ABORTED"}.get(self.status, "COMPLETED") if last \
                    else "COMPLETED"
                hourly = SIM_HOURLY.get((spec["machine_type"], spec["price_model"]), 0.05)
                task.update(status=status, start=_iso(self.start), complete=_iso(self.start + realtime / 1000),
                            realtime=realtime, duration=realtime, writeBytes=spec["write_bytes"],
                            cost=round(hourly * realtime / 3_600_000, 6),
                            exit=self.course.exit_status if status == "FAILED" else 0)
            out.append(task)
        return out

    def summary(self) -> dict[str, Any]:
        return {"id": self.id, "runName": self.run_name, "workspaceId": self.workspace_id, "status": self.status,
                "polls": self.polls, "course": asdict(self.course), "computeEnvId": self.compute_env_id,
                "pipeline": self.pipeline, "revision": self.revision, "workDir": self.work_dir,
                "paramsText": self.params_text}


def _uuid() -> str:
    h = secrets.token_hex(16)
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-a{h[17:20]}-{h[20:]}"


@dataclass
class Fault:
    """The next ``count`` matching API calls answer ``status`` (or hang ``seconds`` first)."""

    status: int | str  # 429, 500, 502, 503 or "hang"
    count: int = 1
    route: str | None = None  # e.g. "GET /workflow"; None: every API route
    workspace_id: int | None = None
    seconds: float = 30.0  # how long a "hang" lasts before the normal answer
    retry_after: int | None = None  # Retry-After header of a 429

    def matches(self, route: str, workspace_id: int | None) -> bool:
        return (self.route is None or self.route == route) and (
            self.workspace_id is None or self.workspace_id == workspace_id)


class SimState:
    """Everything the simulator remembers; reset by ``POST /_sim/reset``.

    :param token: the only Bearer token accepted.
    :param forbidden_workspaces: workspaces the token may not see (403).
    :param max_page: largest ``max`` honoured by ``GET /workflow`` (None: no cap).
    """

    LOG_LIMIT = 200_000  # calls kept in the timed log; the counters are never truncated
    REQUEST_LIMIT = 20_000

    def __init__(self, token: str, forbidden_workspaces: tuple[int, ...] = (), max_page: int | None = None) -> None:
        self._initial = (token, tuple(forbidden_workspaces), max_page)
        self.reset()

    def reset(self) -> None:
        self.token = self._initial[0]
        self.forbidden_workspaces: set[int] = set(self._initial[1])
        self.max_page = self._initial[2]
        self.default_course = Course()
        self.runs: dict[str, Run] = {}
        self.courses: dict[str, Course] = {}
        self.faults: list[Fault] = []
        self.calls: Counter[str] = Counter()
        self.calls_by_workspace: dict[str, Counter[str]] = defaultdict(Counter)
        self.log: list[tuple[float, str, int | None, int]] = []
        self.requests: list[dict[str, Any]] = []
        self.outputs_endpoint_url: str | None = None  # S3 endpoint succeeding runs write outputs to
        self.output_errors: list[str] = []

    # -- configuration
    def configure(self, *, forbidden_workspaces: list[int] | None = None, max_page: int | None = -1,
                  default_course: dict | None = None, token: str | None = None,
                  outputs_endpoint_url: str | None = None) -> None:
        if outputs_endpoint_url is not None:
            self.outputs_endpoint_url = outputs_endpoint_url or None
        if token:
            self.token = token  # a rotation: the old token is refused from now on
        if forbidden_workspaces is not None:
            self.forbidden_workspaces = set(forbidden_workspaces)
        if max_page != -1:
            self.max_page = max_page
        if default_course is not None:
            self.default_course = Course(**default_course)

    def set_course(self, run_name: str, course: Course) -> list[str]:
        """Script ``run_name``: future launches of that name, and runs of it that exist now.

        :return: ids of existing runs that changed course (their poll count restarts).
        """
        self.courses[run_name] = course
        changed = []
        for run in self.runs.values():
            if run.run_name == run_name and run.status not in TERMINAL:
                run.course, run.course_base = course, run.polls
                changed.append(run.id)
        return changed

    # -- records
    def record(self, route: str, workspace_id: int | None, request: dict[str, Any]) -> None:
        self.calls[route] += 1
        self.calls_by_workspace[route][str(workspace_id)] += 1
        if len(self.requests) < self.REQUEST_LIMIT:
            self.requests.append(request)

    def log_answer(self, route: str, workspace_id: int | None, status: int) -> None:
        if len(self.log) < self.LOG_LIMIT:
            self.log.append((time.time(), route, workspace_id, status))

    def take_fault(self, route: str, workspace_id: int | None) -> Fault | None:
        return take_fault(self.faults, lambda fault: fault.matches(route, workspace_id))

    # -- workflow operations
    def create_run(self, *, run_name: str | None, workspace_id: int | None, pipeline: str,
                   revision: str | None = None, work_dir: str | None = None, compute_env_id: str | None = None,
                   params_text: str | None = None, course: Course | None = None) -> Run:
        now = time.time()
        run_id = "".join(secrets.choice(_ID_CHARS) for _ in range(14))
        name = run_name or f"sim_{run_id.lower()}"
        run = Run(id=run_id, run_name=name, workspace_id=workspace_id, pipeline=pipeline, revision=revision,
                  work_dir=work_dir, compute_env_id=compute_env_id, params_text=params_text,
                  course=course or self.courses.get(name) or self.default_course, submit=now, last_updated=now)
        run.on_succeeded = self._write_outputs
        self.runs[run_id] = run
        return run

    def _write_outputs(self, run: Run) -> None:
        """Publish the course's outputs under the run's ``outdir`` (``s3://bucket/prefix``)."""
        outdir = str(run.params.get("outdir") or "")
        if not run.course.outputs or not self.outputs_endpoint_url or not outdir.startswith("s3://"):
            return
        import boto3  # only when a run publishes: the simulator starts without it

        bucket, _, prefix = outdir[len("s3://"):].partition("/")
        # An emulator's endpoint: it takes any key, and the simulator may run without AWS settings.
        s3 = boto3.client("s3", endpoint_url=self.outputs_endpoint_url, region_name="us-east-1",
                          aws_access_key_id=os.environ.get("AWS_ACCESS_KEY_ID", "testing"),
                          aws_secret_access_key=os.environ.get("AWS_SECRET_ACCESS_KEY", "testing"))
        for path, text in run.course.outputs.items():
            key = f"{prefix.rstrip('/')}/{path}" if prefix else path
            try:
                s3.put_object(Bucket=bucket, Key=key, Body=text.encode())
            except Exception as exc:  # noqa: BLE001 - a broken sink is reported, the run still succeeds
                self.output_errors.append(f"{run.run_name}: s3://{bucket}/{key}: {exc}")

    def list_runs(self, workspace_id: int | None, search: str | None) -> list[Run]:
        """Runs of one workspace, newest first, whose name contains ``search`` (case-insensitive)."""
        needle = (search or "").strip().lower()
        found = [r for r in self.runs.values()
                 if r.workspace_id == workspace_id and r.visible_in_lists and needle in r.run_name.lower()]
        found.sort(key=lambda r: r.submit, reverse=True)
        return found

    def get_run(self, run_id: str, workspace_id: int | None) -> Run | None:
        run = self.runs.get(run_id)
        if run is None or run.workspace_id != workspace_id:
            return None
        return run
