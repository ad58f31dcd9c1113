"""Thin operators of the ``wes_run`` lifecycle: a deployed workflow run for the front door.

The conf is a :class:`hatchway.domain.wes.WesRunConf` the door resolved (calling, deploying
and executing workspace); the settings come from the Variable ``hatchway_wes_config`` when a
task runs, never when the DAG file is parsed.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from hatchway.operators.base import HatchwayOperator
from hatchway.operators.container import built_image
from hatchway.domain.wes_tasks import TASK_LAUNCH
from hatchway.operators.seqera import WaitForSeqeraOperator, launched_at_template, mark_launched

if TYPE_CHECKING:
    from hatchway.domain.wes import WesRunConf, WesSettings
    from hatchway.domain.workspace import PlatformConfig
    from hatchway.workspace.clients import AwsClients

RUN_NAME_TEMPLATE = "wes-{{ dag_run.conf['run_id'] }}"


def load_wes_settings(variable: str | None = None) -> WesSettings:
    """The WES lifecycle's settings, from ``variable`` (default ``hatchway_wes_config``)."""
    from airflow.sdk import Variable

    from hatchway.domain.wes import WES_VARIABLE, WesSettings

    raw = Variable.get(variable or WES_VARIABLE, default=None)
    return WesSettings.model_validate_json(raw) if raw else WesSettings()


class WesOperator(HatchwayOperator):
    """Base: the run's conf and the lifecycle's settings."""

    ui_color = "#eef6e8"

    @cached_property
    def settings(self) -> WesSettings:
        return load_wes_settings()

    def conf(self, context: Any) -> WesRunConf:
        from hatchway.domain.wes import WesRunConf

        return WesRunConf.model_validate(context["dag_run"].conf or {})

    @cached_property
    def platform(self) -> tuple[PlatformConfig, AwsClients]:
        """The deployment's platform config and clients for the platform bucket (read once per task)."""
        from hatchway.operators.workspace import load_config
        from hatchway.workspace.clients import AwsClients

        config = load_config()
        return config, AwsClients.from_connection(self.settings.aws_conn_id, config.region)

    def touch_workspace(self, conf: WesRunConf) -> None:
        """Tell the workspace reaper that the executing workspace is in use (:mod:`hatchway.workspace.activity`)."""
        from hatchway.workspace import activity

        config, clients = self.platform
        activity.touch(clients, config, conf.executing, by=f"wes_run {conf.run_id}")


class PrepareRunOperator(WesOperator):
    """Check the conf and name the run's places (a setup task: the teardowns hang on it)."""

    def execute(self, context: Any) -> dict[str, str]:
        conf = self.conf(context)
        return {"engine_run_name": conf.engine_run_name, "work_dir": conf.work_dir, "outdir": conf.outdir,
                "executing": conf.executing, "calling": conf.calling}


class LaunchWorkflowOperator(WesOperator):
    """Launch the workflow on Seqera Platform (an ensure: a retry finds the run it started).

    The launch carries a Nextflow config that pins the run to the executing workspace: its job
    role, queue, namespace and tags (:func:`hatchway.domain.wes.nextflow_config`).
    """

    def execute(self, context: Any) -> str:
        from airflow.providers.amazon.aws.hooks.base_aws import AwsBaseHook

        from hatchway.domain.wes import nextflow_config
        from hatchway.hooks.seqera import SeqeraHook
        from hatchway.workspace.iam import IAM_PATH

        conf = self.conf(context)
        pipeline, revision = conf.workflow.launch_source
        account = AwsBaseHook(aws_conn_id=self.settings.aws_conn_id, client_type="sts").get_conn() \
            .get_caller_identity()["Account"]
        role_arn = f"arn:aws:iam::{account}:role{IAM_PATH}{conf.context.job_role}"
        run_context = self.costed_context(conf)
        self.touch_workspace(conf)
        config_text = nextflow_config(run_context, role_arn)
        image = built_image(context)
        if image:
            from hatchway.domain.wave import nextflow_container_config

            config_text += nextflow_container_config(image)
        hook = SeqeraHook(self.settings.seqera_conn_id)
        try:
            workflow_id = hook.launch(conf.engine_run_name, pipeline, revision, conf.launch_params(), conf.work_dir,
                                      workspace_id=self.settings.seqera_workspace_id, configText=config_text)
        finally:
            hook.close()
        mark_launched(context)
        self.log.info("WES run %s launched as Seqera run %r (%s) in workspace %s", conf.run_id,
                      conf.engine_run_name, workflow_id, conf.executing)
        return workflow_id

    def costed_context(self, conf: WesRunConf):
        """The run's context with the executing workspace's provisioned cost centre as its cost tag.

        Read here, on a worker, from the workspace record (``workspace_provision`` writes it):
        the door has no AWS access of its own. No record: no cost tag, never the workspace name.
        """
        from hatchway.domain.wes import with_cost_center
        from hatchway.workspace.provision import read_record

        config, clients = self.platform
        record = read_record(clients, config, conf.executing)
        cost_center = record.cost_center if record else None
        if cost_center is None:
            self.log.warning("workspace %s has no record: run %s carries no %s tag", conf.executing, conf.run_id,
                             config.cost_tag_key)
        return with_cost_center(conf.context, config.cost_tag_key, cost_center)


