"""In-memory state of the Cromwell simulator: workflows, their scripted course, faults, records.

Plain Python with no web framework, so the rules can be read (and tested) on their own; the
web layer (:mod:`.app`) turns requests into calls on :class:`SimState`.

A workflow's status is a function of how often it has been *observed*, not of wall-clock
time, so tests are deterministic. An observation is a ``GET /{id}/status`` or
``GET /{id}/metadata`` answer (the workflow advances one step, then the answer shows the
new state), a ``/query`` answer that lists it (the answer shows the state *before* the step,
as Cromwell's query reads a summary table that lags the workflow), or ``POST
/_sim/advance/{id}``. With ``after=N`` the first N observations see ``Submitted``, the next N
``Running``, then the outcome (``hang``: ``Running`` forever).

Thread and async safety: every method runs on the server's event loop, and none awaits, so
no two requests interleave inside one (the same discipline as the Seqera simulator). The S3
writes of a finishing workflow are synchronous for that reason: short, and to a local
emulator in tests.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import uuid
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from typing import Any

from include.simulators.chaos import RouteFault, take_fault

STATUSES = ("On Hold", "Submitted", "Running", "Aborting", "Aborted", "Succeeded", "Failed")
TERMINAL = frozenset({"Aborted", "Succeeded", "Failed"})
OUTCOMES = ("succeed", "fail", "hang")
_OUTCOME_STATUS = {"succeed": "Succeeded", "fail": "Failed", "hang": "Running"}
_RANK = {"On Hold": 0, "Submitted": 1, "Running": 2, "Aborting": 3}  # a workflow never moves back
ROUTES = ("submit", "status", "abort", "releaseHold", "outputs", "metadata", "labels", "query", "backends",
          "describe", "version", "engine_status")
BACKEND = "AWSBatch"
MAX_LABEL_LENGTH = 255
UUID_RE = re.compile(r"^[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}$")
DEFAULT_OUTPUTS = {"result": {"path": "call-main/execution/result.txt", "content": "ok"}}
# What Cromwell reports for a task whose runtime section sets nothing (its own defaults).
DEFAULT_RUNTIME = {"cpu": "1", "memory": "2 GB", "continueOnReturnCode": "0", "failOnStderr": "false",
                   "maxRetries": "0"}
_CALL_DIR = re.compile(r"^call-([A-Za-z0-9_]+)/")


class SimError(Exception):
    """An answer in Cromwell's error envelope ``{"status": kind, "message": message}``.

    :param status: HTTP status.
    :param message: the message.
    :param kind: ``fail`` (the client's fault) or ``error`` (the server's); by default
        ``fail`` below 500, as Cromwell's ``failRequest`` / ``errorRequest``.
    """

    def __init__(self, status: int, message: str, kind: str | None = None) -> None:
        super().__init__(message)
        self.status, self.message = status, message
        self.kind = kind or ("fail" if status < 500 else "error")


def iso(ts: float | None) -> str | None:
    """Cromwell's timestamps: UTC, milliseconds, ``Z``."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def label_errors(labels: dict[str, Any]) -> list[str]:
    """Cromwell's label rules (``core/labels/Label.scala``): keys non-empty, keys and values
    strings of at most 255 characters. :return: one message per broken rule."""
    errors = []
    for key, value in labels.items():
        if not isinstance(value, str):
            errors.append(f"Invalid label {key}: {json.dumps(value)} : Labels must be strings. "
                          "A Label key must be non-empty.")
            continue
        if not key:
            errors.append("Invalid label: `` can't be empty")
        for text in (key, value):
            if len(text) > MAX_LABEL_LENGTH:
                errors.append(f"Invalid label: `{text}` is {len(text)} characters. The maximum is {MAX_LABEL_LENGTH}.")
    return errors


def parse_label_filter(text: str) -> tuple[str, str]:
    """``key:value`` of a query's ``label`` / ``labelor`` / ``excludeLabel*`` parameter."""
    key, sep, value = text.partition(":")
    if not sep:
        raise SimError(400, f"Label values do not match allowed pattern label-key:label-value: {text}")
    errors = label_errors({key: value})
    if errors:
        raise SimError(400, ", ".join(errors))
    return key, value


# -- courses
@dataclass
class OutputFile:
    """A file output (or intermediate) a course writes under the workflow root."""

    path: str
    content: str = ""

    def __post_init__(self) -> None:
        if not self.path or self.path.startswith("/") or ".." in self.path.split("/"):
            raise ValueError(f"path {self.path!r} must be relative to the workflow root, without '..'")


