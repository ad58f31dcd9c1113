"""Thin operators of the job-run lifecycle; the work lives in :mod:`hatchway.jobs`."""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from hatchway.operators.base import HatchwayOperator
from hatchway.operators.container import TASK_BUILD, XCOM_FAILURE, built_image
from hatchway.operators.seqera import WaitForSeqeraOperator, launched_at_template, mark_launched, wait_event, xcom_template

if TYPE_CHECKING:
    from hatchway.domain.jobs import JobNames, JobPlatformConfig, JobRequest

WAIT_TASK = "wait_for_seqera"
USAGE_TASK = "record_usage"
OUTCOME_KEY = "outcome"


class JobOperator(HatchwayOperator):
    """Base: the job settings, the request from the run's conf, and the job's names.

    :param config_variable: Airflow Variable with the job settings (JSON).
    """

    ui_color = "#e8eef8"

    def __init__(self, *, config_variable: str = "hatchway_jobs_config", **kwargs: Any):
        super().__init__(**kwargs)
        self.config_variable = config_variable

    @cached_property
    def config(self) -> JobPlatformConfig:
        from hatchway.jobs.settings import load_jobs_config

        return load_jobs_config(self.config_variable)

    def request(self, context: Any) -> JobRequest:
        from hatchway.domain.jobs import JobRequest

        return JobRequest.model_validate(context["dag_run"].conf or {})

    def names(self, context: Any) -> JobNames:
        from hatchway.domain.jobs import JobNames

        return JobNames(self.config.namespace, self.request(context).job_id)

    def send(self, context: Any, event: str, trace_name: str | None = None, trace_exit: int | None = None) -> None:
        """Send ``event`` once for this run: the run's record (an Airflow Variable) keeps what was
        sent, so a retried task or a lost delivery report sends nothing twice."""
        from hatchway.domain.jobs import JobEvent
        from hatchway.jobs.status import StatusSender, VariableStatusRecord

        dag_run = context["dag_run"]
        StatusSender(self.config, record=VariableStatusRecord(dag_run.dag_id, dag_run.run_id)).send(
            self.names(context).run_name, JobEvent(event), trace_name, trace_exit)


class ResolveJobOperator(JobOperator):
    """Validate the request, compute the names; Requested -> Created.

    A bad request fails at once without retries (a retry cannot fix it); the failure callback
    then sends Failed with the reason when the job id can be read. So does a job of a namespace
    whose month has reached its ``budget``.
    """

    def execute(self, context: Any) -> dict[str, str]:
        from pydantic import ValidationError

        from hatchway.domain.jobs import request_errors

        try:
            names = self.names(context)
        except ValidationError as exc:
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException(f"invalid request: {request_errors(exc)}") from None
        context["ti"].xcom_push(key="run_name", value=names.run_name)
        self._check_budget()
        self.send(context, "Requested")
        self.send(context, "Created")
        return {"run_name": names.run_name, "work_bucket": names.work_bucket,
                "results_bucket": names.results_bucket, "release": names.release}

    def _check_budget(self) -> None:
        """Refuse the job, with the figures, once the namespace's month has reached its budget
        (``budget`` in the job settings; none: nothing to check). The failure callback sends
        Failed with the reason; nothing was made yet."""
        if self.config.budget is None:
            return  # the store is not opened
        from airflow.sdk.exceptions import AirflowFailException

        from hatchway.store import Store
        from hatchway.usage.runs import month_refusal

        with Store.migrated_from_env() as store:
            refusal = month_refusal(store, self.config.namespace, self.config.budget, self.config.price_table.currency)
        if refusal:
            raise AirflowFailException(f"refused: {refusal}")


class SetupBucketsOperator(JobOperator):
    """Create the work and results buckets (a setup task).

    A bucket that already exists fails the task and is never deleted; a bucket this run made
    before the failure is removed again here, since the teardown does not run when its
    setup failed.
    """

    def execute(self, context: Any) -> dict[str, Any]:
        from hatchway.domain.labels import job_owner
        from hatchway.jobs.buckets import job_buckets

        names = self.names(context)
        buckets = job_buckets(self.config, names, context["run_id"], owner=job_owner(self.request(context)))
        try:
            made = buckets.create()
        except Exception:
            buckets.delete_own([names.work_bucket, names.results_bucket])
            raise
        return made


