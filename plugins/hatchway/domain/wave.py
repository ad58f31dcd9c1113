"""Container builds the Wave way: what a workspace asks for, checked before Wave is called.

A :class:`ContainerSpec` is a list of conda packages (or a base image to augment) with the
channels, platform, format and repositories of the build. It refuses what Wave would refuse,
with Wave's own reason (``ContainerController`` at seqeralabs/wave@7b8b9f6d), so a bad
request costs no call; it names the build by a :meth:`~ContainerSpec.cache_key`, and
turns into the body of ``POST /v1alpha2/container`` (tests/contracts/wave-api-7b8b9f6d.yaml).

Pure pydantic. The patterns DAG files put in their Params live in :mod:`hatchway.domain.wave_names`
(no pydantic: parse time).
"""

from __future__ import annotations

import hashlib
import json
import re
from datetime import datetime, timezone
from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from hatchway.domain.wave_names import (  # noqa: F401  (the rules are the model's; DAG files import them alone)
    CHANNEL,
    CONDA_TEMPLATES,
    DEFAULT_CHANNELS,
    DEFAULT_TEMPLATE,
    IMAGE,
    MULTI_PLATFORM,
    NAME,
    PACKAGE,
    REPOSITORY,
    SINGLE_PLATFORMS,
)

# Wave's own texts (ContainerController.groovy), so a refusal here reads as Wave's would.
# [2]: a base image to freeze; [3]: packages (when the server has no public repository).
FREEZE_NEEDS_REPOSITORY = "Attribute `buildRepository` must be specified when using freeze mode [{mode}]"
SIF_NEEDS_FREEZE = "Singularity build is only allowed enabling freeze mode - see 'wave.freeze' setting"
SIF_SINGLE_PLATFORM = "Multi-platform builds are not supported for Singularity format"
ONLY_MULTI_PAIR = "Only linux/amd64,linux/arm64 multi-platform combination is currently supported"
MULTI_NEEDS_BUILD = "Multi-platform builds require either 'containerFile' or 'packages' attribute"


class BuildStatus(str, Enum):
    """``status`` of ``GET /v1alpha2/container/{requestId}/status``."""

    PENDING = "PENDING"
    BUILDING = "BUILDING"
    SCANNING = "SCANNING"
    DONE = "DONE"


