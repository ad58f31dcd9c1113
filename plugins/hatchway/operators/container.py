"""Build a container on Seqera Wave, waited for in the triggerer, announced as an Asset event.

:class:`BuildContainerOperator` reads what to build from the run's conf (``container_build``)
or from the ``container`` block of a ``job_run`` / ``wes_run`` request, reuses the last good
image of the same packages, channels and platform without calling Wave, resumes a request an
earlier try left, or asks Wave and defers to :class:`~hatchway.triggers.wave.WaveBuildTrigger`.
Its XCom is the image (never a token); a failed build fails the task for good with Wave's
reason and the last lines of the build log (XCom ``failure``). With ``asset_alias`` set, a
success adds an event to the Asset ``hatchway-container://<workspace>/<name>`` through that
alias, its extra the image, so a DAG scheduled on that Asset runs with each new image.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.sdk.exceptions import AirflowFailException

from hatchway.operators.base import HatchwayOperator

if TYPE_CHECKING:
    from hatchway.containers.builds import BuildFailed, ImageCache, NoCache
    from hatchway.domain.wave import BuildRequest, BuiltImage, ContainerSettings
    from hatchway.hooks.wave import WaveHook

CONTAINER_VARIABLE = "hatchway_container_config"
IMAGES_ALIAS = "hatchway-container-images"
TASK_BUILD = "build_container"
XCOM_FAILURE = "failure"


def built_image(context: Any) -> str | None:
    """The image ``build_container`` built or took for this run (None: the pipeline's own)."""
    return (context["ti"].xcom_pull(task_ids=TASK_BUILD) or {}).get("image")


class ContainerBuildFailed(AirflowFailException):
    """The build failed: retrying the task would ask for the same failed image."""


def load_container_settings(variable: str = CONTAINER_VARIABLE) -> ContainerSettings:
    """The deployment's container settings (JSON Variable; defaults when it is not set)."""
    from airflow.sdk import Variable

    from hatchway.domain.wave import ContainerSettings

    raw = Variable.get(variable, default=None)
    return ContainerSettings.model_validate_json(raw) if raw else ContainerSettings()


def request_from_conf(conf: dict[str, Any], source: str) -> tuple[BuildRequest | None, str | None]:
    """What a run asks to build, and a ready image when it names one instead.

    :param source: ``build`` (the conf is a ``container_build`` request), ``job`` (a job
        request's ``container``, in the jobs namespace) or ``wes`` (a WES run's, in its
        executing workspace).
    :raise AirflowFailException: a request that is not valid, with pydantic's reasons.
    """
    from pydantic import ValidationError

    from hatchway.domain.wave import BuildRequest, ContainerBlock

    try:
        if source == "build":
            spec = {k: v for k, v in conf.items() if k not in ("workspace", "name")}
            return BuildRequest.model_validate({"workspace": conf.get("workspace"), "name": conf.get("name", "default"),
                                                "spec": spec}), None
        block = conf.get("container")
        if not block:
            return None, None
        parsed = ContainerBlock.model_validate(block)
        if parsed.image:
            return None, parsed.image
        if source == "job":
            from hatchway.jobs.settings import load_jobs_config

            workspace = load_jobs_config().namespace
        else:
            workspace = conf.get("executing") or conf.get("workspace")
        return parsed.request(workspace), None
    except ValidationError as exc:
        reasons = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'container'}: {e['msg']}" for e in exc.errors())
        raise AirflowFailException(f"the container request is not valid: {reasons}") from None