class WaitForWorkflowOperator(WaitForSeqeraOperator):
    """Wait in the triggerer, sharing one list call per Seqera workspace per interval.

    Starts there (``start_from_trigger``, as ``WaitForJobOperator``): no worker slot or worker
    time while the workflow runs; the trigger reads ``hatchway_wes_config`` when it starts.
    """

    def __init__(self, **kwargs: Any):
        super().__init__(run_name=RUN_NAME_TEMPLATE, started_at=launched_at_template(TASK_LAUNCH),
                         search_prefix="wes-", start_from_trigger=True, settings_from="wes", **kwargs)

    def execute(self, context: Any) -> dict[str, Any]:
        settings = load_wes_settings()
        self.use_settings(settings)
        self.workspace_id = settings.seqera_workspace_id
        return super().execute(context)


class HarvestOutputsOperator(WesOperator):
    """Harvest the outputs as STAC Items into the calling workspace's catalog.

    Guarded (:func:`hatchway.outputs.stac.harvest_run`): until it finishes, ``clean_work``
    keeps the outputs, so clearing this task (with its downstream teardowns) finishes the job.
    """

    def execute(self, context: Any) -> str:
        from datetime import datetime, timezone

        from hatchway.outputs.stac import RunOutputs, harvest_run

        conf = self.conf(context)
        result = harvest_run(RunOutputs(run_id=conf.run_id, workflow_name=conf.workflow.name,
                                        workflow_version=conf.workflow.version, calling_workspace=conf.calling,
                                        executing_workspace=conf.executing, bucket=conf.bucket,
                                        finished_at=datetime.now(timezone.utc)),
                             aws_conn_id=self.settings.aws_conn_id)
        self.log.info("harvested %d outputs into %s", len(result.item_ids), result.catalog_url)
        return result.catalog_url


class RecordUsageOperator(WesOperator):
    """Teardown: record what the run used and its estimated cost in Hatchway's store.

    Runs on success, failure and cancel, before ``clean_work`` removes the run's area (whose
    bytes it counts). Usage is charged to the executing workspace and its cost centre; a retry
    replaces the recording. Returns the usage (figures only) for the task's XCom.
    """

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        from hatchway.domain.wes import outputs_prefix, run_prefix
        from hatchway.hooks.seqera import SeqeraHook
        from hatchway.operators.usage import record
        from hatchway.usage.runs import area_bytes, seqera_run_usage
        from hatchway.workspace.provision import read_record

        conf = self.conf(context)
        config, clients = self.platform
        s3 = S3Hook(aws_conn_id=self.settings.aws_conn_id).get_conn()
        stored, outputs = area_bytes(s3, conf.bucket, run_prefix(conf.executing, conf.run_id),
                                     split=outputs_prefix(conf.executing, conf.run_id))
        hook = SeqeraHook(self.settings.seqera_conn_id)
        try:
            usage, seen = seqera_run_usage(hook, conf.engine_run_name, config.price_table,
                                           workspace_id=self.settings.seqera_workspace_id,
                                           work_bytes=stored - outputs, results_bytes=outputs,
                                           workflow_id=context["ti"].xcom_pull(task_ids=TASK_LAUNCH))
        finally:
            hook.close()
        workspace = read_record(clients, config, conf.executing)
        return record(context, self.log, usage, seen, run_id=conf.run_id, executing=conf.executing,
                      calling=conf.calling, cost_center=workspace.cost_center if workspace else None,
                      budget=config.budgets.get(conf.executing))