@dataclass
class Course:
    """How a workflow behaves as it is observed.

    :param outcome: ``succeed``, ``fail`` or ``hang`` (``Running`` forever).
    :param after: observations that see ``Submitted``, then as many that see ``Running``
        before the outcome (0: the first observation sees the outcome).
    :param failure: message of the workflow's and the failed call's ``failures`` (default:
        Cromwell's return-code message for that call).
    :param outputs: workflow outputs: name (``"result"`` or ``"<wf>.result"``) ->
        ``{"path": "call-<task>/execution/<file>", "content": "<text>"}`` for a file, or any
        other JSON value, reported as is. ``None``: :data:`DEFAULT_OUTPUTS`.
    :param intermediates: more files written under the workflow root at the end, as
        ``"call-<task>/..."`` paths or ``{"path", "content"}``.
    :param return_code: the calls' return code (the failed call's, for ``fail``); default 0
        for ``succeed``, 1 for ``fail``.
    :param match: which workflows take this course: ``{"label": "k:v"}`` and/or
        ``{"name": "<workflow name>"}`` (all given must match); ``None``: the default course.
    :param runtime: runtime attributes per task name (``"*"``: every task) over Cromwell's
        defaults (:data:`DEFAULT_RUNTIME`), reported as strings in each call's metadata.
    :param call_seconds: how long each call reports it ran (``end - start``); ``None``: as long
        as it really took here.
    """

    outcome: str = "succeed"
    after: int = 2
    failure: str | None = None
    outputs: dict[str, Any] | None = None
    intermediates: list[Any] = field(default_factory=list)
    return_code: int | None = None
    match: dict[str, str] | None = None
    runtime: dict[str, dict[str, Any]] | None = None
    call_seconds: float | None = None

    def __post_init__(self) -> None:
        if self.call_seconds is not None and self.call_seconds < 0:
            raise ValueError("call_seconds must be >= 0")
        if self.outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {self.outcome!r}; one of {OUTCOMES}")
        if self.after < 0:
            raise ValueError("after must be >= 0")
        if self.match is not None:
            unknown = set(self.match) - {"label", "name"}
            if unknown or not self.match:
                raise ValueError(f"match takes 'label' ('key:value') and/or 'name', got {sorted(self.match)}")
            if "label" in self.match and ":" not in self.match["label"]:
                raise ValueError("match label must be 'key:value'")
        self.output_files()  # validates paths
        self.intermediate_files()

    @property
    def rc(self) -> int:
        if self.return_code is not None:
            return self.return_code
        return 1 if self.outcome == "fail" else 0

    def status_at(self, observation: int) -> str:
        """Status seen by the ``observation``-th observation (1-based) since the course was set."""
        if observation <= self.after:
            return "Submitted"
        if self.outcome == "hang" or observation <= 2 * self.after:
            return "Running"
        return _OUTCOME_STATUS[self.outcome]

    def output_files(self) -> dict[str, OutputFile | Any]:
        """Outputs by unqualified-or-qualified name: an :class:`OutputFile` or a plain value."""
        raw = DEFAULT_OUTPUTS if self.outputs is None else self.outputs
        return {name: OutputFile(**spec) if isinstance(spec, dict) and "path" in spec else spec
                for name, spec in raw.items()}

    def intermediate_files(self) -> list[OutputFile]:
        return [OutputFile(path=item) if isinstance(item, str) else OutputFile(**item) for item in self.intermediates]

    def tasks(self) -> list[str]:
        """Task names, in order, from the ``call-<task>/`` folders the course writes to (``main`` if none)."""
        found: list[str] = []
        paths = [f.path for f in self.output_files().values() if isinstance(f, OutputFile)]
        for path in paths + [f.path for f in self.intermediate_files()]:
            m = _CALL_DIR.match(path)
            if m and m.group(1) not in found:
                found.append(m.group(1))
        return found or ["main"]

    def runtime_of(self, task: str) -> dict[str, str]:
        given = self.runtime or {}
        return {k: str(v) for k, v in {**DEFAULT_RUNTIME, **given.get("*", {}), **given.get(task, {})}.items()}

    def matches(self, name: str, labels: dict[str, str]) -> bool:
        if self.match is None:
            return False
        if "name" in self.match and self.match["name"] != name:
            return False
        if "label" in self.match:
            key, _, value = self.match["label"].partition(":")
            if labels.get(key) != value:
                return False
        return True


