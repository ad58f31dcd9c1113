"""Limits a deployment sets through the environment and DAG files read when they are parsed
(standard library only)."""

from __future__ import annotations

import os
from datetime import timedelta

TIMEOUT_ENV = "HATCHWAY_DAGRUN_TIMEOUT_HOURS"
DEFAULT_TIMEOUT_HOURS = 72.0  # beyond wait's own timeouts (1 h not started + 48 h running), which run the teardowns


def run_timeout() -> timedelta:
    """``dagrun_timeout`` of ``job_run`` and ``wes_run``: ``$HATCHWAY_DAGRUN_TIMEOUT_HOURS`` (72).

    A backstop: the wait's own timeouts fail a task and the teardowns run; this one fails the
    whole run *without* its teardowns, which the ``run_reaper`` sweep then makes up for.
    """
    hours = float(os.environ.get(TIMEOUT_ENV, DEFAULT_TIMEOUT_HOURS))
    if hours <= 0:
        raise ValueError(f"{TIMEOUT_ENV} must be a positive number of hours (got {hours})")
    return timedelta(hours=hours)
