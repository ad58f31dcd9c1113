"""Sleep in the triggerer between two tries of a busy workspace lock.

Like the standard ``TimeDeltaTrigger``, but the event carries when the wait began: the
operator's deadline must survive every deferral, and ``dag.test()`` hands a resumed task
only the event, not the kwargs it deferred with.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent


class LockRetryTrigger(BaseTrigger):
    """Fire once after ``delay_seconds`` with ``{"started": started}``.

    :param delay_seconds: how long to wait before the next try.
    :param started: ISO time of the first try, handed back as is.
    """

    def __init__(self, delay_seconds: float, started: str):
        super().__init__()
        self.delay_seconds = delay_seconds
        self.started = started

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (f"{type(self).__module__}.{type(self).__qualname__}",
                {"delay_seconds": self.delay_seconds, "started": self.started})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        await asyncio.sleep(self.delay_seconds)
        yield TriggerEvent({"started": self.started})
