"""Hatchway's metrics, sent through Airflow's own Stats facade.

Whatever ``[metrics]`` configures for Airflow (StatsD, Datadog or OpenTelemetry, its prefix,
allow and block lists) carries these too; with metrics off they cost a no-op call. Every
name starts ``hatchway.``; its dimensions are the last parts of the name (plain StatsD has no
tags) and are also passed as tags for backends that use them::

    hatchway.intake.messages                       counter: intake messages read
    hatchway.intake.triggered / .duplicates        counter: runs made / redeliveries ignored
    hatchway.intake.lag                            timer (ms): message timestamp -> handled
    hatchway.intake.dead_letters.<reason>          counter: reason is empty, too_large, not_json or invalid
    hatchway.poller.calls.<engine>.<endpoint>      counter: engine API calls of the shared poller
    hatchway.poller.errors.<engine>.<endpoint>     counter: rounds that failed after their retries
    hatchway.runs_waiting.<engine>                 gauge: runs waiting in this triggerer, per round
    hatchway.status.sent.<event>                   counter: job status messages produced
    hatchway.notices.sent.<channel> / .failed.<channel>   counter: notifier deliveries
    hatchway.teardown.failures.<dag_id>.<task_id>  counter: teardown tasks that failed
    hatchway.reaper.<action>                       counter: what a reaper pass did (idle, expired, orphans deleted, runs cancelled)

A metric never fails the work: errors of the backend are logged and dropped.
"""

from __future__ import annotations

import logging
import re
from urllib.parse import urlsplit

log = logging.getLogger(__name__)

PREFIX = "hatchway"
_UNSAFE = re.compile(r"[^A-Za-z0-9_-]+")


def part(value: object) -> str:
    """One name part: anything but letters, digits, ``_`` and ``-`` becomes ``_`` (so a
    dotted value cannot add levels to the name)."""
    return _UNSAFE.sub("_", str(value)).strip("_")[:80] or "none"


def endpoint_label(base_url: str) -> str:
    """``https://api.cloud.seqera.io/api`` -> ``api_cloud_seqera_io``; the port is kept when given."""
    split = urlsplit(base_url if "://" in base_url else f"//{base_url}")
    return part(split.netloc or base_url)


def _name(metric: str, dims: dict[str, object]) -> tuple[str, dict[str, str]]:
    tags = {k: str(v) for k, v in dims.items()}
    return ".".join([PREFIX, metric, *(part(v) for v in dims.values())]), tags


def _stats():
    from airflow.sdk.observability import stats

    return stats


def incr(metric: str, count: int = 1, **dims: object) -> None:
    """Add ``count`` to ``hatchway.<metric>.<dims...>``."""
    if count <= 0:
        return
    name, tags = _name(metric, dims)
    try:
        _stats().incr(name, count, tags=tags or None)
    except Exception:  # noqa: BLE001 - metrics never fail the work
        log.debug("metric %s not sent", name, exc_info=True)


def gauge(metric: str, value: float, **dims: object) -> None:
    """Set ``hatchway.<metric>.<dims...>`` to ``value``."""
    name, tags = _name(metric, dims)
    try:
        _stats().gauge(name, value, tags=tags or None)
    except Exception:  # noqa: BLE001 - metrics never fail the work
        log.debug("metric %s not sent", name, exc_info=True)


def timing(metric: str, milliseconds: float, **dims: object) -> None:
    """Record ``milliseconds`` under ``hatchway.<metric>.<dims...>``."""
    name, tags = _name(metric, dims)
    try:
        _stats().timing(name, max(0.0, milliseconds), tags=tags or None)
    except Exception:  # noqa: BLE001 - metrics never fail the work
        log.debug("metric %s not sent", name, exc_info=True)
