"""Thin operators of a workspace's Cromwell server (``mode: per_workspace``).

The work lives in :mod:`hatchway.workspace.cromwell_server`; these read the workspace Param,
the ``hatchway_config`` and ``hatchway_cromwell_config`` Variables, and call one step.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowSkipException

from hatchway.operators.workspace import HatchwayAwsOperator, publish_server, unpublish_server

if TYPE_CHECKING:
    from hatchway.domain.cromwell import CromwellSettings


class CromwellServerOperator(HatchwayAwsOperator):
    """Run one step of :class:`hatchway.workspace.cromwell_server.CromwellServer`.

    :param step: ``plan``, ``ensure_secret``, ``ensure_database``, ``ensure_cluster``,
        ``ensure_task_definition``, ``ensure_service``, ``record``; or ``stop`` and ``purge``.
    :param workspace: the workspace name (templated).
    :param purge: for ``stop`` and ``purge``: which of the two runs (templated); ``None`` runs the step.
    """

    template_fields: Sequence[str] = ("workspace", "purge")
    STEPS = ("plan", "ensure_secret", "ensure_database", "ensure_cluster", "ensure_task_definition",
             "ensure_service", "record", "stop", "purge")
    # Steps of the teardown run only on their path: stop without purge, purge with it.
    ONLY_WHEN_PURGE = {"stop": False, "purge": True}

    def __init__(self, *, step: str, workspace: str, purge: bool | str | None = None, **kwargs: Any):
        if step not in self.STEPS:
            raise ValueError(f"unknown Cromwell server step {step!r}; one of {self.STEPS}")
        super().__init__(**kwargs)
        self.step = step
        self.workspace = workspace
        self.purge = purge

    @cached_property
    def cromwell_settings(self) -> CromwellSettings:
        from hatchway.operators.workspace import load_cromwell_settings

        return load_cromwell_settings()

    def execute(self, context: Any) -> Any:
        from hatchway.domain.names import check_workspace_name
        from hatchway.workspace.cromwell_server import CromwellServer

        if self.step in self.ONLY_WHEN_PURGE and self.purge is not None:
            purge = self.purge in (True, "True", "true")
            if purge != self.ONLY_WHEN_PURGE[self.step]:
                raise AirflowSkipException(f"{self.step} runs only with purge={not purge}")
        server = CromwellServer(self.clients, self.config, check_workspace_name(self.workspace),
                                self.cromwell_settings.server)
        result = self.run_step(server, self.step)
        if self.step == "record":
            publish_server(self.workspace, result["endpoint"])
        elif self.step in self.ONLY_WHEN_PURGE:
            unpublish_server(self.workspace)
        return result