# -- S3 writes
class S3Sink:
    """Writes a workflow's files where Cromwell's AWS Batch backend would put them.

    :param root: ``s3://bucket/prefix``: workflow roots are ``<root>/<name>/<id>``.
    :param endpoint_url: S3 endpoint (moto in tests); credentials come from the environment.
    """

    def __init__(self, root: str, endpoint_url: str | None = None) -> None:
        if not root.startswith("s3://") or len(root) <= len("s3://"):
            raise ValueError(f"root must be s3://bucket[/prefix], got {root!r}")
        self.root = root.rstrip("/")
        self.bucket, _, self.prefix = self.root[len("s3://"):].partition("/")
        self.endpoint_url = endpoint_url
        self._client = None

    def client(self):
        if self._client is None:
            import boto3  # only once a workflow writes: the simulator starts without it
            from botocore.config import Config

            self._client = boto3.client(
                "s3", endpoint_url=self.endpoint_url,
                region_name=os.environ.get("AWS_DEFAULT_REGION") or os.environ.get("AWS_REGION") or "us-east-1",
                config=Config(connect_timeout=3, read_timeout=10, retries={"max_attempts": 2}))
        return self._client

    def put(self, url: str, text: str) -> None:
        bucket, _, key = url[len("s3://"):].partition("/")
        self.client().put_object(Bucket=bucket, Key=key, Body=text.encode())


# -- workflows
@dataclass
class Call:
    """One call (``<wf>.<task>``, shard -1, attempt 1) of a workflow."""

    fqn: str
    task: str
    call_root: str
    job_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    execution_status: str = "Running"
    backend_status: str = "RUNNING"
    start: float | None = None
    end: float | None = None
    return_code: int | None = None
    outputs: dict[str, Any] = field(default_factory=dict)
    failure: str | None = None
    runtime: dict[str, str] = field(default_factory=dict)

    def metadata(self) -> dict[str, Any]:
        answer: dict[str, Any] = {
            "executionStatus": self.execution_status, "backend": BACKEND, "backendStatus": self.backend_status,
            "jobId": self.job_id, "shardIndex": -1, "attempt": 1,
            "stdout": f"{self.call_root}/execution/stdout", "stderr": f"{self.call_root}/execution/stderr",
            "callRoot": self.call_root, "start": iso(self.start), "inputs": {}, "outputs": dict(self.outputs),
            "runtimeAttributes": dict(self.runtime),
        }
        if self.end is not None:
            answer["end"] = iso(self.end)
        if self.return_code is not None:
            answer["returnCode"] = self.return_code
        if self.failure is not None:
            answer["failures"] = [{"message": self.failure, "causedBy": []}]
        return answer