class WriteCrateOperator(WesOperator):
    """Teardown: write the run's Workflow Run RO-Crate beside its outputs, on any end.

    ``<calling>/processing-results/<run id>/ro-crate-metadata.json`` (linked from the STAC
    catalog when the harvest wrote one), kept in Hatchway's store for the door's
    ``GET /runs/{id}/ro-crate``. Runs before ``clean_work``: the inputs are read for their
    checksums while the run's area still exists. A rewrite (a retry) replaces the crate.
    """

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        from hatchway.domain.wes import catalog_prefix
        from hatchway.domain.wes_tasks import TASK_USAGE
        from hatchway.hooks.seqera import SeqeraHook
        from hatchway.notifiers.notices import wes_run_notice
        from hatchway.domain.wave import parse_time
        from hatchway.domain.workspace import utcnow
        from hatchway.operators.usage import XCOM_ENGINE_RUN
        from hatchway.outputs.crate import RunFacts, build_crate, keep_crate, s3_inputs, stac_outputs, write_crate

        conf = self.conf(context)
        ended = wes_run_notice(context)  # the end state as the run's notice tells it
        workflow = context["ti"].xcom_pull(task_ids=TASK_USAGE, key=XCOM_ENGINE_RUN)
        if workflow is None:  # record_usage did not get that far: ask Seqera here
            from hatchway.usage.runs import seqera_run_usage

            hook = SeqeraHook(self.settings.seqera_conn_id)
            try:
                workflow = seqera_run_usage(hook, conf.engine_run_name, self.platform[0].price_table,
                                            workspace_id=self.settings.seqera_workspace_id)[1]["workflow"]
            finally:
                hook.close()
        s3 = S3Hook(aws_conn_id=self.settings.aws_conn_id).get_conn()
        prefix = catalog_prefix(conf.calling, conf.run_id)
        source, revision = conf.workflow.launch_source
        reason = (ended.details.get("reason") if ended else None) or workflow.get("error")
        facts = RunFacts(
            run_id=conf.run_id, workflow_name=conf.workflow.name, workflow_version=conf.workflow.version,
            engine="nextflow", engine_version=workflow.get("engine_version"), source_url=source, source_ref=revision,
            commit=workflow.get("commit"), main_path=None, executing=conf.executing, calling=conf.calling,
            deploying=conf.deploying, started=parse_time(workflow.get("start")),
            ended=parse_time(workflow.get("complete")) or utcnow(), state=ended.state if ended else "UNKNOWN",
            ok=bool(ended and ended.ok), error=reason, parameters=conf.params, inputs=s3_inputs(s3, conf.params),
            outputs=stac_outputs(s3, conf.bucket, prefix),
            usage=context["ti"].xcom_pull(task_ids=TASK_USAGE))
        crate = build_crate(facts)
        location = write_crate(s3, conf.bucket, prefix, crate)
        keep_crate(context["dag"].dag_id, context["run_id"], conf.run_id, location, crate)
        self.log.info("RO-Crate of run %s (%s, %d outputs) written to %s", conf.run_id, facts.state,
                      len(facts.outputs), location)
        return {"location": location, "state": facts.state, "outputs": len(facts.outputs)}


class StopWorkflowOperator(WesOperator):
    """Teardown: cancel the Seqera run if it is still live (after a failure or a cancel)."""

    def execute(self, context: Any) -> dict[str, Any]:
        from hatchway.operators.seqera import cancel_seqera_run

        conf = self.conf(context)
        return cancel_seqera_run(conf.engine_run_name, workspace_id=self.settings.seqera_workspace_id,
                                 seqera_conn_id=self.settings.seqera_conn_id)


class CleanWorkOperator(WesOperator):
    """Teardown: delete the run's whole area in the executing workspace (work dir and raw outputs).

    Outputs worth keeping were copied into the calling workspace's catalog by the harvest. If
    the harvest started and did not finish, the area is kept (the outputs may be the only
    copy) and the log names where they are; clearing ``harvest_outputs`` with its downstream
    finishes the harvest, and this task then removes the area.
    """

    def execute(self, context: Any) -> dict[str, Any]:
        from hatchway.outputs.stac import clean_run_area

        conf = self.conf(context)
        done = clean_run_area(conf.bucket, conf.executing, conf.run_id, aws_conn_id=self.settings.aws_conn_id)
        self.touch_workspace(conf)
        if done.kept_outputs:
            self.log.warning("harvest of run %s did not finish: outputs kept at %s (clear %s to finish it; "
                             "this task then removes s3://%s/%s)", conf.run_id, done.kept_outputs,
                             "harvest_outputs", conf.bucket, conf.run_prefix)
        else:
            self.log.info("removed %d objects under s3://%s/%s", done.removed, conf.bucket, conf.run_prefix)
        return {"removed": done.removed, "kept_outputs": done.kept_outputs}
