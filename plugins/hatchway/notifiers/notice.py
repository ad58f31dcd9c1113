"""A task callback that turns the task's context into a :class:`~hatchway.domain.notify.Notice`
and sends it on the workspace's channels (``hatchway.notifiers.channels.dispatch``).

Light at import time (DAG files import it while they are parsed): the providers, boto3 and
confluent-kafka are imported when a notice is sent, not before.
"""

from __future__ import annotations

import importlib
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from airflow.sdk import BaseNotifier

if TYPE_CHECKING:
    from hatchway.domain.notify import Notice, NotifySettings

NoticeBuilder = Callable[[Any], "Notice | None"]


def import_builder(path: str) -> NoticeBuilder:
    """The function named ``package.module.function`` (or ``package.module:function``)."""
    module, sep, name = path.partition(":") if ":" in path else path.rpartition(".")
    if not sep or not module or not name:
        raise ValueError(f"{path!r} is not a dotted path to a function (package.module.function)")
    builder = getattr(importlib.import_module(module), name)
    if not callable(builder):
        raise TypeError(f"{path!r} is not callable")
    return builder


class NoticeNotifier(BaseNotifier):
    """Build a notice from the callback's context and dispatch it; a no-op when ``build``
    returns None. Nothing here raises: a notice that cannot be built or sent is logged, and
    the task keeps the state it had.

    ``on_failure_callback=NoticeNotifier("mypkg.notices.job_run_notice")``, or from a task:
    ``NoticeNotifier(build).notify(context)`` (which returns the channels that sent it).

    :param build: ``build(context) -> Notice | None``, or its dotted path (imported on first use).
    :param settings: notify settings (default: the Airflow Variable ``hatchway_notify_config``).
    """

    def __init__(self, build: str | NoticeBuilder, *, settings: NotifySettings | None = None):
        super().__init__()
        if not (callable(build) or isinstance(build, str)):
            raise TypeError("build must be a function or its dotted path")
        self.build = build
        self.settings = settings

    def builder(self) -> NoticeBuilder:
        return import_builder(self.build) if isinstance(self.build, str) else self.build

    def notify(self, context: Any) -> list[str]:
        from hatchway.domain.notify import Notice
        from hatchway.notifiers.channels import describe, dispatch

        try:
            notice = self.builder()(context)
            if notice is not None and not isinstance(notice, Notice):
                raise TypeError(f"build returned a {type(notice).__name__}, not a Notice")
        except Exception as exc:  # noqa: BLE001 - a notice never fails the task that sent it
            # Where, not the traceback's locals: the context holds connections and conf.
            frame = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
            where = f" at {frame.filename}:{frame.lineno}" if frame else ""
            self.log.error("no notice built%s: %s", where, describe(exc))
            return []
        if notice is None:
            self.log.info("nothing to notify for this context")
            return []
        return dispatch(notice, self.settings)