class ContainerSpec(BaseModel):
    """A container a workspace asks for: conda packages, a base image to augment, or both.

    :param packages: conda match specs, ``name``, ``name=version`` or ``name==version``
        (``channel::name`` too); the order does not matter.
    :param channels: conda channels, in priority order.
    :param base_image: with packages, the image the conda build starts from (Wave's
        ``packages.condaOpts.baseImage``); alone, an image to augment (``containerImage``).
    :param platform: ``linux/amd64``, ``linux/arm64`` or ``linux/amd64,linux/arm64``.
    :param format: ``docker`` or ``sif`` (Singularity: needs ``freeze``).
    :param freeze: push the image to ``build_repository`` for good (no expiring token).
    :param build_repository: where a frozen image is pushed.
    :param cache_repository: Wave's layer cache.
    :param build_template: Wave's build template.
    :param scan_mode: ``none``, ``async`` or ``required`` (required: DONE only after the scan).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    packages: tuple[str, ...] = ()
    channels: tuple[str, ...] = DEFAULT_CHANNELS
    base_image: str | None = None
    platform: str = "linux/amd64"
    format: Literal["docker", "sif"] = "docker"
    freeze: bool = False
    build_repository: str | None = None
    cache_repository: str | None = None
    build_template: str = DEFAULT_TEMPLATE
    scan_mode: Literal["none", "async", "required"] | None = None

    @field_validator("packages", mode="before")
    @classmethod
    def _packages(cls, value: Any) -> tuple[str, ...]:
        items = [value] if isinstance(value, str) else list(value or [])
        bad = [p for p in items if not isinstance(p, str) or not PACKAGE.match(p.strip())]
        if bad:
            raise ValueError(f"invalid package spec(s) {bad!r}: use name, name=version or name==version "
                             "(letters, digits, '_', '.', '-')")
        cleaned = sorted({p.strip() for p in items})
        if len(cleaned) > 200:
            raise ValueError(f"{len(cleaned)} packages: at most 200 in one container")
        return tuple(cleaned)

    @field_validator("channels", mode="before")
    @classmethod
    def _channels(cls, value: Any) -> tuple[str, ...]:
        items = [value] if isinstance(value, str) else list(value or [])
        bad = [c for c in items if not isinstance(c, str) or not CHANNEL.match(c)]
        if bad:
            raise ValueError(f"invalid channel(s) {bad!r}: a channel name (conda-forge) or an https:// URL")
        return tuple(dict.fromkeys(items))  # keep the priority order, drop repeats

    @field_validator("base_image")
    @classmethod
    def _image(cls, value: str | None) -> str | None:
        if value is not None and not IMAGE.match(value):
            raise ValueError(f"invalid base image {value!r}: registry/path[:tag][@sha256:digest], path in lowercase")
        return value

    @field_validator("build_repository", "cache_repository")
    @classmethod
    def _repository(cls, value: str | None) -> str | None:
        if value is not None and not REPOSITORY.match(value):
            raise ValueError(f"invalid repository {value!r}: registry/path without a tag, path in lowercase")
        return value

    @field_validator("platform")
    @classmethod
    def _platform(cls, value: str) -> str:
        value = value.replace(" ", "")
        if value in SINGLE_PLATFORMS or value == MULTI_PLATFORM:
            return value
        if "," in value:
            raise ValueError(ONLY_MULTI_PAIR)
        raise ValueError(f"unknown platform {value!r}: use one of {', '.join(SINGLE_PLATFORMS)} or {MULTI_PLATFORM}")

    @field_validator("build_template")
    @classmethod
    def _template(cls, value: str) -> str:
        if value not in CONDA_TEMPLATES:
            raise ValueError(f"unknown build template {value!r}: use one of {', '.join(CONDA_TEMPLATES)}")
        return value

    @model_validator(mode="after")
    def _wave_rules(self) -> ContainerSpec:
        if not self.packages and not self.base_image:
            raise ValueError("give packages, a base_image to augment, or both")
        if self.freeze and not self.build_repository:
            raise ValueError(FREEZE_NEEDS_REPOSITORY.format(mode=3 if self.packages else 2))
        if "," in self.platform and not self.packages:
            raise ValueError(MULTI_NEEDS_BUILD)
        if self.format == "sif" and "," in self.platform:
            raise ValueError(SIF_SINGLE_PLATFORM)
        if self.format == "sif" and not self.freeze:
            raise ValueError(SIF_NEEDS_FREEZE)
        return self

    def cache_key(self) -> str:
        """What makes the image: the same packages, channels, platform (and the rest) share a key."""
        canonical = json.dumps(self.model_dump(mode="json", exclude={"scan_mode", "cache_repository"}),
                               sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:32]

    def request_body(self, tower: TowerAuth | None = None) -> dict[str, Any]:
        """The body of ``POST /v1alpha2/container``. It holds the Seqera token when ``tower``
        is given: never log it or put it in XCom."""
        body: dict[str, Any] = {"containerPlatform": self.platform, "format": self.format, "freeze": self.freeze}
        if self.packages:
            body["packages"] = {"type": "CONDA", "entries": list(self.packages), "channels": list(self.channels)}
            if self.base_image:  # Wave refuses containerImage beside packages: the base goes in condaOpts
                body["packages"]["condaOpts"] = {"baseImage": self.base_image}
            body["buildTemplate"] = self.build_template
        elif self.base_image:
            body["containerImage"] = self.base_image
        for key, value in (("buildRepository", self.build_repository), ("cacheRepository", self.cache_repository),
                           ("scanMode", self.scan_mode)):
            if value is not None:
                body[key] = value
        if tower is not None:
            body.update(tower.fields())
        return body

    def describe(self) -> str:
        """One line for logs and mail: what is built."""
        what = ", ".join(self.packages) or "no packages"
        return f"{what} on {self.base_image or 'the template base'} ({self.platform}, {self.format})"


class TowerAuth(BaseModel):
    """The Seqera identity Wave builds for (from the Seqera connection); ``repr`` hides the token."""

    model_config = ConfigDict(frozen=True)

    endpoint: str
    token: str = Field(repr=False)
    workspace_id: int | None = None

    def fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {"towerAccessToken": self.token, "towerEndpoint": self.endpoint}
        if self.workspace_id is not None:
            fields["towerWorkspaceId"] = self.workspace_id
        return fields


class BuildRequest(BaseModel):
    """A build for a workspace: the conf of ``container_build`` and the ``container`` block of
    ``job_run`` / ``wes_run`` (``image`` instead of a spec: use that image, build nothing)."""

    model_config = ConfigDict(extra="forbid")

    workspace: str
    name: str = Field(default="default", description="the image's name in the workspace: its Asset")
    spec: ContainerSpec

    @field_validator("workspace", "name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME.match(value):
            raise ValueError(f"invalid name {value!r}: lowercase letters, digits and '-', at most 63")
        return value

    @property
    def asset_uri(self) -> str:
        return asset_uri(self.workspace, self.name)


def asset_uri(workspace: str, name: str) -> str:
    """The Asset a workspace's image ``name`` updates: a DAG scheduled on it runs with each new image."""
    return f"hatchway-container://{workspace}/{name}"


