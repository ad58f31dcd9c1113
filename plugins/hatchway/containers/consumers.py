"""DAGs scheduled on a container's Asset: read the image from the triggering events, launch with it.

``container_build`` adds an event to ``hatchway-container://<workspace>/<name>`` for every image
it builds or reuses, the image in the event's extra. A DAG scheduled on that Asset gets the
events in ``triggering_asset_events``; Airflow may fold several events into one run (a burst of
builds), so the newest one counts.
"""

from __future__ import annotations

import hashlib
from typing import Any


class NoImageEvent(LookupError):
    """The run was not started by an event of the container's Asset (e.g. triggered by hand)."""


def latest_image(triggering_asset_events: Any, uri: str) -> dict[str, Any]:
    """The extra of the newest event of Asset ``uri`` (``image``, ``build_id``, ``expires_at``...).

    :param triggering_asset_events: the task context's ``triggering_asset_events`` (a mapping
        of Asset -> events).
    :raise NoImageEvent: no event of that Asset carries an image.
    """
    found = []
    for asset, events in (triggering_asset_events or {}).items():
        if getattr(asset, "uri", asset) != uri:
            continue
        found += [e for e in events if (getattr(e, "extra", None) or {}).get("image")]
    if not found:
        raise NoImageEvent(f"this run was not started by an image event of {uri}: "
                           "trigger container_build for it instead of this DAG")
    newest = max(found, key=lambda e: (e.timestamp, getattr(e, "id", 0) or 0))
    return dict(newest.extra)


def launch_with_image(image: str, *, run_prefix: str, pipeline: str, revision: str | None,
                      params: dict[str, Any] | None, work_dir: str | None,
                      seqera_conn_id: str = "seqera_default") -> dict[str, str]:
    """Ensure a Seqera run of ``pipeline`` with every process in ``image``.

    The run is named after the image (``<run_prefix>-<12 hex>``), so a redelivered event or a
    retried task finds the run it started instead of launching a second one.
    """
    from hatchway.domain.wave import nextflow_container_config
    from hatchway.hooks.seqera import SeqeraHook

    run_name = f"{run_prefix}-{hashlib.sha256(image.encode()).hexdigest()[:12]}"
    workflow_id = SeqeraHook(seqera_conn_id).launch(run_name=run_name, pipeline=pipeline, revision=revision,
                                                    params=params, work_dir=work_dir,
                                                    configText=nextflow_container_config(image))
    return {"run_name": run_name, "workflow_id": workflow_id, "image": image}