@dataclass
class Workflow:
    """One submitted workflow and everything Cromwell would report about it."""

    id: str
    name: str
    seq: int
    source: str | None
    url: str | None
    inputs: dict[str, Any]
    inputs_text: str
    options_text: str
    labels: dict[str, str]
    labels_text: str
    workflow_type: str
    type_version: str
    course: Course
    root: str
    submission: float
    status: str = "Submitted"
    observations: int = 0
    course_base: int = 0  # observations already counted when the current course was set
    hidden_reads: int = 0  # reads that still answer 404 (Cromwell's summary lag)
    start: float | None = None
    end: float | None = None
    calls: list[Call] = field(default_factory=list)
    outputs: dict[str, Any] = field(default_factory=dict)
    failure: str | None = None
    written: list[str] = field(default_factory=list)
    parent_id: str | None = None  # set for a sub-workflow (``/_sim/workflows/{id}/parent``)
    root_id: str | None = None

    # -- moves
    def observe(self, now: float, sink: S3Sink | None, errors: list[str]) -> None:
        """Count one observation and take the step it brings (terminal and On Hold stay put)."""
        self.observations += 1
        if self.status in TERMINAL or self.status == "On Hold":
            return
        if self.status == "Aborting":
            self._abort_done(now)
            return
        self.move(self.course.status_at(self.observations - self.course_base), now, sink, errors)

    def move(self, new: str, now: float, sink: S3Sink | None, errors: list[str]) -> None:
        if new == self.status or _RANK.get(new, 9) < _RANK.get(self.status, 9):
            return
        if new != "Submitted" and self.start is None:
            self._begin(now, sink, errors)
        if new == "Succeeded":
            self._succeed(now, sink, errors)
        elif new == "Failed":
            self._fail(now, sink, errors)
        self.status = new

    def abort(self, now: float) -> str:
        """Cromwell's abort: ``Aborted`` at once if not started, else ``Aborting`` until the next step.

        :raises SimError: 404 when the workflow already ended (it left Cromwell's workflow store).
        """
        if self.status in TERMINAL:
            raise SimError(404, f"Couldn't abort {self.id} because no workflow with that ID is in progress",
                           kind="error")
        if self.status in ("On Hold", "Submitted"):
            self._abort_done(now)
        else:
            self.status = "Aborting"
        return self.status

    def release_hold(self) -> None:
        if self.status != "On Hold":
            raise SimError(403, f"Couldn't change status of workflow {self.id} to 'Submitted' because the workflow "
                                "is not in 'On Hold' state", kind="error")
        self.status, self.course_base = "Submitted", self.observations

    def set_course(self, course: Course) -> None:
        self.course, self.course_base = course, self.observations

    def _begin(self, now: float, sink: S3Sink | None, errors: list[str]) -> None:
        self.start = now
        self.calls = [Call(fqn=f"{self.name}.{task}", task=task, call_root=f"{self.root}/call-{task}", start=now,
                           runtime=self.course.runtime_of(task)) for task in self.course.tasks()]
        for call in self.calls:
            self._write(sink, errors, f"call-{call.task}/execution/script",
                        f"#!/bin/bash\n# {call.fqn}: simulated by the Cromwell simulator\necho {call.task}\n")

    def _finish_calls(self, now: float, sink: S3Sink | None, errors: list[str], failed: str | None) -> None:
        for call in self.calls:
            broken = failed is not None and call is self.calls[-1]  # a failing course fails its last call
            seconds = self.course.call_seconds
            call.end = now if seconds is None or call.start is None else call.start + seconds
            if broken:
                call.execution_status, call.backend_status, call.failure = "Failed", "FAILED", failed
                call.return_code = self.course.rc
            else:
                call.execution_status, call.backend_status = "Done", "SUCCEEDED"
                call.return_code = self.course.rc if failed is None else 0
            execution = f"call-{call.task}/execution"
            self._write(sink, errors, f"{execution}/stdout", f"{call.fqn} ran (simulated)\n")
            self._write(sink, errors, f"{execution}/stderr", failed + "\n" if broken else "")
            self._write(sink, errors, f"{execution}/rc", f"{call.return_code}\n")
        for item in self.course.intermediate_files():
            self._write(sink, errors, item.path, item.content)
        self.end = max([now] + [c.end for c in self.calls if c.end is not None])  # calls end before their workflow

    def _succeed(self, now: float, sink: S3Sink | None, errors: list[str]) -> None:
        self.end = now
        self._finish_calls(now, sink, errors, failed=None)
        for name, spec in self.course.output_files().items():
            fqn = name if "." in name else f"{self.name}.{name}"
            if isinstance(spec, OutputFile):
                value = self._write(sink, errors, spec.path, spec.content)
                task = _CALL_DIR.match(spec.path)
                for call in self.calls:
                    if task and call.task == task.group(1):
                        call.outputs[fqn.split(".", 1)[1]] = value
            else:
                value = spec
            self.outputs[fqn] = value

    def _fail(self, now: float, sink: S3Sink | None, errors: list[str]) -> None:
        self.end = now
        last = self.calls[-1]
        self.failure = self.course.failure or (
            f"Job {last.fqn}:NA:1 exited with return code {self.course.rc} which has not been declared as a valid "
            "return code. See 'continueOnReturnCode' runtime attribute for more details.")
        self._finish_calls(now, sink, errors, failed=self.failure)

    def _abort_done(self, now: float) -> None:
        self.status, self.end = "Aborted", now
        for call in self.calls:
            if call.end is None:
                call.end, call.execution_status, call.backend_status = now, "Aborted", "Aborted"

    def _write(self, sink: S3Sink | None, errors: list[str], path: str, text: str) -> str:
        """Write one file under the workflow root (when there is an S3 root). :return: its URL/path."""
        url = f"{self.root}/{path}"
        if sink is not None:
            try:
                sink.put(url, text)
                self.written.append(url)
            except Exception as exc:  # noqa: BLE001 - a broken sink is reported; the workflow goes on
                errors.append(f"{self.id}: {url}: {type(exc).__name__}: {exc}")
        return url

    # -- answers
    def all_labels(self) -> dict[str, str]:
        return {"cromwell-workflow-id": f"cromwell-{self.id}", **self.labels}

    def metadata(self) -> dict[str, Any]:
        answer: dict[str, Any] = {
            "id": self.id, "status": self.status, "workflowName": self.name, "workflowRoot": self.root,
            "submission": iso(self.submission), "inputs": dict(self.inputs), "outputs": dict(self.outputs),
            "labels": self.all_labels(), "calls": {c.fqn: [c.metadata()] for c in self.calls},
            "submittedFiles": {"workflow": self.source or "", "inputs": self.inputs_text, "options": self.options_text,
                               "labels": self.labels_text, "workflowType": self.workflow_type,
                               "workflowTypeVersion": self.type_version},
            "rootWorkflowId": self.root_id or self.id,
        }
        if self.parent_id:
            answer["parentWorkflowId"] = self.parent_id
        if self.url:
            answer["submittedFiles"]["workflowUrl"] = self.url
        if self.start is not None:
            answer["start"] = iso(self.start)
        if self.end is not None:
            answer["end"] = iso(self.end)
        if self.failure is not None:
            answer["failures"] = [{"message": self.failure, "causedBy": []}]
        return answer

    def query_result(self, with_labels: bool) -> dict[str, Any]:
        result: dict[str, Any] = {"id": self.id, "name": self.name, "status": self.status,
                                  "submission": iso(self.submission), "metadataArchiveStatus": "Unarchived"}
        if self.start is not None:
            result["start"] = iso(self.start)
        if self.end is not None:
            result["end"] = iso(self.end)
        if with_labels:
            result["labels"] = self.all_labels()
        if self.parent_id:
            result["parentWorkflowId"], result["rootWorkflowId"] = self.parent_id, self.root_id
        return result

    def summary(self) -> dict[str, Any]:
        """Everything the simulator knows about the workflow (``GET /_sim/workflows/{id}``)."""
        return {"id": self.id, "name": self.name, "status": self.status, "observations": self.observations,
                "course_base": self.course_base, "hidden_reads": self.hidden_reads, "course": asdict(self.course),
                "root": self.root, "labels": self.all_labels(), "inputs": self.inputs, "outputs": self.outputs,
                "failure": self.failure, "written": list(self.written), "workflowType": self.workflow_type,
                "workflowTypeVersion": self.type_version, "source": self.source, "url": self.url,
                "submission": iso(self.submission), "start": iso(self.start), "end": iso(self.end),
                "calls": {c.fqn: c.metadata() for c in self.calls}}


