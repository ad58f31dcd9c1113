"""The front door's view of Airflow: trigger a run (``wes_run``, ``cromwell_run``), read it, fail it.

The door runs inside Airflow's api-server (a plugin ``fastapi_apps`` entry), so it uses the
same service functions the public REST API v2 uses, on the metadata DB, rather than calling
that API over HTTP with a credential of its own. Cancelling goes through
``patch_dag_run_state``, exactly what ``PATCH /api/v2/dags/{dag}/dagRuns/{run}`` with
``state=failed`` does: running tasks are failed, teardowns run.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from hatchway.domain.wes import WES_DAG_ID, WesRunConf


class DagNotReady(RuntimeError):
    """The ``wes_run`` DAG is not parsed or is paused: a platform problem, not the caller's."""


@dataclass(frozen=True)
class TaskView:
    task_id: str
    state: str | None
    start_date: datetime | None
    end_date: datetime | None
    try_number: int


@dataclass(frozen=True)
class RunView:
    """What Airflow knows of one DAG run (None fields: no such run yet)."""

    state: str | None
    start_date: datetime | None = None
    end_date: datetime | None = None
    tasks: dict[str, TaskView] = field(default_factory=dict)

    @property
    def task_states(self) -> dict[str, str | None]:
        return {t: v.state for t, v in self.tasks.items()}


class AirflowRuns:
    """Trigger, read and fail runs of one DAG through Airflow's own service functions.

    :param dag_id: the DAG the door's runs belong to.
    """

    def __init__(self, dag_id: str = WES_DAG_ID) -> None:
        self.dag_id = dag_id

    def trigger(self, conf: WesRunConf, *, user: str) -> str:
        """Create the DAG run (an ensure: the run id is derived from the WES run id)."""
        return self.start(conf.dag_run_id, conf.model_dump(mode="json"), user=user,
                          note=f"WES run {conf.run_id} called by {conf.calling}")

    def start(self, dag_run_id: str, conf: dict[str, Any], *, user: str, note: str) -> str:
        """Create the DAG run ``dag_run_id`` with ``conf`` unless it exists (an ensure)."""
        from airflow.api.common.trigger_dag import trigger_dag
        from airflow.exceptions import DagNotFound, DagRunAlreadyExists
        from airflow.models.dag import DagModel
        from airflow.utils.session import create_session
        from airflow.utils.types import DagRunTriggeredByType

        with create_session() as session:
            model = DagModel.get_current(self.dag_id, session=session)
            if model is None:
                raise DagNotReady(f"DAG {self.dag_id!r} is not parsed yet")
            if model.is_paused:
                raise DagNotReady(f"DAG {self.dag_id!r} is paused: unpause it to accept WES runs")
            try:
                trigger_dag(self.dag_id, triggered_by=DagRunTriggeredByType.REST_API, run_id=dag_run_id,
                            conf=conf, triggering_user_name=user[:100], note=note, session=session)
            except DagRunAlreadyExists:
                pass
            except DagNotFound as exc:
                raise DagNotReady(str(exc)) from None
        return dag_run_id

    def exists(self, dag_run_id: str) -> bool:
        return self.view(dag_run_id).state is not None

    def xcom(self, dag_run_id: str, task_id: str, key: str = "return_value") -> Any:
        """One XCom value of the run (None when there is none)."""
        from sqlalchemy import select

        from airflow.models.xcom import XComModel
        from airflow.utils.session import create_session

        with create_session() as session:
            value = session.execute(
                select(XComModel.value).where(XComModel.dag_id == self.dag_id, XComModel.run_id == dag_run_id,
                                              XComModel.task_id == task_id, XComModel.key == key,
                                              XComModel.map_index == -1)
            ).scalar_one_or_none()
        return value

    def view(self, dag_run_id: str) -> RunView:
        return self.views([dag_run_id])[dag_run_id]

    def views(self, dag_run_ids: list[str]) -> dict[str, RunView]:
        """What Airflow knows of several runs of the DAG, in two queries whatever their number
        (a page of ``GET /runs``): the runs, then their tasks.

        :return: a view per id asked for (``state`` None: no such run).
        """
        from sqlalchemy import select

        from airflow.models.dagrun import DagRun
        from airflow.models.taskinstance import TaskInstance
        from airflow.utils.session import create_session

        wanted = list(dict.fromkeys(dag_run_ids))
        if not wanted:
            return {}
        with create_session() as session:
            runs = {r.run_id: r for r in session.execute(
                select(DagRun.run_id, DagRun.state, DagRun.start_date, DagRun.end_date)
                .where(DagRun.dag_id == self.dag_id, DagRun.run_id.in_(wanted))
            )}
            rows = session.execute(
                select(TaskInstance.run_id, TaskInstance.task_id, TaskInstance.state, TaskInstance.start_date,
                       TaskInstance.end_date, TaskInstance.try_number)
                .where(TaskInstance.dag_id == self.dag_id, TaskInstance.run_id.in_(list(runs)),
                       TaskInstance.map_index == -1)
            ).all() if runs else []
        tasks: dict[str, dict[str, TaskView]] = {}
        for r in rows:
            tasks.setdefault(r.run_id, {})[r.task_id] = TaskView(r.task_id, _value(r.state), r.start_date,
                                                                  r.end_date, r.try_number or 0)
        return {run_id: RunView(state=_value(runs[run_id].state), start_date=runs[run_id].start_date,
                                end_date=runs[run_id].end_date, tasks=tasks.get(run_id, {}))
                if run_id in runs else RunView(state=None) for run_id in wanted}

    def fail(self, dag_run_id: str) -> bool:
        """Mark the run failed (running tasks fail, teardowns still run). False: already ended."""
        from sqlalchemy import select

        from airflow.api_fastapi.core_api.datamodels.dag_run import DagRunMutableStates
        from airflow.api_fastapi.core_api.services.public.dag_run import patch_dag_run_state
        from airflow.models.dagbag import DBDagBag
        from airflow.models.dagrun import DagRun
        from airflow.utils.session import create_session

        with create_session() as session:
            run = session.scalars(
                select(DagRun).where(DagRun.dag_id == self.dag_id, DagRun.run_id == dag_run_id)
            ).one_or_none()
            if run is None or _value(run.state) in ("success", "failed"):
                return False
            dag = DBDagBag().get_dag_for_run(run, session=session)
            if dag is None:
                raise DagNotReady(f"no serialized DAG for {self.dag_id}/{dag_run_id}")
            patch_dag_run_state(dag=dag, dag_run=run, state=DagRunMutableStates.FAILED, session=session)
        return True


def _value(state: Any) -> str | None:
    return None if state is None else str(getattr(state, "value", state))
