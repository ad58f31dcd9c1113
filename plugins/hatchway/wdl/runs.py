"""A WDL run on Cromwell: submit it once, place its outputs, remove its intermediates, abort it.

- :func:`ensure_submitted` is an ensure: a retried submit finds the run's workflow by its
  labels (``hatchway-run``) and returns it while it is live or succeeded. Each submission
  asks for a workflow id derived from the run (``requestedWorkflowId``), so a submit whose
  answer was lost is found by that id even before Cromwell's query summary lists it.
- :func:`place_outputs` copies every file output into the destination and checks each copy
  (size, and ETag where both are single-part) before anything is deleted; only then does it
  delete the workflow's execution directory (Cromwell's ``delete_intermediate_output_files``
  works on Google only). Any failure keeps everything and says where it is.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from hatchway import s3 as s3_ops
from hatchway.domain.cromwell import (
    RUN_LABEL,
    WORKSPACE_LABEL,
    CromwellState,
    state,
    submission_labels,
    submission_options,
    workflow_id,
)
from hatchway.hooks.cromwell import CromwellApiError, CromwellHook, CromwellNotFound, CromwellUnavailable

log = logging.getLogger(__name__)
REUSABLE = frozenset(CromwellState) - {CromwellState.FAILED, CromwellState.ABORTED}
LIVE = frozenset({CromwellState.ON_HOLD, CromwellState.SUBMITTED, CromwellState.RUNNING})
MANIFEST = "outputs.json"


class PlacementError(RuntimeError):
    """Outputs could not all be copied and checked: nothing was deleted."""


@dataclass(frozen=True)
class Submission:
    workflow_id: str
    status: str
    reused: bool


def run_workflows(hook: CromwellHook, workspace: str, run_id: str) -> list[dict[str, Any]]:
    """The workflows Cromwell lists for this run of this workspace, newest submission first."""
    found = list(hook.query([("label", f"{RUN_LABEL}:{run_id}"), ("label", f"{WORKSPACE_LABEL}:{workspace}"),
                             ("includeSubworkflows", "false")]))
    return sorted(found, key=lambda r: r.get("submission") or "", reverse=True)


def ensure_submitted(hook: CromwellHook, *, run_id: str, workspace: str, workflow_source: str,
                     dependencies_zip: bytes | None, wdl_version: str | None, inputs: dict[str, Any],
                     options: dict[str, Any], labels: dict[str, str], default_options: dict[str, Any] | None = None,
                     commit: str | None = None, lookups: int = 5, lookup_delay: float = 1.0) -> Submission:
    """Submit the run's workflow unless one that is live or succeeded exists; return it.

    :param lookups: how often to look a submitted id up when the submit's answer was lost
        (a fresh workflow can answer 404 for a moment, Cromwell issue #2671).
    """
    earlier = run_workflows(hook, workspace, run_id)
    for record in earlier:
        if state(record.get("status")) in REUSABLE:
            log.info("run %s already has Cromwell workflow %s (%s): not submitting again", run_id, record["id"],
                     record.get("status"))
            return Submission(record["id"], record["status"], reused=True)
    attempt = len(earlier) + 1
    wanted = workflow_id(run_id, attempt)
    try:  # the summary may lag a submit whose answer was lost: the id settles it
        status = hook.status(wanted)
        if state(status) in REUSABLE:
            return Submission(wanted, status, reused=True)
        wanted = workflow_id(run_id, attempt := attempt + 1)
    except CromwellNotFound:
        pass
    # The requested id makes a submit idempotent (Cromwell refuses a second workflow of that
    # id), so an unanswered submit is looked up, then sent again with the same id.
    retry = hook.endpoint.retry
    for attempt_no in range(1, retry.max_attempts + 1):
        try:
            answer = hook.submit(workflow_source=workflow_source, workflow_inputs=inputs,
                                 workflow_options=submission_options(workspace, options, default_options),
                                 labels=submission_labels(workspace, labels, run_id, commit),
                                 dependencies_zip=dependencies_zip, workflow_type_version=wdl_version,
                                 requested_id=wanted, attempts=1)
            return Submission(answer["id"], answer.get("status", "Submitted"), reused=False)
        except (CromwellUnavailable, CromwellApiError) as exc:
            if isinstance(exc, CromwellApiError) and exc.status not in (400, 409):
                raise
            # The submit may have landed (a lost answer, or a duplicate requested id): look it up.
            for _ in range(lookups):
                try:
                    return Submission(wanted, hook.status(wanted), reused=True)
                except CromwellNotFound:
                    time.sleep(lookup_delay)
            if isinstance(exc, CromwellApiError) or attempt_no == retry.max_attempts:
                raise
            delay = retry.delay(attempt_no)
            log.warning("Cromwell submit of run %s (%s) did not land: %s; sending it again in %.1fs",
                        run_id, wanted, exc, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")


def abort_if_live(hook: CromwellHook, workflow_id_: str) -> dict[str, Any]:
    """Abort the workflow if it has not ended; say what was done."""
    try:
        status = hook.status(workflow_id_)
    except CromwellNotFound:
        return {"workflow_id": workflow_id_, "aborted": False, "status": None}
    current = state(status)
    if current in LIVE:
        answer = hook.abort(workflow_id_)
        log.info("aborted Cromwell workflow %s (was %s, now %s)", workflow_id_, status, answer.get("status"))
        return {"workflow_id": workflow_id_, "aborted": True, "status": answer.get("status")}
    return {"workflow_id": workflow_id_, "aborted": False, "status": status}


# -- outputs


def file_outputs(outputs: Any, name: str = "") -> Iterator[tuple[str, str]]:
    """Every ``s3://`` file among a workflow's outputs (in arrays, maps and pairs too): (output name, URL)."""
    if isinstance(outputs, str):
        if outputs.startswith("s3://"):
            yield name, outputs
    elif isinstance(outputs, dict):
        for key, value in outputs.items():
            yield from file_outputs(value, f"{name}.{key}" if name else key)
    elif isinstance(outputs, list):
        for i, value in enumerate(outputs):
            yield from file_outputs(value, f"{name}[{i}]")


@dataclass
class Placement:
    destination: str
    placed: dict[str, str] = field(default_factory=dict)  # source URL -> destination URL
    outputs: dict[str, Any] = field(default_factory=dict)  # the workflow's outputs, files at their new places
    removed: int = 0
    kept_at: str | None = None


def _relative(url: str, root: str) -> str:
    """Where an output goes under the destination: its path below the workflow's root."""
    bucket, key = s3_ops.split_s3(url, error=PlacementError)
    root_bucket, root_key = s3_ops.split_s3(root.rstrip("/") + "/", error=PlacementError)
    if bucket == root_bucket and key.startswith(root_key):
        return key[len(root_key):]
    return f"external/{bucket}/{key}"


def _same(head_a: dict[str, Any], head_b: dict[str, Any]) -> bool:
    if head_a["ContentLength"] != head_b["ContentLength"]:
        return False
    a, b = head_a.get("ETag", ""), head_b.get("ETag", "")
    return a == b if "-" not in a + b else True  # a multipart copy has another ETag for the same bytes


def place_outputs(s3: Any, *, workflow_id_: str, workflow_root: str, outputs: dict[str, Any],
                  destination: str) -> Placement:
    """Copy the file outputs into ``destination``, check them, then delete the execution directory.

    :param workflow_root: the workflow's ``workflowRoot`` (metadata); it must name the workflow
        id, so nothing outside this workflow's directory is ever deleted.
    :param destination: an ``s3://bucket/prefix/`` URL.
    """
    root = workflow_root.rstrip("/")
    if not root.startswith("s3://") or root.rsplit("/", 1)[-1] != workflow_id_:
        raise PlacementError(f"workflow root {workflow_root!r} is not an s3:// directory of workflow {workflow_id_}: "
                             "not placing outputs, nothing deleted")
    dest_bucket, dest_prefix = s3_ops.split_s3(destination.rstrip("/") + "/", error=PlacementError)
    placement = Placement(destination=destination)
    manifest = _manifest(s3, dest_bucket, dest_prefix)
    if manifest.get("workflow_id") == workflow_id_:
        log.info("outputs of workflow %s were placed in %s before: finishing the clean-up", workflow_id_, destination)
        placement.outputs = manifest.get("outputs") or {}
    else:
        _copy_all(s3, placement, workflow_id_, root, outputs, dest_bucket, dest_prefix)
    root_bucket, root_key = s3_ops.split_s3(root + "/", error=PlacementError)
    placement.removed = s3_ops.empty(s3, root_bucket, root_key, error=PlacementError)
    log.info("placed %d outputs of workflow %s in %s; removed %d objects under %s/", len(placement.placed),
             workflow_id_, destination, placement.removed, root)
    return placement


def _manifest(s3: Any, bucket: str, prefix: str) -> dict[str, Any]:
    """The manifest at the destination ({} if none): written once every output was copied and checked."""
    try:
        return json.loads(s3.get_object(Bucket=bucket, Key=prefix + MANIFEST)["Body"].read())
    except s3.exceptions.NoSuchKey:
        return {}


def _copy_all(s3: Any, placement: Placement, workflow_id_: str, root: str, outputs: dict[str, Any],
              dest_bucket: str, dest_prefix: str) -> None:
    destination = placement.destination
    try:
        for _name, url in file_outputs(outputs):
            bucket, key = s3_ops.split_s3(url, error=PlacementError)
            target = dest_prefix + _relative(url, root)
            s3.copy({"Bucket": bucket, "Key": key}, dest_bucket, target)
            if not _same(s3.head_object(Bucket=bucket, Key=key), s3.head_object(Bucket=dest_bucket, Key=target)):
                raise PlacementError(f"copy of {url} to s3://{dest_bucket}/{target} does not match its source")
            placement.placed[url] = f"s3://{dest_bucket}/{target}"
        placement.outputs = _rewrite(outputs, placement.placed)
        s3.put_object(Bucket=dest_bucket, Key=dest_prefix + MANIFEST, ContentType="application/json",
                      Body=json.dumps({"workflow_id": workflow_id_, "outputs": placement.outputs},
                                      indent=2, sort_keys=True).encode())
    except Exception as exc:
        placement.kept_at = root + "/"
        raise PlacementError(f"outputs of Cromwell workflow {workflow_id_} were not all placed in {destination} "
                             f"({type(exc).__name__}: {exc}); nothing was deleted: the outputs and intermediate "
                             f"files are still under {root}/") from exc


def _rewrite(outputs: Any, placed: dict[str, str]) -> Any:
    """The outputs with each placed file's URL replaced by its new place."""
    if isinstance(outputs, str):
        return placed.get(outputs, outputs)
    if isinstance(outputs, dict):
        return {k: _rewrite(v, placed) for k, v in outputs.items()}
    if isinstance(outputs, list):
        return [_rewrite(v, placed) for v in outputs]
    return outputs