class Fault(RouteFault):
    """The next ``count`` calls of ``routes`` (names from :data:`ROUTES`; ``None``: all) answer ``status``."""

    KNOWN_ROUTES = ROUTES


# -- query
_QUERY_KEYS = ("submission", "start", "end", "status", "name", "id", "label", "labelor", "excludeLabelAnd",
               "excludeLabelOr", "additionalQueryResultFields", "includeSubworkflows", "page", "pageSize")
_SINGLE_KEYS = ("submission", "start", "end", "includeSubworkflows", "page", "pageSize")
_NAME_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9_]*$")


@dataclass
class Query:
    """A parsed ``/query``: the parameters of ``WorkflowQueryParameters``, validated like Cromwell."""

    statuses: set[str] = field(default_factory=set)
    names: set[str] = field(default_factory=set)
    ids: set[str] = field(default_factory=set)
    label_and: list[tuple[str, str]] = field(default_factory=list)
    label_or: list[tuple[str, str]] = field(default_factory=list)
    exclude_and: list[tuple[str, str]] = field(default_factory=list)
    exclude_or: list[tuple[str, str]] = field(default_factory=list)
    submission: float | None = None
    start: float | None = None
    end: float | None = None
    with_labels: bool = False
    page: int = 1
    page_size: int | None = None

    @classmethod
    def parse(cls, params: list[tuple[str, str]]) -> Query:
        """:raises SimError: 400 with Cromwell's reasons, all of them at once."""
        unknown = sorted({k for k, _ in params if k not in _QUERY_KEYS})
        if unknown:
            raise SimError(400, f"Unrecognized query keys: {', '.join(unknown)}")
        values: dict[str, list[str]] = {}
        for key, value in params:
            values.setdefault(key, []).append(value)
        errors = [f"{k} may be specified at most once" for k in _SINGLE_KEYS if len(values.get(k, ())) > 1]
        q = cls()
        q.statuses = set(values.get("status", ()))
        bad = sorted(q.statuses - set(STATUSES))
        if bad:
            errors.append(f"Unrecognized status values: {', '.join(bad)}")
        q.names = set(values.get("name", ()))
        if any(not _NAME_RE.match(n) for n in q.names):
            errors.append("Name values do not match allowed workflow naming pattern")
        q.ids = {i.lower() for i in values.get("id", ())}
        if any(not UUID_RE.match(i) for i in q.ids):
            errors.append("Id values do not match allowed workflow id pattern")
        for key, target in (("label", q.label_and), ("labelor", q.label_or), ("excludeLabelAnd", q.exclude_and),
                            ("excludeLabelOr", q.exclude_or)):
            for text in values.get(key, ()):
                try:
                    target.append(parse_label_filter(text))
                except SimError as exc:
                    errors.append(exc.message)
        for key in ("submission", "start", "end"):
            if key in values:
                try:
                    setattr(q, key, datetime.fromisoformat(values[key][0]).timestamp())
                except ValueError:
                    errors.append(f"Value given for {key} is not a valid ISO 8601 date-time: {values[key][0]}")
        extra = set(values.get("additionalQueryResultFields", ()))
        if extra - {"labels", "parentWorkflowId"}:
            errors.append(f"Unrecognized value(s) for additionalQueryResultFields: {', '.join(sorted(extra))}")
        q.with_labels = "labels" in extra
        for text in values.get("includeSubworkflows", ()):
            if text.lower() not in ("true", "false"):
                errors.append(f"includeSubworkflows must be true or false, got {text}")
        for key, attr in (("page", "page"), ("pageSize", "page_size")):
            if key in values:
                try:
                    number = int(values[key][0])
                    if number < 1:
                        raise ValueError
                    setattr(q, attr, number)
                except ValueError:
                    errors.append(f"{key} must be an integer greater than 0, got {values[key][0]}")
        if q.start is not None and q.end is not None and q.start > q.end:
            errors.append("Specified start date is after specified end date")
        if errors:
            raise SimError(400, "\n".join(errors))
        return q

    def matches(self, wf: Workflow) -> bool:
        labels = wf.all_labels()

        def has(pair: tuple[str, str]) -> bool:
            return labels.get(pair[0]) == pair[1]

        return ((not self.statuses or wf.status in self.statuses)
                and (not self.names or wf.name in self.names)
                and (not self.ids or wf.id in self.ids)
                and all(has(p) for p in self.label_and)
                and (not self.label_or or any(has(p) for p in self.label_or))
                and not (self.exclude_and and all(has(p) for p in self.exclude_and))
                and not any(has(p) for p in self.exclude_or)
                and (self.submission is None or wf.submission >= self.submission)
                and (self.start is None or (wf.start is not None and wf.start >= self.start))
                and (self.end is None or (wf.end is not None and wf.end <= self.end)))


