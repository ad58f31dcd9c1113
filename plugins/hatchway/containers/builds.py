"""A container build as an ensure: reuse the last good image, resume a pending request, or ask Wave.

Records live in the platform bucket beside the workspace records, tagged like them:

- ``.hatchway/containers/<workspace>/<cache key>.json``: the last successful image of that
  package set, channels and platform (:class:`~hatchway.domain.wave.BuiltImage`);
- ``.hatchway/containers/<workspace>/<cache key>.pending.json``: a request Wave took and has
  not finished (:class:`~hatchway.domain.wave.PendingBuild`), so a retried task waits on it
  instead of asking again.

Wave's own answers are honoured: ``cached: true`` with ``succeeded: true`` is an image at
once; ``cached: true`` with ``succeeded: false`` is Wave's record of a failed build of the
same image, a failure (nf-core/tools warns Wave still answers a ``targetImage`` then).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from botocore.exceptions import ClientError

from hatchway.domain.wave import BuiltImage, PendingBuild, parse_duration, parse_time

if TYPE_CHECKING:
    from hatchway.domain.wave import BuildRequest, ContainerSettings
    from hatchway.domain.workspace import PlatformConfig
    from hatchway.hooks.wave import WaveHook
    from hatchway.workspace.clients import AwsClients

log = logging.getLogger(__name__)
CACHE_PREFIX = ".hatchway/containers"


class BuildFailed(Exception):
    """The build failed (now, or in Wave's cache): Wave's reason and the last lines of its log."""

    def __init__(self, reason: str, *, build_id: str | None = None, log_tail: list[str] | None = None,
                 duration_seconds: float | None = None):
        super().__init__(reason)
        self.reason = reason
        self.build_id = build_id
        self.log_tail = log_tail or []
        self.duration_seconds = duration_seconds


class ImageCache:
    """The workspace's built images and pending requests, in the platform bucket."""

    def __init__(self, clients: AwsClients, config: PlatformConfig) -> None:
        self.clients = clients
        self.config = config

    @staticmethod
    def key(workspace: str, cache_key: str, pending: bool = False) -> str:
        return f"{CACHE_PREFIX}/{workspace}/{cache_key}{'.pending' if pending else ''}.json"

    def image(self, workspace: str, cache_key: str) -> BuiltImage | None:
        from hatchway.workspace.provision import read_model

        return read_model(self.clients, self.config, self.key(workspace, cache_key), BuiltImage)

    def pending(self, workspace: str, cache_key: str) -> PendingBuild | None:
        from hatchway.workspace.provision import read_model

        return read_model(self.clients, self.config, self.key(workspace, cache_key, pending=True), PendingBuild)

    def keep(self, workspace: str, record: BuiltImage | PendingBuild, tags: dict[str, str]) -> None:
        from hatchway.workspace.provision import write_model

        write_model(self.clients, self.config,
                    self.key(workspace, record.cache_key, pending=isinstance(record, PendingBuild)), record, tags)

    def drop_pending(self, workspace: str, cache_key: str) -> None:
        try:
            self.clients.s3.delete_object(Bucket=self.config.bucket, Key=self.key(workspace, cache_key, pending=True))
        except ClientError as exc:  # gone already is fine; anything else is said, never fatal
            log.warning("the pending record of %s/%s was not removed: %s", workspace, cache_key, exc)

    def tags(self, workspace: str) -> dict[str, str]:
        """The workspace's tags (owner, cost centre) from its record; the workspace alone without one."""
        from hatchway.domain.workspace import TAG_PLATFORM, TAG_WORKSPACE
        from hatchway.workspace.provision import read_record

        record = read_record(self.clients, self.config, workspace)
        if record is None:
            return {TAG_WORKSPACE: workspace, TAG_PLATFORM: self.config.prefix}
        from hatchway.domain.workspace import TAG_OWNER

        return {TAG_WORKSPACE: workspace, TAG_OWNER: record.owner, self.config.cost_tag_key: record.cost_center,
                TAG_PLATFORM: self.config.prefix}


class NoCache:
    """Where no platform bucket is configured (a jobs-only deployment): every build asks Wave,
    which answers a repeated request from its own cache (``cached: true``, the same build)."""

    def image(self, workspace: str, cache_key: str) -> None:
        return None

    def pending(self, workspace: str, cache_key: str) -> None:
        return None

    def keep(self, workspace: str, record: Any, tags: dict[str, str]) -> None:
        return None

    def drop_pending(self, workspace: str, cache_key: str) -> None:
        return None

    def tags(self, workspace: str) -> dict[str, str]:
        return {}


@dataclass(frozen=True)
class Requested:
    """What :func:`ensure_requested` found or started.

    :param image: the image, when there is nothing to wait for.
    :param pending: the request to wait on, otherwise.
    :param source: ``cache`` (our record; no Wave call), ``wave-cache`` (Wave had it built),
        ``resumed`` (a request of an earlier try), ``new``.
    """

    source: str
    image: BuiltImage | None = None
    pending: PendingBuild | None = None


def ensure_requested(hook: WaveHook, cache: ImageCache, request: BuildRequest, settings: ContainerSettings,
                     now: datetime | None = None) -> Requested:
    """Reuse, resume or request the build of ``request``; raise :class:`BuildFailed` for a
    failure Wave already knows (its cached failed build)."""
    now = now or datetime.now(timezone.utc)
    spec, workspace = request.spec, request.workspace
    key = spec.cache_key()
    kept = cache.image(workspace, key)
    if kept is not None and kept.usable(now, settings.reuse_margin_seconds):
        return Requested("cache", image=kept.model_copy(update={"cached": True}))
    pending = cache.pending(workspace, key)
    if pending is not None and (now - pending.requested_at).total_seconds() < settings.timeout_seconds:
        return Requested("resumed", pending=pending)

    answer = hook.request_container(spec.request_body(hook.tower_auth()))
    request_id, build_id = answer.get("requestId"), answer.get("buildId")
    image = answer.get("targetImage") or answer.get("containerImage")
    if not request_id or not image:
        raise BuildFailed(f"Wave's answer has no requestId or targetImage (keys {sorted(answer)})")
    expires = parse_time(answer.get("expiration"))
    tags = cache.tags(workspace)
    if answer.get("succeeded") is False:
        tail = log_tail(hook, build_id, settings.log_tail_lines)
        what = "Wave's cached build" if answer.get("cached") else "Wave's build"
        raise BuildFailed(f"{what} {build_id} of this image failed: it is not used; change the packages "
                          "or ask Wave's operators to clear it", build_id=build_id, log_tail=tail)
    if answer.get("succeeded") is True:  # built before (Wave's cache) or a frozen image that exists
        built = BuiltImage(cache_key=key, image=image, build_id=build_id, request_id=request_id, succeeded=True,
                           cached=bool(answer.get("cached")), expires_at=expires)
        cache.keep(workspace, built, tags)
        return Requested("wave-cache" if answer.get("cached") else "new", image=built)
    pending = PendingBuild(cache_key=key, request_id=request_id, build_id=build_id, target_image=image,
                           expires_at=expires, requested_at=now)
    cache.keep(workspace, pending, tags)
    return Requested("new", pending=pending)


def finish(hook: WaveHook, cache: ImageCache, request: BuildRequest, pending: PendingBuild, event: dict[str, Any],
           settings: ContainerSettings) -> BuiltImage:
    """The end of a waited build: keep the image, or raise :class:`BuildFailed` with the log's tail."""
    workspace = request.workspace
    duration = parse_duration(event.get("duration"))
    build_id = event.get("build_id") or pending.build_id
    if event.get("status") != "success":
        cache.drop_pending(workspace, pending.cache_key)
        raise BuildFailed(event.get("reason") or "the build failed", build_id=build_id,
                          log_tail=log_tail(hook, build_id, settings.log_tail_lines), duration_seconds=duration)
    built = BuiltImage(cache_key=pending.cache_key, image=pending.target_image, build_id=build_id,
                       request_id=pending.request_id, succeeded=True, duration_seconds=duration,
                       expires_at=pending.expires_at)
    cache.keep(workspace, built, cache.tags(workspace))
    cache.drop_pending(workspace, pending.cache_key)
    return built


def log_tail(hook: WaveHook, build_id: str | None, lines: int) -> list[str]:
    """The last ``lines`` lines of a build's log ([] when Wave keeps none or cannot say)."""
    if not build_id:
        return []
    from hatchway.hooks.wave import WaveError

    try:
        text = hook.build_logs(build_id)
    except WaveError as exc:
        log.warning("the log of build %s could not be read: %s", build_id, exc)
        return []
    return [line for line in (text or "").splitlines() if line.strip()][-lines:]