class TransferInputsOperator(JobOperator):
    """Decrypt the job's Crypt4GH inputs into ``<work bucket>/data`` before the launch (both launchers).

    An ensure: files already transferred (marked with their size and sha256) are skipped, so a
    retry moves only what is missing. A failed file leaves no object; the teardowns send
    Failed and delete the buckets.
    """

    def execute(self, context: Any) -> list[dict[str, Any]]:
        from hatchway.jobs.inputs import transfer_inputs

        done = transfer_inputs(self.config, self.request(context))
        self.log.info("inputs: %d transferred, %d already there", sum(not d["skipped"] for d in done),
                      sum(d["skipped"] for d in done))
        return done


class LaunchJobOperator(JobOperator):
    """Start the Nextflow head job: Seqera Platform's launch API, or the Helm chart.

    Idempotent: a live run that Seqera already knows by its run name (or an installed release)
    is reused, so a retried launch starts nothing twice. Deployed on success.

    :param launcher: ``seqera`` or ``helm`` (templated; default: the deployment's setting).
    """

    template_fields: Sequence[str] = ("launcher",)

    def __init__(self, *, launcher: str | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        self.launcher = launcher

    def execute(self, context: Any) -> dict[str, Any]:
        launcher = self.launcher or self.config.launcher
        result = self._seqera(context) if launcher == "seqera" else self._helm(context)
        mark_launched(context)
        self.send(context, "Deployed")
        return result

    def _seqera(self, context: Any) -> dict[str, Any]:
        from hatchway.domain.helm_values import launch_params, work_dir
        from hatchway.hooks.seqera import SeqeraHook

        names, request = self.names(context), self.request(context)
        scheme = self.config.work_dir_scheme
        # An ensure: a live run of this name (an earlier try's) is returned, not launched again.
        image = built_image(context)
        extra = {}
        if image:
            from hatchway.domain.wave import nextflow_container_config

            extra["configText"] = nextflow_container_config(image)
        workflow_id = SeqeraHook(self.config.seqera_conn_id).launch(
            run_name=names.run_name, pipeline=self.config.pipeline, revision=self.config.revision,
            params=launch_params(request, self.config.namespace, scheme),
            work_dir=work_dir(self.config.namespace, request.job_id, scheme), **extra)
        return {"launcher": "seqera", "workflow_id": workflow_id, "container": image}

    def _helm(self, context: Any) -> dict[str, Any]:
        from airflow.sdk.exceptions import AirflowFailException

        from hatchway.hooks.helm import HelmClusterNotConfigured, HelmHook
        from hatchway.jobs.helm_launch import install_release

        try:
            return install_release(HelmHook(kubernetes_conn_id=self.config.kubernetes_conn_id), self.config,
                                   self.request(context), self.names(context), container_image=built_image(context))
        except HelmClusterNotConfigured as exc:
            # A missing cluster is configuration, not a blip: a retry cannot help.
            self.log.error("%s", exc)
            raise AirflowFailException(str(exc)) from exc


class WaitForJobOperator(WaitForSeqeraOperator):
    """Wait for the job's Seqera run in the triggerer, with the deployment's interval and timeouts.

    The wait starts in the triggerer (``start_from_trigger``): the scheduler hands it straight
    to the triggerer, which renders the run name and launch time from XCom, reads the settings
    from ``hatchway_jobs_config`` and ends the task there, so a waiting job takes no worker slot
    and no worker time. In ``dag.test()`` (which runs ``execute``) the same trigger is deferred
    to, with the settings read when the task runs, not when the DAG file is parsed.
    """

    def __init__(self, *, config_variable: str = "hatchway_jobs_config", **kwargs: Any):
        super().__init__(run_name=xcom_template("resolve", "run_name"),
                         started_at=launched_at_template("launch"),
                         start_from_trigger=True, settings_from=f"jobs:{config_variable}", **kwargs)
        self.config_variable = config_variable

    def execute(self, context: Any) -> dict[str, Any]:
        from hatchway.jobs.settings import load_jobs_config

        config = load_jobs_config(self.config_variable)
        self.use_settings(config)
        self.search_prefix = f"{config.namespace}-"
        return super().execute(context)


class FinishJobOperator(JobOperator):
    """Send the run's final status, exactly once, and fail the run when the job failed.

    A teardown: it also runs when a person cancels the run (marks it failed), so the backend
    hears Failed then too, and the run cannot end ``success`` with its work failed.
    """

    def execute(self, context: Any) -> dict[str, Any]:
        ti = context["ti"]
        states = ti.get_task_states(dag_id=ti.dag_id, run_ids=[ti.run_id]).get(ti.run_id, {})
        wait_state = states.get(WAIT_TASK)
        seqera = wait_event(ti, WAIT_TASK)
        if wait_state == "success":
            outcome = {"event": "Succeeded"}
        else:
            failed = sorted(t for t, s in states.items() if s in ("failed", "upstream_failed") and t != self.task_id)
            trace = seqera.get("trace_name") or (f"{failed[0]} {states[failed[0]]}" if failed else "cancelled")
            build = ti.xcom_pull(task_ids=TASK_BUILD, key=XCOM_FAILURE) if states.get(TASK_BUILD) == "failed" else None
            if build:  # the build's own reason, not "launch upstream_failed"
                trace = f"container build failed: {build['reason']}"
            outcome = {"event": "Failed", "trace_name": trace, "trace_exit": seqera.get("trace_exit")}
        ti.xcom_push(key=OUTCOME_KEY, value=outcome)
        self.send(context, outcome["event"], outcome.get("trace_name"), outcome.get("trace_exit"))
        if outcome["event"] == "Failed":
            # No retry: the message is out, and a retry would send it again.
            from airflow.sdk.exceptions import AirflowFailException

            raise AirflowFailException(f"job {self.names(context).job_id} failed: {outcome['trace_name']}")
        return outcome


class StopLaunchOperator(JobOperator):
    """Cancel the Seqera run if it is still going, or uninstall the Helm release (a teardown)."""

    def execute(self, context: Any) -> dict[str, Any]:
        names = self.names(context)
        launched = context["ti"].xcom_pull(task_ids="launch") or {}
        launcher = launched.get("launcher") or self.config.launcher
        if launcher == "helm":
            from hatchway.hooks.helm import HelmHook

            hook = HelmHook(kubernetes_conn_id=self.config.kubernetes_conn_id)
            if not hook.has_cluster():
                # launch refuses to run without a cluster, so no release can exist.
                return {"uninstalled": None, "reason": "no Kubernetes cluster configured: nothing was installed"}
            hook.uninstall(names.release, self.config.namespace)
            return {"uninstalled": names.release}
        from hatchway.operators.seqera import cancel_seqera_run

        return cancel_seqera_run(names.run_name, seqera_conn_id=self.config.seqera_conn_id)


class RecordUsageOperator(JobOperator):
    """Teardown: record what the job used and its estimated cost in Hatchway's store.

    The job's Seqera run (by its run name: Seqera's launch and a Helm-launched head job both
    report there) gives its tasks; the buckets give the bytes written, counted before
    ``cleanup_buckets`` deletes them. Charged to the deployment's namespace and cost centre;
    a retry replaces the recording."""

    def execute(self, context: Any) -> dict[str, Any]:
        from hatchway.hooks.seqera import SeqeraHook
        from hatchway.jobs.buckets import job_buckets
        from hatchway.operators.usage import record
        from hatchway.usage.runs import seqera_run_usage

        names = self.names(context)
        buckets = job_buckets(self.config, names, context["run_id"])
        work, results = (buckets.stored_bytes(name) for name in (names.work_bucket, names.results_bucket))
        hook = SeqeraHook(self.config.seqera_conn_id)
        try:
            launched = context["ti"].xcom_pull(task_ids="launch") or {}
            usage, seen = seqera_run_usage(hook, names.run_name, self.config.price_table, work_bytes=work,
                                           results_bytes=results, workflow_id=launched.get("workflow_id"))
        finally:
            hook.close()
        return record(context, self.log, usage, seen, run_id=names.job_id, executing=self.config.namespace,
                      calling=None, cost_center=self.config.bucket_cost_center, budget=self.config.budget)


class WriteJobCrateOperator(JobOperator):
    """Teardown: the job's Workflow Run RO-Crate, on any end.

    The pipeline and its revision with the commit Seqera ran, the engine and its version, the
    launch's parameters, each input as the pipeline read it (the decrypted object, with the
    plaintext's size and sha256 the transfer computed, and the Crypt4GH file it came from),
    each result with size and sha256, the end state and its reason, and the usage
    ``record_usage`` measured. A succeeded job's crate is written at the root of its results
    bucket; every crate is kept in Hatchway's store (a failed job's results bucket is deleted).
    Runs before ``cleanup_buckets``; a retry replaces the crate.
    """

    def execute(self, context: Any) -> dict[str, Any]:
        from hatchway.domain.helm_values import launch_params
        from hatchway.domain.wave import parse_time
        from hatchway.domain.workspace import utcnow
        from hatchway.jobs.buckets import job_buckets
        from hatchway.operators.usage import XCOM_ENGINE_RUN
        from hatchway.outputs.crate import CrateFile, RunFacts, build_crate, keep_crate

        ti = context["ti"]
        names, request = self.names(context), self.request(context)
        outcome = ti.xcom_pull(task_ids="finish", key=OUTCOME_KEY) or {
            "event": "Failed", "trace_name": "the run ended before its final state was sent"}
        workflow = ti.xcom_pull(task_ids=USAGE_TASK, key=XCOM_ENGINE_RUN) or {}
        ok = outcome["event"] == "Succeeded"
        folder = request.globus_details.dir_path_on_guest_collection.rstrip("/")
        inputs = [CrateFile(url=d["object"], size=d["plaintext_bytes"], sha256=d["sha256"],
                            description=f"decrypted from the Crypt4GH file {folder}/{d['file']} "
                                        f"({d['encrypted_bytes']} bytes) of the job's Globus collection")
                  for d in ti.xcom_pull(task_ids="transfer_inputs") or []]
        buckets = job_buckets(self.config, names, context["run_id"])
        error = outcome.get("trace_name")
        if error and outcome.get("trace_exit") is not None:
            error = f"{error} (exit status {outcome['trace_exit']})"
        facts = RunFacts(
            run_id=names.job_id, workflow_name=self.config.pipeline.rstrip("/").rsplit("/", 1)[-1],
            workflow_version=self.config.revision, engine="nextflow", engine_version=workflow.get("engine_version"),
            source_url=self.config.pipeline, source_ref=self.config.revision, commit=workflow.get("commit"),
            main_path=None, executing=self.config.namespace, calling=None, deploying=None,
            started=parse_time(workflow.get("start")), ended=parse_time(workflow.get("complete")) or utcnow(),
            state="SUCCEEDED" if ok else "FAILED", ok=ok, error=error,
            parameters=launch_params(request, self.config.namespace, self.config.work_dir_scheme),
            inputs=inputs, outputs=buckets.files(names.results_bucket) if ok else [],
            usage=ti.xcom_pull(task_ids=USAGE_TASK))
        crate = build_crate(facts)
        # A failed job's results bucket is deleted next: its crate lives in the store only.
        location = (buckets.put_crate(names.results_bucket, crate) if ok
                    else f"hatchway-store://{context['dag'].dag_id}/{context['run_id']}")
        keep_crate(context["dag"].dag_id, context["run_id"], names.job_id, location, crate)
        self.log.info("RO-Crate of job %s (%s, %d inputs, %d results) kept at %s", names.job_id, facts.state,
                      len(facts.inputs), len(facts.outputs), location)
        return {"location": location, "state": facts.state, "inputs": len(facts.inputs),
                "outputs": len(facts.outputs)}


class CleanupBucketsOperator(JobOperator):
    """Delete the work bucket always, the results bucket unless the job succeeded (a teardown)."""

    def execute(self, context: Any) -> dict[str, Any]:
        from hatchway.jobs.buckets import job_buckets

        names = self.names(context)
        outcome = context["ti"].xcom_pull(task_ids="finish", key=OUTCOME_KEY) or {"event": "Failed"}
        doomed = [names.work_bucket] + ([] if outcome["event"] == "Succeeded" else [names.results_bucket])
        deleted = job_buckets(self.config, names, context["run_id"]).delete_own(doomed)
        return {"deleted": deleted, "kept": [] if names.results_bucket in doomed else [names.results_bucket]}


class DrainIntakeOperator(JobOperator):
    """One round of intake: drain up to ``max_messages`` within ``max_seconds``.

    :param max_messages: messages per round.
    :param max_seconds: length of a round.
    :param idle_seconds: end the round early after this long without a message.
    """

    def __init__(self, *, max_messages: int = 1000, max_seconds: float = 60.0, idle_seconds: float = 5.0,
                 **kwargs: Any):
        super().__init__(**kwargs)
        self.max_messages = max_messages
        self.max_seconds = max_seconds
        self.idle_seconds = idle_seconds

    def execute(self, context: Any) -> dict[str, Any]:
        from airflow.providers.apache.kafka.hooks.consume import KafkaConsumerHook

        from hatchway.jobs.intake import IntakeDrainer, trigger_in_task
        from hatchway.jobs.status import make_producer

        consumer = KafkaConsumerHook([self.config.intake_topic], self.config.kafka_conn_id).get_consumer()
        producer = make_producer(self.config.kafka_conn_id)
        try:
            summary = IntakeDrainer(self.config, consumer, producer, trigger_in_task).drain(
                self.max_messages, self.max_seconds, self.idle_seconds)
        finally:
            consumer.close()
        self.log.info("intake: %d triggered, %d duplicates, %d dead-lettered", len(summary.triggered),
                      len(summary.duplicates), summary.dead_lettered)
        return summary.to_dict()