class SimState:
    """Everything the simulator remembers; cleared by ``POST /_sim/reset``.

    :param root: ``s3://bucket/prefix`` where workflows write (``None``: report paths, write nothing).
    :param s3_endpoint: S3 endpoint URL for ``root`` (moto in tests).
    """

    LOG_LIMIT = 100_000

    def __init__(self, root: str | None = None, s3_endpoint: str | None = None) -> None:
        self.sink = S3Sink(root, s3_endpoint) if root else None
        self.reset()

    def reset(self) -> None:
        self.workflows: dict[str, Workflow] = {}
        self.default_course = Course()
        self.courses: list[Course] = []  # newest first
        self.faults: list[Fault] = []
        self.unknown_after_submit = 0
        self.calls: dict[str, int] = {}
        self.log: list[dict[str, Any]] = []
        self.submissions: list[dict[str, Any]] = []
        self.write_errors: list[str] = []
        self._seq = 0

    @property
    def exec_root(self) -> str:
        return self.sink.root if self.sink else "/cromwell-executions"

    # -- records
    def record(self, route: str, entry: dict[str, Any]) -> dict[str, Any]:
        """Count a call of ``route`` and keep its log entry (the answer's status is filled in later)."""
        self.calls[route] = self.calls.get(route, 0) + 1
        if len(self.log) < self.LOG_LIMIT:
            self.log.append(entry)
        return entry

    def take_fault(self, route: str) -> Fault | None:
        return take_fault(self.faults, lambda fault: fault.matches(route))

    # -- courses
    def set_course(self, course: Course) -> list[str]:
        """Make ``course`` the default (no ``match``) or the course of matching workflows,
        future and current (those not ended restart their observation count).

        :return: ids of existing workflows that changed course.
        """
        if course.match is None:
            self.default_course = course
            return []
        self.courses.insert(0, course)
        changed = []
        for wf in self.workflows.values():
            if wf.status not in TERMINAL and wf.status != "Aborting" and course.matches(wf.name, wf.all_labels()):
                wf.set_course(course)
                changed.append(wf.id)
        return changed

    def course_for(self, name: str, labels: dict[str, str]) -> Course:
        return next((c for c in self.courses if c.matches(name, labels)), self.default_course)

    # -- workflows
    def submit(self, *, name: str, source: str | None, url: str | None, inputs: dict[str, Any], inputs_text: str,
               options_text: str, labels: dict[str, str], labels_text: str, workflow_type: str, type_version: str,
               on_hold: bool, requested_id: str | None) -> Workflow:
        wf_id = (requested_id or str(uuid.uuid4())).lower()
        if wf_id in self.workflows:
            raise SimError(400, f"Requested workflow IDs are already in use: {wf_id}")
        self._seq += 1
        all_labels = {"cromwell-workflow-id": f"cromwell-{wf_id}", **labels}
        wf = Workflow(id=wf_id, name=name, seq=self._seq, source=source, url=url, inputs=inputs,
                      inputs_text=inputs_text, options_text=options_text, labels=labels, labels_text=labels_text,
                      workflow_type=workflow_type, type_version=type_version,
                      course=self.course_for(name, all_labels), root=f"{self.exec_root}/{name}/{wf_id}",
                      submission=time.time(), status="On Hold" if on_hold else "Submitted",
                      hidden_reads=self.unknown_after_submit)
        self.workflows[wf_id] = wf
        return wf

    def find(self, wf_id: str) -> Workflow:
        """The workflow a read names; a read of a still-hidden one counts and answers 404.

        :raises SimError: 400 for a malformed id, 404 for an unknown or still-hidden one.
        """
        wf = self.lookup(wf_id)
        if wf.hidden_reads > 0:
            wf.hidden_reads -= 1
            raise SimError(404, f"Unrecognized workflow ID: {wf.id}")
        return wf

    def lookup(self, wf_id: str) -> Workflow:
        """The workflow by id, hidden or not (abort goes to Cromwell's workflow store, which has no lag)."""
        if not UUID_RE.match(wf_id):
            raise SimError(400, f"Invalid workflow ID: '{wf_id}'.")
        wf = self.workflows.get(wf_id.lower())
        if wf is None:
            raise SimError(404, f"Unrecognized workflow ID: {wf_id}")
        return wf

    def observe(self, wf: Workflow) -> None:
        wf.observe(time.time(), self.sink, self.write_errors)

    def start_course(self, wf: Workflow) -> None:
        """A course with ``after=0`` ends at once: take that step at submission."""
        if wf.status == "Submitted" and wf.course.after == 0:
            wf.move(wf.course.status_at(1), time.time(), self.sink, self.write_errors)

    def query(self, q: Query) -> tuple[list[Workflow], int]:
        """Matching workflows, newest first, one page; each listed one is then observed.

        :return: the page (answers show each workflow as before its observation) and the
            number of matches over all pages. Hidden workflows are left out and count a read.
        """
        found = []
        for wf in sorted(self.workflows.values(), key=lambda w: w.seq, reverse=True):
            if not q.matches(wf):
                continue
            if wf.hidden_reads > 0:
                wf.hidden_reads -= 1
                continue
            found.append(wf)
        page = found
        if q.page_size is not None:
            page = found[(q.page - 1) * q.page_size:q.page * q.page_size]
        return page, len(found)


