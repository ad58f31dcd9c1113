"""Drain the intake topic: validate, dead-letter what is bad, start one run per job, commit.

At least once: offsets are committed only after every message of a batch has its run
(or its dead letter); a message seen again after a crash finds its run already there
(the run id comes from the job id) and changes nothing.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

from pydantic import ValidationError

from hatchway.domain.jobs import JobEvent, JobNames, JobPlatformConfig, JobRequest, readable_job_id, request_errors
from hatchway import metrics
from hatchway.jobs.status import StatusSender, produce_and_flush

log = logging.getLogger(__name__)
JOB_RUN_DAG = "job_run"

# trigger(dag_id, run_id, conf) -> True if it made the run, False if the run already existed.
Trigger = Callable[[str, str, dict], bool]
# run_exists(dag_id, run_id) -> whether that run is there (in any state).
RunExists = Callable[[str, str], bool]


class InvalidRequest(ValueError):
    """A message that cannot become a job; ``job_id`` is set when it could still be read.

    :param kind: the reason's class for metrics: ``empty``, ``too_large``, ``not_json`` or ``invalid``.
    """

    def __init__(self, reason: str, job_id: str | None = None, kind: str = "invalid"):
        super().__init__(reason)
        self.reason = reason
        self.job_id = job_id
        self.kind = kind


def parse_request(raw: bytes | None, max_bytes: int) -> JobRequest:
    if raw is None:
        raise InvalidRequest("empty message (no value)", kind="empty")
    if len(raw) > max_bytes:
        raise InvalidRequest(f"message of {len(raw)} bytes is over the {max_bytes}-byte limit",
                             _readable_job_id(raw[:max_bytes * 4]), kind="too_large")
    try:
        data = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InvalidRequest(f"not JSON: {exc}", kind="not_json") from None
    try:
        return JobRequest.model_validate(data)
    except ValidationError as exc:
        raise InvalidRequest(f"schema: {request_errors(exc)}", _readable_job_id(raw)) from None


def _readable_job_id(raw: bytes) -> str | None:
    try:
        data = json.loads(raw)
    except Exception:  # noqa: BLE001 - anything unreadable means no id
        return None
    return readable_job_id(data)


@dataclass
class DrainSummary:
    triggered: list[str] = field(default_factory=list)
    duplicates: list[str] = field(default_factory=list)
    dead_lettered: int = 0
    committed: dict[str, int] = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"triggered": self.triggered, "duplicates": self.duplicates,
                "dead_lettered": self.dead_lettered, "committed": self.committed}


class IntakeDrainer:
    """One drain round over the intake topic.

    :param config: job settings.
    :param consumer: a subscribed confluent-kafka consumer (``enable.auto.commit`` off).
    :param producer: producer for dead letters and status messages.
    :param trigger: makes a ``job_run`` run (see :data:`Trigger`).
    :param run_exists: whether a ``job_run`` run is there (see :data:`RunExists`; default: ask
        Airflow from the running task).
    """

    def __init__(self, config: JobPlatformConfig, consumer, producer, trigger: Trigger,
                 run_exists: RunExists | None = None):
        self.config = config
        self.consumer = consumer
        self.producer = producer
        self.trigger = trigger
        self.run_exists = run_exists or run_exists_in_task
        self.status = StatusSender(config, producer)

    def drain(self, max_messages: int = 1000, max_seconds: float = 30.0, idle_seconds: float = 3.0) -> DrainSummary:
        from confluent_kafka import TopicPartition

        summary = DrainSummary()
        started = last_message = time.monotonic()
        seen = 0
        while seen < max_messages and time.monotonic() - started < max_seconds:
            batch = self.consumer.consume(num_messages=min(100, max_messages - seen), timeout=1.0)
            if not batch:
                # Idle time counts only once the group has given this consumer its partitions:
                # joining can take longer than the idle window.
                if not self.consumer.assignment():
                    last_message = time.monotonic()
                elif time.monotonic() - last_message >= idle_seconds:
                    break
                continue
            last_message = time.monotonic()
            offsets: dict[tuple[str, int], int] = {}
            for message in batch:
                if message.error():
                    log.warning("consumer error: %s", message.error())
                    continue
                seen += 1
                self.handle(message, summary)
                offsets[(message.topic(), message.partition())] = message.offset() + 1
            if offsets:
                # Every message of this batch has its run or its dead letter: now commit.
                self.consumer.commit(offsets=[TopicPartition(t, p, o) for (t, p), o in offsets.items()],
                                     asynchronous=False)
                for (t, p), o in offsets.items():
                    summary.committed[f"{t}/{p}"] = o
        return summary

    def handle(self, message, summary: DrainSummary) -> None:
        raw = message.value()
        metrics.incr("intake.messages")
        try:
            request = parse_request(raw, self.config.max_message_bytes)
        except InvalidRequest as bad:
            self.dead_letter(message, bad)
            summary.dead_lettered += 1
            metrics.incr("intake.dead_letters", reason=bad.kind)
            return
        names = JobNames(self.config.namespace, request.job_id)
        conf = request.model_dump(mode="json")
        if self.trigger(JOB_RUN_DAG, names.dag_run_id, conf):
            summary.triggered.append(request.job_id)
            metrics.incr("intake.triggered")
        else:
            log.info("job %s already has run %s: duplicate ignored", request.job_id, names.dag_run_id)
            summary.duplicates.append(request.job_id)
            metrics.incr("intake.duplicates")
        kind, stamp = message.timestamp()
        if kind and stamp > 0:  # TIMESTAMP_NOT_AVAILABLE is 0
            metrics.timing("intake.lag", time.time() * 1000 - stamp)

    def dead_letter(self, message, bad: InvalidRequest) -> None:
        headers = [("hatchway-error", bad.reason.encode()[:4000]),
                   ("hatchway-source", f"{message.topic()}/{message.partition()}/{message.offset()}".encode()),
                   ("hatchway-received-at", datetime.now(timezone.utc).isoformat().encode())]
        # The value stays the original bytes, untouched, so nothing of the request is lost.
        produce_and_flush(self.producer, self.config.dead_letter_topic, message.key() or b"",
                          message.value() or b"", headers)
        log.warning("dead-lettered %s/%s/%s: %s", message.topic(), message.partition(), message.offset(),
                    bad.reason[:500])
        if bad.job_id:
            names = JobNames(self.config.namespace, bad.job_id)
            if self.run_exists(JOB_RUN_DAG, names.dag_run_id):
                # A damaged redelivery of a job that already has its run: that run speaks for the
                # job, and a Failed here would contradict it (or come after its Succeeded).
                log.warning("job %s has run %s: its invalid copy is only dead-lettered, no Failed sent",
                            bad.job_id, names.dag_run_id)
                return
            self.status.send(names.run_name, JobEvent.FAILED, trace_name=f"invalid request: {bad.reason[:200]}")


def trigger_in_task(dag_id: str, run_id: str, conf: dict) -> bool:
    """Make a DAG run from inside a running task, as the standard provider's
    ``TriggerDagRunOperator`` does (the task runner's ``TriggerDagRun`` request), but many
    times in one task. Returns False when the run already exists."""
    from airflow.sdk.execution_time.comms import ErrorResponse, TriggerDagRun
    from airflow.sdk.execution_time.task_runner import SUPERVISOR_COMMS
    from airflow.sdk.exceptions import ErrorType

    answer = SUPERVISOR_COMMS.send(TriggerDagRun(dag_id=dag_id, run_id=run_id, conf=conf,
                                                 run_after=datetime.now(timezone.utc)))
    if isinstance(answer, ErrorResponse):
        if answer.error == ErrorType.DAGRUN_ALREADY_EXISTS:
            return False
        raise RuntimeError(f"could not trigger {dag_id}/{run_id}: {answer.error} {answer.detail}")
    return True


def run_exists_in_task(dag_id: str, run_id: str) -> bool:
    """Whether ``dag_id`` has the run ``run_id`` (any state), asked from inside a running task."""
    from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

    return RuntimeTaskInstance.get_dr_count(dag_id=dag_id, run_ids=[run_id]) > 0