class BuildContainerOperator(HatchwayOperator):
    """Ensure the run's container image exists (see the module docstring).

    :param source: where the request is (:func:`request_from_conf`).
    :param asset_alias: add an Asset event through this alias on success (None: none).
    """

    template_fields: Sequence[str] = ()
    ui_color = "#e4f1fb"

    def __init__(self, *, source: str = "build", asset_alias: str | None = None, **kwargs: Any):
        super().__init__(**kwargs)
        if source not in ("build", "job", "wes"):
            raise ValueError(f"source must be build, job or wes, not {source!r}")
        self.source = source
        self.asset_alias = asset_alias

    @cached_property
    def settings(self) -> ContainerSettings:
        return load_container_settings()

    @cached_property
    def hook(self) -> WaveHook:
        from hatchway.hooks.wave import WaveHook

        return WaveHook(self.settings.wave_conn_id)

    @cached_property
    def cache(self) -> ImageCache | NoCache:
        from airflow.sdk import Variable

        from hatchway.containers.builds import ImageCache, NoCache
        from hatchway.operators.workspace import CONFIG_VARIABLE, load_config
        from hatchway.workspace.clients import AwsClients

        if Variable.get(CONFIG_VARIABLE, default=None) is None:
            self.log.info("no platform configuration (Variable %s): images are not cached here, Wave's cache "
                          "answers repeats", CONFIG_VARIABLE)
            return NoCache()
        config = load_config()
        return ImageCache(AwsClients.from_connection(config.aws_conn_id, config.region), config)

    def execute(self, context: Any) -> dict[str, Any] | None:
        from hatchway.containers.builds import BuildFailed, ensure_requested
        from hatchway.triggers.wave import WaveBuildTrigger

        request, ready = request_from_conf(context["dag_run"].conf or {}, self.source)
        if ready is not None:
            self.log.info("the run names its image %s: nothing to build", ready)
            return {"image": ready, "source": "given"}
        if request is None:
            self.log.info("the run asks for no container: the launch uses the pipeline's own")
            return None
        started = time.time()
        try:
            found = ensure_requested(self.hook, self.cache, request, self.settings)
        except BuildFailed as exc:
            self._fail(context, request, exc)
        if found.image is not None:
            self.log.info("%s: %s (%s)", request.spec.describe(), found.image.image, found.source)
            return self._done(context, request, found.image, found.source)
        pending = found.pending
        self.log.info("Wave build %s (request %s) of %s: waiting in the triggerer", pending.build_id,
                      pending.request_id, request.spec.describe())
        self.defer(trigger=WaveBuildTrigger(pending.request_id, self.settings.wave_conn_id,
                                            poll_interval=self.settings.poll_interval_seconds,
                                            timeout_seconds=self.settings.timeout_seconds,
                                            started_at=min(started, pending.requested_at.timestamp()),
                                            carry={"pending": pending.model_dump(mode="json"),
                                                   "source": found.source}),
                   method_name="execute_complete")

    def execute_complete(self, context: Any, event: dict[str, Any]) -> dict[str, Any]:
        from hatchway.containers.builds import BuildFailed, finish
        from hatchway.domain.wave import PendingBuild

        request, _ = request_from_conf(context["dag_run"].conf or {}, self.source)
        carry = event.get("carry") or {}
        pending = PendingBuild.model_validate(carry["pending"])
        source = carry.get("source", "new")
        try:
            built = finish(self.hook, self.cache, request, pending, event, self.settings)
        except BuildFailed as exc:
            self._fail(context, request, exc)
        self.log.info("Wave build %s done: %s", built.build_id, built.image)
        return self._done(context, request, built, source)

    def _done(self, context: Any, request: BuildRequest, built: BuiltImage, source: str) -> dict[str, Any]:
        result = {"image": built.image, "build_id": built.build_id, "source": source, "cached": built.cached,
                  "duration_seconds": built.duration_seconds, "workspace": request.workspace, "name": request.name,
                  "cache_key": built.cache_key, "asset": request.asset_uri, "packages": list(request.spec.packages),
                  "platform": request.spec.platform,
                  "expires_at": built.expires_at.isoformat() if built.expires_at else None}
        if self.asset_alias:
            from airflow.sdk import Asset, AssetAlias

            context["outlet_events"][AssetAlias(self.asset_alias)].add(
                Asset(uri=request.asset_uri, name=request.asset_uri),
                extra={k: result[k] for k in ("image", "build_id", "workspace", "name", "platform", "cache_key",
                                             "expires_at")})
        return result

    def _fail(self, context: Any, request: BuildRequest, exc: BuildFailed) -> None:
        context["ti"].xcom_push(key=XCOM_FAILURE, value={
            "reason": exc.reason, "build_id": exc.build_id, "log_tail": exc.log_tail,
            "duration_seconds": exc.duration_seconds, "workspace": request.workspace, "name": request.name,
            "packages": list(request.spec.packages)})
        tail = "\n".join(f"  {line}" for line in exc.log_tail)
        self.log.error("container build of %s failed: %s%s", request.spec.describe(), exc.reason,
                       f"\nlast lines of the build log:\n{tail}" if tail else "")
        raise ContainerBuildFailed(f"container build failed: {exc.reason}"
                                   + (f" (last log line: {exc.log_tail[-1]})" if exc.log_tail else ""))