# -- womtool describe (miniwdl stands in for womtool)
def detect_version(source: str) -> str:
    """The WDL version a document declares (``draft-2`` when it declares none)."""
    m = re.search(r"^\s*version\s+([^\s#]+)", _strip_comments(source), re.MULTILINE)
    return m.group(1) if m else "draft-2"


def workflow_name(source: str | None, url: str | None) -> str:
    """The workflow's name: ``workflow <name>`` in the source, else its single task, else the URL's file name."""
    text = _strip_comments(source or "")
    for pattern in (r"^\s*workflow\s+([A-Za-z][A-Za-z0-9_]*)", r"^\s*task\s+([A-Za-z][A-Za-z0-9_]*)"):
        m = re.search(pattern, text, re.MULTILINE)
        if m:
            return m.group(1)
    stem = re.sub(r"\.(wdl|cwl)$", "", (url or "").rstrip("/").rsplit("/", 1)[-1])
    stem = re.sub(r"[^A-Za-z0-9_]", "_", stem)
    return stem if stem[:1].isalpha() else "workflow"


def _strip_comments(source: str) -> str:
    return re.sub(r"#[^\n]*", "", source)


def describe_wdl(source: str, inputs_text: str | None) -> dict[str, Any]:
    """What ``POST /api/womtool/v1/describe`` answers for a WDL document, checked with miniwdl.

    Shaped like Cromwell's ``WorkflowDescription`` (``services/womtool``): inputs and outputs
    sorted by name, unqualified; ``default`` the expression's source or ``null``. Errors carry
    the line and column miniwdl reports. Imports are not resolved (the document is loaded
    alone from a temporary folder), as with a describe call that sends no zip.
    """
    import tempfile

    import WDL  # miniwdl: slow to import, only needed here

    version = detect_version(source)
    answer: dict[str, Any] = {
        "valid": False, "validWorkflow": False, "errors": [], "name": "", "inputs": [], "outputs": [],
        "images": [], "submittedDescriptorType": {"descriptorType": "WDL", "descriptorTypeVersion": version},
        "importedDescriptorTypes": [], "meta": {}, "parameterMeta": {}, "isRunnableWorkflow": False}
    with tempfile.TemporaryDirectory(prefix="cromwell-sim-describe-") as tmp:
        path = os.path.join(tmp, "workflow.wdl")
        with open(path, "w") as fh:
            fh.write(source)
        try:
            doc = WDL.load(path, path=[tmp])
        except WDL.Error.MultipleValidationErrors as exc:
            answer["errors"] = [_wdl_error(e) for e in exc.exceptions]
            return answer
        except (WDL.Error.SyntaxError, WDL.Error.ValidationError, WDL.Error.ImportError) as exc:
            answer["errors"] = [_wdl_error(exc)]
            return answer
    callable_ = doc.workflow or (doc.tasks[0] if len(doc.tasks) == 1 else None)
    answer.update(valid=True, validWorkflow=True, isRunnableWorkflow=callable_ is not None)
    if callable_ is None:
        return answer
    answer["name"] = callable_.name
    answer["inputs"] = sorted((_input(b) for b in callable_.available_inputs), key=lambda i: i["name"])
    answer["outputs"] = sorted(
        ({"name": b.name, "valueType": _value_type(b.value), "typeDisplayName": _display(b.value)}
         for b in callable_.effective_outputs), key=lambda o: o["name"])
    input_errors = _input_errors(callable_, inputs_text)
    if input_errors:
        answer.update(valid=False, errors=input_errors)
    return answer