class BuiltImage(BaseModel):
    """A finished build, as kept in the cache and sent on: never holds a token.

    :param image: the image to run (Wave's ``targetImage``).
    :param expires_at: when a non-frozen image's token expires (None: frozen, for good).
    """

    cache_key: str
    image: str
    build_id: str | None = None
    request_id: str | None = None
    succeeded: bool
    reason: str | None = None
    cached: bool = False
    duration_seconds: float | None = None
    expires_at: datetime | None = None
    finished_at: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))

    def usable(self, now: datetime | None = None, margin_seconds: float = 3600.0) -> bool:
        """A success whose token outlives ``margin_seconds`` more (a frozen image always does)."""
        if not self.succeeded:
            return False
        if self.expires_at is None:
            return True
        now = now or datetime.now(timezone.utc)
        return (self.expires_at - now).total_seconds() > margin_seconds


class PendingBuild(BaseModel):
    """A request sent and not finished: a retried task waits on it instead of asking again."""

    cache_key: str
    request_id: str
    build_id: str | None = None
    target_image: str
    expires_at: datetime | None = None
    requested_at: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))


def parse_duration(value: Any) -> float | None:
    """Wave's durations: seconds as a string ("123.914989000"), or an ISO-8601 ``PT..S``."""
    if value is None:
        return None
    if isinstance(value, (int, float)):
        return float(value)
    text = str(value)
    try:
        return float(text)
    except ValueError:
        match = re.fullmatch(r"PT(?:(\d+)H)?(?:(\d+)M)?(?:([\d.]+)S)?", text)
        if not match:
            return None
        hours, minutes, seconds = (float(g) if g else 0.0 for g in match.groups())
        return hours * 3600 + minutes * 60 + seconds


def parse_time(value: Any) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


class ContainerSettings(BaseModel):
    """Variable ``hatchway_container_config`` (JSON; defaults when it is not set).

    :param wave_conn_id: the Wave connection.
    :param poll_interval_seconds: between status rounds of a waiting build.
    :param timeout_seconds: a build not DONE this long after its request fails.
    :param reuse_margin_seconds: a cached non-frozen image is reused only while its Wave token
        outlives this margin (a run must start before the image expires).
    :param log_tail_lines: lines of a failed build's log sent on (mail, the run's reason).
    """

    model_config = ConfigDict(extra="forbid")

    wave_conn_id: str = "wave_default"
    poll_interval_seconds: float = Field(default=10.0, gt=0)
    timeout_seconds: float = Field(default=3600.0, gt=0)
    reuse_margin_seconds: float = Field(default=3600.0, ge=0)
    log_tail_lines: int = Field(default=20, ge=1, le=500)


class ContainerBlock(BaseModel):
    """The optional ``container`` of a ``job_run`` or ``wes_run`` request.

    Either ``image`` (a ready image: nothing is built) or the fields of a
    :class:`ContainerSpec` (``packages``, ``base_image``, ``channels``, ``platform``...): then
    the run builds that container first and launches with it. ``name`` is the image's name
    in the workspace (its Asset).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    image: str | None = None
    name: str = "default"
    spec: ContainerSpec | None = None

    @model_validator(mode="before")
    @classmethod
    def _split(cls, data: Any) -> Any:
        if not isinstance(data, dict) or "spec" in data:
            return data
        rest = {k: v for k, v in data.items() if k not in ("image", "name")}
        return {**{k: data[k] for k in ("image", "name") if k in data}, **({"spec": rest} if rest else {})}

    @field_validator("image")
    @classmethod
    def _image(cls, value: str | None) -> str | None:
        if value is not None and not IMAGE.match(value):
            raise ValueError(f"invalid image {value!r}: registry/path[:tag][@sha256:digest], path in lowercase")
        return value

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NAME.match(value):
            raise ValueError(f"invalid name {value!r}: lowercase letters, digits and '-', at most 63")
        return value

    @model_validator(mode="after")
    def _one(self) -> ContainerBlock:
        if (self.image is None) == (self.spec is None):
            raise ValueError("a container block gives either image or packages/base_image, not both and not neither")
        return self

    def request(self, workspace: str) -> BuildRequest | None:
        """The build to run (None: a ready image)."""
        return None if self.spec is None else BuildRequest(workspace=workspace, name=self.name, spec=self.spec)


def nextflow_container_config(image: str) -> str:
    """Nextflow config that runs every process in ``image`` (Seqera's ``configText``, the chart's config)."""
    return f"process.container = {json.dumps(image)}\n"
