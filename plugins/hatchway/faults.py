"""Fault injection for lifecycle tests and game days.

Setting ``HATCHWAY_FAIL_STEP=<task step>`` in a worker's environment makes that step
fail right *after* its work is done, the worst moment for leaks: the resource exists
and the task failed. Unset (the default), this does nothing.
"""

from __future__ import annotations

import os

ENV = "HATCHWAY_FAIL_STEP"


class InjectedFault(RuntimeError):
    """Raised on purpose by :func:`inject`."""


def inject(step: str) -> None:
    if os.environ.get(ENV) == step:
        raise InjectedFault(f"fault injected after step {step!r} ({ENV})")
