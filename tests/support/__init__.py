"""Helpers shared by the tests: run a DAG for real, read what it left behind."""

from __future__ import annotations

import copy
import functools
import json
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]


@functools.lru_cache(maxsize=1)
def _dagbag():
    from airflow.dag_processing.dagbag import DagBag

    bag = DagBag(dag_folder=str(REPO / "dags"))
    assert not bag.import_errors, bag.import_errors
    return bag


def register_dags(*unpause: str) -> None:
    """What ``airflow dags reserialize`` and ``airflow dags unpause <dag id>...`` do, in this
    process (two CLI processes cost ~20 s on a busy machine): every DAG of the bundles serialized
    into the metadata DB, so that runs can be triggered as the door and the intake do; the
    named DAGs unpaused."""
    from sqlalchemy import select, update

    from airflow.dag_processing.bundles.base import unpack_bundle_version
    from airflow.dag_processing.bundles.manager import DagBundlesManager
    from airflow.dag_processing.dagbag import BundleDagBag, sync_bag_to_db
    from airflow.models.dag import DagModel
    from airflow.utils.session import create_session

    with create_session() as session:
        manager = DagBundlesManager()
        manager.sync_bundles_to_db(session=session)
        session.commit()
        for bundle in manager.get_all_dag_bundles():
            bundle.initialize()
            bag = BundleDagBag(bundle.path, bundle_path=bundle.path, bundle_name=bundle.name)
            assert not bag.import_errors, bag.import_errors
            version, version_data = unpack_bundle_version(bundle.get_current_version(), bundle)
            sync_bag_to_db(bag, bundle.name, bundle_version=version, version_data=version_data, session=session)
        session.commit()
        if unpause:
            session.execute(update(DagModel).where(DagModel.dag_id.in_(unpause)).values(is_paused=False))
            missing = set(unpause) - set(session.scalars(
                select(DagModel.dag_id).where(DagModel.dag_id.in_(unpause))))
            assert not missing, f"not registered: {missing}"


def run_dag(dag_id: str, **conf: Any):
    """Run one DAG run with ``dag.test()`` (tasks, deferrals and teardowns run in-process)."""
    return _run(dag_id, None, conf)


def run_dag_retrying(dag_id: str, retry_delay: float = 0, **conf: Any):
    """:func:`run_dag` with one retry, ``retry_delay`` seconds later, for every task (the DAG's
    own retries are off in the tests): a failed try is tried again, in the same run, as in
    production."""
    return _run(dag_id, retry_delay, conf)


def _run(dag_id: str, retry_delay: float | None, conf: dict[str, Any]):
    from datetime import datetime, timedelta, timezone

    # dag.test() folds run_conf into the Params it stores for the DAG, and later runs of
    # the same DAG in this process render with them: every run names every default.
    dag = copy.deepcopy(_dagbag().get_dag(dag_id))
    if retry_delay is not None:
        for task in dag.tasks:
            task.retries, task.retry_exponential_backoff = 1, False
            task.retry_delay = timedelta(seconds=retry_delay)
    defaults = {name: dag.params.get_param(name).value for name in dag.params
                if dag.params.get_param(name).has_value}
    # A distinct run_after keeps runs of the same DAG in one test apart.
    return dag.test(run_after=datetime.now(timezone.utc), run_conf={**defaults, **conf})


def provision_steps(workspace) -> None:
    """The ensure steps of ``workspace_provision`` on a :class:`hatchway.workspace.provision.Workspace`,
    in the DAG's order and with its inputs, in this process (no lock, no Airflow)."""
    workspace.plan()
    network = workspace.ensure_network()
    workspace.ensure_storage()
    role = workspace.ensure_job_role()
    compute = workspace.ensure_compute_environment(network)
    queue = workspace.ensure_job_queue(compute["arn"])
    workspace.ensure_user(queue["arn"], role["job_role_arn"])
    workspace.ensure_access_key(queue["arn"])
    workspace.record()


def task_states(dag_run) -> dict[str, str]:
    return {key: str(ti.state) for key, ti in _task_instances(dag_run).items()}


def try_numbers(dag_run) -> dict[str, int]:
    """Each task of a run -> the try it ended on (1: never retried)."""
    return {key: ti.try_number for key, ti in _task_instances(dag_run).items()}


def _task_instances(dag_run) -> dict:
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session

    with create_session() as session:
        tis = session.query(TaskInstance).filter(TaskInstance.dag_id == dag_run.dag_id,
                                                  TaskInstance.run_id == dag_run.run_id).all()
        session.expunge_all()
        return {ti.task_id if ti.map_index < 0 else f"{ti.task_id}[{ti.map_index}]": ti for ti in tis}


def xcom_values(dag_run) -> dict[str, Any]:
    """Every XCom of a run, decoded, keyed ``task_id:key``."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = session.query(XComModel).filter(XComModel.dag_id == dag_run.dag_id,
                                               XComModel.run_id == dag_run.run_id).all()
        return {f"{r.task_id}:{r.key}": r.value for r in rows}


def all_xcom_text() -> str:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        return "\n".join(json.dumps(r.value, default=str) for r in session.query(XComModel).all())


def all_log_text(home: Path) -> str:
    return "\n".join(p.read_text(errors="replace") for p in (home / "logs").rglob("*") if p.is_file())


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


READ_PREFIXES = ("describe", "list", "get", "head", "lookup", "search")


def recorded_calls(recording: Path) -> list[tuple[str, str, bool]]:
    """Calls the moto server recorded, as ``(service, action, mutating)``.

    The service comes from the SigV4 credential scope; the action from the Query body
    (``Action=``), the JSON target header, or the REST path (Batch) and method (S3).
    """
    import base64
    import re
    from urllib.parse import parse_qs, urlparse

    calls = []
    if not recording.exists():
        return calls
    for line in recording.read_text().splitlines():
        if not line.strip():
            continue
        rec = json.loads(line)
        headers = rec.get("headers", {})
        scope = re.search(r"Credential=[^/]+/\d+/[^/]+/([^/]+)/", headers.get("Authorization", ""))
        if not scope:
            continue  # moto's own control API
        service = scope.group(1)
        body = rec.get("body") or ""
        if rec.get("body_encoded") and body:
            body = base64.b64decode(body).decode(errors="replace")
        url = urlparse(rec["url"])
        path = url.path
        if "X-Amz-Target" in headers:
            action = headers["X-Amz-Target"].split(".")[-1]
        elif "Action=" in body:
            action = parse_qs(body)["Action"][0]
        elif service == "s3":
            action = f"{rec['method']} {path}" + (f"?{url.query}" if url.query else "")
            calls.append((service, action, rec["method"] not in ("GET", "HEAD")))
            continue
        else:
            action = path.rstrip("/").split("/")[-1] if "/v1/" in path else f"{rec['method']} {path}"
            if path.startswith("/v1/tags"):
                action = "ListTagsForResource" if rec["method"] == "GET" else "TagResource"
        calls.append((service, action, not action.lower().startswith(READ_PREFIXES)))
    return calls


def reset_recording(url: str) -> None:
    import requests

    requests.post(f"{url}/moto-api/recorder/reset-recording", timeout=10).raise_for_status()