def _wdl_error(exc: Exception) -> str:
    pos = getattr(exc, "pos", None)
    message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    where = f" (line {pos.line}, column {pos.column})" if pos is not None else ""
    return f"{type(exc).__name__}: {message}{where}"


def _input(binding) -> dict[str, Any]:
    decl = binding.value
    return {"name": binding.name, "valueType": _value_type(decl.type), "typeDisplayName": _display(decl.type),
            "optional": bool(decl.type.optional or decl.expr is not None),
            "default": str(decl.expr) if decl.expr is not None else None}


def _value_type(t) -> dict[str, Any]:
    """Cromwell's JSON for a WOM type (``WomTypeJsonSupport``)."""
    import WDL

    if t.optional:
        return {"typeName": "Optional", "optionalType": _value_type(t.copy(optional=False))}
    if isinstance(t, WDL.Type.Array):
        return {"typeName": "Array", "arrayType": _value_type(t.item_type)}
    if isinstance(t, WDL.Type.Map):
        return {"typeName": "Map", "mapType": {"keyType": _value_type(t.item_type[0]),
                                               "valueType": _value_type(t.item_type[1])}}
    if isinstance(t, WDL.Type.Pair):
        return {"typeName": "Pair", "pairType": {"leftType": _value_type(t.left_type),
                                                 "rightType": _value_type(t.right_type)}}
    if isinstance(t, WDL.Type.StructInstance):
        members = t.members or {}
        return {"typeName": "Object", "objectFieldTypes": [{"fieldName": k, "fieldType": _value_type(v)}
                                                           for k, v in members.items()]}
    return {"typeName": _display(t)}


def _display(t) -> str:
    """Cromwell's ``typeDisplayName`` (``Map[String, Int]``, with a space; ``?`` when optional)."""
    import WDL

    suffix = "?" if t.optional else ""
    if isinstance(t, WDL.Type.Array):
        return f"Array[{_display(t.item_type)}]{'+' if t.nonempty else ''}{suffix}"
    if isinstance(t, WDL.Type.Map):
        return f"Map[{_display(t.item_type[0])}, {_display(t.item_type[1])}]{suffix}"
    if isinstance(t, WDL.Type.Pair):
        return f"Pair[{_display(t.left_type)}, {_display(t.right_type)}]{suffix}"
    if isinstance(t, WDL.Type.StructInstance):
        return f"{t.type_name}{suffix}"
    return str(t.copy(optional=False)) + suffix


def _input_errors(callable_, inputs_text: str | None) -> list[str]:
    """What Cromwell's ``createExecutable`` says of an inputs file: not an object, or a
    required input missing."""
    if not inputs_text or not inputs_text.strip():
        return []
    try:
        given = json.loads(inputs_text)
    except ValueError as exc:
        return [f"Input file is not valid yaml nor json: {exc}"]
    if not isinstance(given, dict):
        return ["Submitted inputs couldn't be processed, please check for syntactical errors"]
    missing = [f"{callable_.name}.{b.name}" for b in callable_.required_inputs
               if f"{callable_.name}.{b.name}" not in given]
    return [f"Required workflow input '{name}' not specified" for name in missing]


def digest(value: str | bytes) -> str:
    """SHA-256 (hex) of a text or bytes: how the simulator keeps what it must not store (tokens)
    or need not (file parts)."""
    return hashlib.sha256(value.encode() if isinstance(value, str) else value).hexdigest()
