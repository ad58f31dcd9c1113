"""In-memory state of the Wave simulator: container requests, builds, their scripted course, faults, records.

Plain Python with no web framework, so the rules can be read (and tested) on their own; the
web layer (:mod:`.app`) turns requests into calls on :class:`SimState`.

The rules are Wave's code at the TypeSpec's commit 7b8b9f6d (``ContainerController``,
``ContainerHelper``, ``ContainerStatusServiceImpl``, ``WaveBuildRecord``): the validation order
and texts, the build identity (a build is found again by what defines its image, so a repeated
request is ``cached`` and shares the build, even a failed one), the answers' shapes, and the
Micronaut habit of leaving null fields out of the JSON.

A build's progress is a function of how often it has been *observed*, not of wall-clock time,
so tests are deterministic: an observation is a ``GET .../container/{id}/status`` of a request
on the build or a ``GET /v1alpha1/builds/{id}/status``. With ``after=N`` the first N
observations see it running (``BUILDING`` / ``PENDING``), the next one sees the outcome. A
request with ``scanMode: required`` on a build that succeeded then sees ``SCANNING`` for
``scan_polls`` of its own status polls before ``DONE``.

Thread and async safety: every method runs on the server's event loop, and none awaits, so no
two requests interleave inside one (the same discipline as the Cromwell simulator).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

from include.simulators.chaos import RouteFault, take_fault

ROUTES = ("submit", "container", "status", "build", "build_status", "logs", "service_info")
OUTCOMES = ("succeed", "fail")
WAVE_VERSION = "1.30.0-sim"
SERVER_URL = "https://wave.local"
SERVER = SERVER_URL.split("://", 1)[1]
BUILD_REPOSITORY = "wave.local/wave/build"
CACHE_REPOSITORY = "wave.local/wave/cache"
TOWER_ENDPOINT = "https://api.cloud.seqera.io"
TOKEN_TTL = 12 * 3600
SEVERITIES = ("LOW", "MEDIUM", "HIGH", "CRITICAL")
# wave-api BuildTemplate: template -> the package type it builds
TEMPLATES = {"conda/micromamba:v1": "CONDA", "conda/micromamba:v2": "CONDA", "conda/pixi:v1": "CONDA",
             "cran/installr:v1": "CRAN"}
DEFAULT_TEMPLATE = {"CONDA": "conda/micromamba:v2", "CRAN": "cran/installr:v1"}
MULTI_PLATFORM = ("linux/amd64", "linux/arm64")
_AMD64, _ARM64 = ("amd64", "x86_64", "x86-64"), ("arm64", "aarch64")
_ARCHES = _AMD64 + _ARM64 + ("arm",)

# ContainerController / ContainerHelper / ContainerPlatform texts (400 unless said otherwise)
MISSING_TOKEN = "Missing user access token"
FILE_AND_PACKAGES = "Attribute `containerFile` and `packages` conflicts each other"
CONDA_FILE = "Attribute `condaFile` is deprecated - use `packages` instead"
FREEZE_REPO = "Attribute `buildRepository` must be specified when using freeze mode [{n}]"
MULTI_COMBINATION = "Only linux/amd64,linux/arm64 multi-platform combination is currently supported"
MULTI_NEEDS_BUILD = "Multi-platform builds require either 'containerFile' or 'packages' attribute"
MULTI_SINGULARITY = "Multi-platform builds are not supported for Singularity format"
SINGULARITY_FREEZE = "Singularity build is only allowed enabling freeze mode - see 'wave.freeze' setting"
# The notes quote this one elided ("Unexpected or missing package type ... or build template ..."):
# the values fill the gaps.
BAD_TEMPLATE = "Unexpected or missing package type '{type}' or build template '{template}'"
UNSUPPORTED_ARCH = "Unsupported container platform: {arch}"
INVALID_PLATFORM = "Invalid container platform: {value} -- offending value: {value}"
NEITHER_IMAGE_NOR_FILE = "Specify either 'containerImage' or 'containerFile' attribute"
IMAGE_AND_FILE = "Attributes 'containerImage' and 'containerFile' cannot be used in the same request"
BAD_BASE64 = "Invalid '{field}' attribute - make sure it encoded as a base64 string"
MIRROR = "Container mirroring is not supported by the Wave simulator"
BUILD_FAILED = "Container build did not complete successfully"
SCAN_LEVELS = "Container security scan operation found one or more vulnerabilities with severity: {levels}"
SCAN_COMPATIBLE = ("Container security scan operation found one or more vulnerabilities that are compatible "
                   "with requested security levels: {levels}")
MISSING_BUILD = "Missing container build record with id: {id}"


class WaveError(Exception):
    """An answer in Wave's error body ``{"message": message}``.

    :param status: HTTP status.
    :param message: the message.
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def iso(ts: float | None) -> str | None:
    """A ``java.time.Instant`` as Jackson writes it: UTC, microseconds, ``Z``."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def seconds(value: float | None) -> str | None:
    """A ``java.time.Duration`` as Jackson writes it: seconds, nanoseconds as decimals."""
    return None if value is None else f"{max(value, 0.0):.9f}"


def digest(value: str | bytes) -> str:
    """SHA-256 (hex): how the simulator keeps what it must not store (tokens)."""
    return hashlib.sha256(value.encode() if isinstance(value, str) else value).hexdigest()


def present(answer: dict[str, Any]) -> dict[str, Any]:
    """``answer`` without its null fields, as Micronaut writes a JSON body."""
    return {k: v for k, v in answer.items() if v is not None}


# -- courses
@dataclass
class Course:
    """How a build behaves as it is observed.

    :param outcome: ``succeed`` or ``fail``.
    :param after: observations that see the build running before the one that sees it end.
    :param scan_polls: status polls of a ``scanMode: required`` request that see ``SCANNING``
        once its build has succeeded.
    :param log: the build log (default: a multi-line log that, for ``fail``, ends with an error line).
    :param vulnerabilities: the scan's summary, severity -> count (checked against ``scanLevels``).
    :param match: which builds take this course: ``{"entry": "<package>"}`` (a package entry of that
        name, with or without a channel or version) and/or ``{"image": "<containerImage>"}``;
        ``None``: the default course.
    """

    outcome: str = "succeed"
    after: int = 2
    scan_polls: int = 1
    log: str | None = None
    vulnerabilities: dict[str, int] = field(default_factory=dict)
    match: dict[str, str] | None = None

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {self.outcome!r}; one of {OUTCOMES}")
        if self.after < 0 or self.scan_polls < 0:
            raise ValueError("after and scan_polls must be >= 0")
        unknown = set(self.vulnerabilities) - set(SEVERITIES)
        if unknown or any(not isinstance(n, int) or n < 0 for n in self.vulnerabilities.values()):
            raise ValueError(f"vulnerabilities map {list(SEVERITIES)} to counts >= 0")
        if self.match is not None and (not self.match or set(self.match) - {"entry", "image"}):
            raise ValueError(f"match takes 'entry' and/or 'image', got {sorted(self.match)}")

    def matches(self, entries: list[str], image: str | None) -> bool:
        if self.match is None:
            return False
        if "entry" in self.match and package_name(self.match["entry"]) not in {package_name(e) for e in entries}:
            return False
        return "image" not in self.match or self.match["image"] == image


class Fault(RouteFault):
    """The next ``count`` calls of ``routes`` (names from :data:`ROUTES`; ``None``: all) answer ``status``."""

    KNOWN_ROUTES = ROUTES


@dataclass
class Config:
    """Server settings Wave reads from its configuration.

    :param anonymous: ``wave.allowAnonymous``: without it a request with no ``towerAccessToken``
        is refused (400 "Missing user access token").
    :param scan_by_default: scan every build (Wave's code defaults a build's ``scanMode`` to
        ``async`` when a scanner is configured, which leaves ``succeeded`` out of the POST
        answer); off: only requests that ask for a scan get one.
    :param public_repository: ``wave.build.public-repo``: freeze builds of packages without a
        ``buildRepository`` go there (else 400 "[3]").
    """

    anonymous: bool = True
    scan_by_default: bool = False
    public_repository: str | None = None


# -- names
def package_name(entry: str) -> str:
    """``bioconda::bwa=0.7.15`` -> ``bwa``."""
    name = entry.split("::", 1)[-1]
    if name.startswith("pip:"):
        name = name[4:]
    return re.split(r"[=<>!~ ]", name, maxsplit=1)[0].lower()


def parse_platform(value: str) -> tuple[str, ...]:
    """``ContainerPlatform.of``: each comma-separated item normalised to ``os/arch[/variant]``.

    :raises WaveError: 400 for an unknown architecture or a malformed item.
    """
    result = []
    for item in value.split(","):
        parts = [p for p in item.strip().split("/") if p]
        if len(parts) == 1:
            parts.insert(0, "linux")
        if len(parts) not in (2, 3):
            raise WaveError(400, INVALID_PLATFORM.format(value=item.strip()))
        os_, arch = parts[0] or "linux", parts[1]
        variant = parts[2] if len(parts) == 3 else None
        if arch not in _ARCHES:
            raise WaveError(400, UNSUPPORTED_ARCH.format(arch=arch))
        arch = "amd64" if arch in _AMD64 else "arm64" if arch in _ARM64 else arch
        if arch == "arm64" and variant in ("8", "v8"):
            variant = None
        if arch == "arm":
            variant = "v7" if variant in (None, "7") else f"v{variant}" if variant in ("5", "6", "8") else variant
        result.append("/".join(p for p in (os_, arch, variant) if p))
    return tuple(result)


@dataclass(frozen=True)
class Image:
    """``ContainerCoordinates``: a container image name split in registry, image and reference."""

    registry: str
    image: str
    reference: str

    @classmethod
    def parse(cls, name: str) -> Image:
        rest, reference = name, "latest"
        if "@" in rest:
            rest, reference = rest.split("@", 1)
        elif ":" in rest.rsplit("/", 1)[-1]:
            rest, reference = rest.rsplit(":", 1)
        first, _, tail = rest.partition("/")
        if tail and ("." in first or ":" in first or first == "localhost"):
            registry, image = first, tail
        else:
            registry, image = "docker.io", rest
        if registry == "docker.io" and "/" not in image:
            image = f"library/{image}"
        return cls(registry, image, reference)

    @property
    def image_and_tag(self) -> str:
        sep = "@" if self.reference.startswith("sha256:") else ":"
        return f"{self.image}{sep}{self.reference}"

    @property
    def target(self) -> str:
        return f"{self.registry}/{self.image_and_tag}"


def _normalise(value: str, max_length: int, pattern: str) -> str | None:
    """``ContainerHelper.normalise0``: drop the characters ``pattern`` matches, cut, trim."""
    value = re.sub(pattern, "", value)
    if len(value) > max_length:
        kept = ""
        for part in (p for p in value.split("_") if p):
            kept = f"{kept}_{part}" if kept else part
            if len(kept) > max_length:
                break
        value = kept[:max_length]
    value = re.sub(r"^(\W|_)+|(\W|_)+$", "", value)
    return value or None


def conda_tools(condafile: str | None) -> list[tuple[str, str | None]] | None:
    """``guessCondaRecipeName``: ``(name, version)`` of each dependency of a conda file, or of its ``name``."""
    if not condafile:
        return None
    import yaml

    try:
        doc = yaml.safe_load(condafile)
    except yaml.YAMLError:
        return None
    if not isinstance(doc, dict):
        return None
    if doc.get("name"):
        return [(str(doc["name"]), None)]
    tools = []
    for dep in doc.get("dependencies") or []:
        items = [f"pip:{d}" for d in dep.get("pip", [])] if isinstance(dep, dict) else [str(dep)]
        for item in items:
            if item.startswith("pip:") and len(item) > 4 and item[4] != ":":
                item = item[4:]
            if item.startswith(("http://", "https://")):
                continue
            item = item.split("::", 1)[-1]
            parts = [p for p in re.split(r"[=<>]", item) if p]
            if parts:
                tools.append((parts[0], parts[1] if len(parts) > 1 else None))
    return tools or None


def target_image(fmt: str, repo: str, container_id: str, condafile: str | None, strategy: str | None) -> str:
    """``ContainerHelper.makeTargetImage``: the built image's name, tools in the tag (``tagPrefix``,
    the default) or in the repository (``imageSuffix``)."""
    tag = container_id
    tools = conda_tools(condafile)
    if tools and strategy in (None, "tagPrefix"):
        names = _normalise("_".join(f"{n}-{v}" if v else n for n, v in tools), 80, r"[^a-zA-Z0-9_.-]")
        if names:
            tag = f"{names}--{container_id}"
    elif tools and strategy == "imageSuffix":
        suffix = _normalise("_".join(n for n, _ in tools).lower(), 255, r"[^a-z0-9_.\-/]")
        if suffix:
            repo = f"{repo.rstrip('/')}/{suffix}"
        versions = {v for _, v in tools}
        if len(versions) == 1 and (version := versions.pop()):
            tag = f"{_normalise(version, 80, r'[^a-zA-Z0-9_.-]')}--{container_id}"
    return f"oras://{repo}:{tag}" if fmt == "sif" else f"{repo}:{tag}"


# -- the request, validated
_STRINGS = ("towerAccessToken", "towerRefreshToken", "towerEndpoint", "containerImage", "containerFile",
            "condaFile", "containerPlatform", "buildRepository", "cacheRepository", "timestamp", "fingerprint",
            "buildTemplate", "workflowId")
_BOOLEANS = ("freeze", "dryRun", "mirror")
_ENUMS = {"format": ("sif", "docker"), "nameStrategy": ("none", "tagPrefix", "imageSuffix"),
          "scanMode": ("none", "async", "required")}


def _convert_error(detail: str) -> WaveError:
    return WaveError(400, f"Failed to convert argument [req] for value [null] due to: {detail}")


def _decode(value: str | None, name: str) -> str | None:
    """``ContainerHelper.decodeBase64OrFail``."""
    if not value:
        return None
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise WaveError(400, BAD_BASE64.format(field=name)) from None
    if base64.b64encode(raw).decode() != value:
        raise WaveError(400, BAD_BASE64.format(field=name))
    return raw.decode("utf-8", errors="replace")


@dataclass
class Submission:
    """A ``POST /v1alpha2/container`` body that passed ``ContainerController``'s checks, with
    what the build needs worked out (the generated Dockerfile and conda file, the platform).

    Build it with :meth:`check`.
    """

    body: dict[str, Any]
    token: str | None
    platform: str
    fmt: str
    freeze: bool
    dockerfile: str | None
    condafile: str | None
    template: str | None
    scan_mode: str | None
    scan_levels: list[str]
    entries: list[str]

    @classmethod
    def check(cls, body: Any, config: Config) -> Submission:
        """Validate ``body`` in the order of ``ContainerController.getContainerImpl`` /
        ``handleRequest`` / ``makeRequestData``.

        :raises WaveError: 400 with the code's message for the first rule broken.
        """
        if not isinstance(body, dict):
            raise _convert_error("the request body must be a JSON object")
        cls._types(body)
        if body.get("mirror"):
            raise WaveError(400, MIRROR)
        token = body.get("towerAccessToken") or None
        if not token and not config.anonymous:
            raise WaveError(400, MISSING_TOKEN)
        packages, container_file = body.get("packages"), body.get("containerFile")
        image, freeze, repo = body.get("containerImage"), bool(body.get("freeze")), body.get("buildRepository")
        if container_file and packages:
            raise WaveError(400, FILE_AND_PACKAGES)
        if body.get("condaFile"):
            raise WaveError(400, CONDA_FILE)
        custom = cls._custom_repo(repo, config)
        if container_file and freeze and not custom and not packages:
            raise WaveError(400, FREEZE_REPO.format(n=1))
        if image and freeze and not custom:
            raise WaveError(400, FREEZE_REPO.format(n=2))
        if packages and freeze and not custom and not config.public_repository:
            raise WaveError(400, FREEZE_REPO.format(n=3))
        fmt = body.get("format") or "docker"
        template = None
        dockerfile = condafile = None
        entries = [str(e) for e in (packages or {}).get("entries") or []]
        if packages:
            template = body.get("buildTemplate") or DEFAULT_TEMPLATE[packages["type"]]
            if TEMPLATES.get(template) != packages["type"]:
                raise WaveError(400, BAD_TEMPLATE.format(type=packages["type"], template=template))
            condafile = cls._condafile(packages)
            dockerfile = cls._packages_dockerfile(packages, template, fmt)
        elif container_file:
            dockerfile = _decode(container_file, "containerFile")
        platform = parse_platform(body.get("containerPlatform") or "linux/amd64")
        if len(platform) > 1:
            if platform != MULTI_PLATFORM:
                raise WaveError(400, MULTI_COMBINATION)
            if not dockerfile:
                raise WaveError(400, MULTI_NEEDS_BUILD)
            if fmt == "sif":
                raise WaveError(400, MULTI_SINGULARITY)
        if not image and not dockerfile:
            raise WaveError(400, NEITHER_IMAGE_NOR_FILE)
        if image and dockerfile:
            raise WaveError(400, IMAGE_AND_FILE)
        if fmt == "sif" and not freeze:
            raise WaveError(400, SINGULARITY_FREEZE)
        if image and freeze:  # FreezeService: the image becomes the base of a build
            dockerfile = f"FROM {Image.parse(image).target}\n"
        scan_mode = body.get("scanMode")
        if scan_mode is None and dockerfile and config.scan_by_default:
            scan_mode = "async"
        return cls(body=body, token=token, platform=",".join(platform), fmt=fmt, freeze=freeze,
                   dockerfile=dockerfile, condafile=condafile, template=template,
                   scan_mode=None if scan_mode == "none" else scan_mode,
                   scan_levels=[str(s).upper() for s in body.get("scanLevels") or []], entries=entries)

    @staticmethod
    def _types(body: dict[str, Any]) -> None:
        """What Jackson refuses while binding the body to ``SubmitContainerTokenRequest``."""
        for name in _STRINGS:
            if body.get(name) is not None and not isinstance(body[name], str):
                raise _convert_error(f"`{name}` must be a string")
        for name in _BOOLEANS:
            if body.get(name) is not None and not isinstance(body[name], bool):
                raise _convert_error(f"`{name}` must be a boolean")
        for name, allowed in _ENUMS.items():
            if body.get(name) is not None and body[name] not in allowed:
                raise _convert_error(f"`{name}` must be one of {', '.join(allowed)}")
        workspace = body.get("towerWorkspaceId")
        if workspace is not None and (isinstance(workspace, bool) or not isinstance(workspace, (int, str))
                                      or not re.fullmatch(r"-?[0-9]+", str(workspace))):
            raise _convert_error("`towerWorkspaceId` must be an integer (int64)")
        levels = body.get("scanLevels")
        if levels is not None and (not isinstance(levels, list)
                                   or any(str(v).upper() not in SEVERITIES for v in levels)):
            raise _convert_error(f"`scanLevels` must be a list of {', '.join(SEVERITIES)}")
        packages = body.get("packages")
        if packages is None:
            return
        if not isinstance(packages, dict) or packages.get("type") not in ("CONDA", "CRAN"):
            raise _convert_error("`packages.type` must be one of CONDA, CRAN")
        for name in ("entries", "channels"):
            value = packages.get(name)
            if value is not None and (not isinstance(value, list) or not all(isinstance(v, str) for v in value)):
                raise _convert_error(f"`packages.{name}` must be a list of strings")
        if packages.get("environment") is not None and not isinstance(packages["environment"], str):
            raise _convert_error("`packages.environment` must be a string")

    @staticmethod
    def _custom_repo(repo: str | None, config: Config) -> bool:
        """``ValidationService.isCustomRepo``: a repository that is not one of Wave's own."""
        if not repo or repo in (BUILD_REPOSITORY, CACHE_REPOSITORY):
            return False
        return not (config.public_repository and repo.startswith(config.public_repository))

    @staticmethod
    def _condafile(packages: dict[str, Any]) -> str | None:
        """``condaFileFromRequest``: the environment file, or one made of the entries."""
        if packages["type"] != "CONDA":
            return None
        if packages.get("environment"):
            return _decode(packages["environment"], "packages.envFile")
        entries = packages.get("entries") or []
        if not entries:
            return None
        channels = packages.get("channels") or []
        lines = (["channels:"] + [f"- {c}" for c in channels] if channels else []) + ["dependencies:"]
        return "\n".join(lines + [f"- {e}" for e in entries]) + "\n"

    @staticmethod
    def _packages_dockerfile(packages: dict[str, Any], template: str, fmt: str) -> str:
        """A container file in the shape of the template's (enough to read in a log and to hash)."""
        head = "Bootstrap: docker\nFrom: {image}\n" if fmt == "sif" else "FROM {image}\n"
        if packages["type"] == "CRAN":
            opts = packages.get("cranOpts") or {}
            image = opts.get("rImage") or "rocker/r-ver:4.4.1"
            return (head.format(image=image) + f"RUN installr -d {' '.join(packages.get('entries') or [])}\n")
        if template == "conda/pixi:v1":
            opts = packages.get("pixiOpts") or {}
            image = opts.get("pixiImage") or "ghcr.io/prefix-dev/pixi:0.59.0-noble"
            return head.format(image=image) + "COPY conda.yml /opt/wave/conda.yml\nRUN pixi install\n"
        opts = packages.get("condaOpts") or {}
        image = opts.get("mambaImage") or ("mambaorg/micromamba:1.5.10-noble" if template.endswith("v1")
                                           else "mambaorg/micromamba:2.1.1")
        base = opts.get("baseImage") or "ubuntu:24.04"
        return (head.format(image=image) + "COPY conda.yml /tmp/conda.yml\n"
                "RUN micromamba install -y -n base -f /tmp/conda.yml && micromamba clean -a -y\n"
                + ("" if template.endswith("v1") else f"FROM {base}\nCOPY --from=0 /opt/conda /opt/conda\n"))

    def identity(self) -> dict[str, Any]:
        """What defines the image (two requests with the same identity share one build)."""
        body, packages = self.body, self.body.get("packages") or {}
        return {
            "packages": {k: packages.get(k) for k in ("type", "entries", "channels", "environment", "condaOpts",
                                                      "pixiOpts", "cranOpts")} if packages else None,
            "containerFile": None if packages else self.dockerfile,
            "containerImage": body.get("containerImage"), "platform": self.platform, "format": self.fmt,
            "template": self.template, "buildRepository": body.get("buildRepository"), "freeze": self.freeze,
            "containerConfig": body.get("containerConfig") if self.freeze else None,
            "buildContext": (body.get("buildContext") or {}).get("tarDigest"),
        }

    def container_id(self) -> str:
        return digest(json.dumps(self.identity(), sort_keys=True))[:16]


# -- builds and requests
@dataclass
class Build:
    """One container build (``WaveBuildRecord``)."""

    id: str
    container_id: str
    target_image: str
    course: Course
    dockerfile: str
    condafile: str | None
    platform: str
    fmt: str
    scan_id: str | None
    start: float
    user: dict[str, Any] | None
    request_ip: str | None
    observations: int = 0
    end: float | None = None
    exit_status: int | None = None

    @property
    def running(self) -> bool:
        return self.end is None

    @property
    def succeeded(self) -> bool | None:
        return None if self.exit_status is None else self.exit_status == 0

    @property
    def duration(self) -> float | None:
        return None if self.end is None else self.end - self.start

    def observe(self, now: float) -> None:
        """Count one observation; the one after ``course.after`` ends the build."""
        self.observations += 1
        if self.running and self.observations > self.course.after:
            self.end, self.exit_status = now, 0 if self.course.outcome == "succeed" else 1

    def log(self) -> str | None:
        """The build log once the build has ended (Wave stores it then), else ``None``."""
        if self.running:
            return None
        if self.course.log is not None:
            return self.course.log
        first = self.dockerfile.splitlines()[0] if self.dockerfile else "FROM scratch"
        steps = [line for line in self.dockerfile.splitlines() if line.startswith("RUN ")] or ["RUN true"]
        lines = [f"#0 building with \"wave\" instance using the {self.platform} platform",
                 "#1 [internal] load build definition from Containerfile",
                 "#1 DONE 0.0s",
                 f"#2 [internal] load metadata for {first.split(None, 1)[-1]}",
                 "#2 DONE 0.8s"]
        for n, step in enumerate(steps, start=3):
            lines.append(f"#{n} [{n - 2}/{len(steps)}] {step}")
            if self.course.outcome == "fail" and n == len(steps) + 2:
                lines += [f"#{n} ERROR: process \"/bin/sh -c {step[4:]}\" did not complete successfully: exit code: 1",
                          "------",
                          f"ERROR: failed to solve: process \"/bin/sh -c {step[4:]}\" did not complete "
                          "successfully: exit code: 1"]
                return "\n".join(lines) + "\n"
            lines.append(f"#{n} DONE 12.4s")
        n = len(steps) + 3
        lines += [f"#{n} exporting to image", f"#{n} pushing {self.target_image}", f"#{n} DONE 3.1s"]
        return "\n".join(lines) + "\n"

    def record(self, offset_id: str) -> dict[str, Any]:
        """``GET /v1alpha1/builds/{id}``: the ``WaveBuildRecord``."""
        user = self.user or {}
        return present({
            "buildId": self.id, "dockerFile": self.dockerfile, "condaFile": self.condafile,
            "targetImage": self.target_image, "userName": user.get("userName"), "userEmail": user.get("email"),
            "userId": user.get("id"), "requestIp": self.request_ip, "startTime": iso(self.start),
            "offsetId": offset_id, "duration": seconds(self.duration), "exitStatus": self.exit_status,
            "platform": self.platform, "scanId": self.scan_id,
            "format": "SINGULARITY" if self.fmt == "sif" else "DOCKER",
            "digest": None if self.succeeded is not True else f"sha256:{digest(self.target_image)}",
            "succeeded": self.succeeded})

    def status(self) -> dict[str, Any]:
        """``GET /v1alpha1/builds/{id}/status``: ``WaveBuildRecord.toStatusResponse``."""
        return present({"id": self.id, "status": "PENDING" if self.exit_status is None else "COMPLETED",
                        "startTime": iso(self.start), "duration": seconds(self.duration),
                        "succeeded": self.succeeded})


@dataclass
class ContainerRequest:
    """One accepted ``POST /v1alpha2/container`` (Wave's ``ContainerRequest`` and ``WaveContainerRecord``)."""

    id: str
    sub: Submission
    build: Build | None
    build_id: str | None
    build_new: bool | None
    container_image: str
    target_image: str
    scan_id: str | None
    course: Course
    creation: float
    expiration: float
    user: dict[str, Any] | None
    ip: str | None
    succeeded: bool | None  # what the POST answer knew (BuildTrack.succeeded)
    scan_seen: int = 0  # status polls seen in the scan stage
    scan_end: float | None = None

    def response(self) -> dict[str, Any]:
        """The POST answer (``ContainerHelper.makeResponseV2``)."""
        durable = self.sub.freeze
        return present({
            "requestId": self.id, "containerToken": None if durable else self.id,
            "targetImage": self.container_image if durable else self.target_image,
            "expiration": None if durable else iso(self.expiration), "containerImage": self.container_image,
            "buildId": self.build_id, "cached": None if not self.build_id else not self.build_new,
            "freeze": self.sub.freeze, "mirror": False, "scanId": self.scan_id,
            "succeeded": None if self.scan_id else self.succeeded})

    def record(self) -> dict[str, Any]:
        """``GET /v1alpha2/container/{id}``: the ``WaveContainerRecord``."""
        body = self.sub.body
        workspace = body.get("towerWorkspaceId")
        return present({
            "id": self.id, "user": self.user, "workspaceId": int(workspace) if workspace is not None else None,
            "containerImage": body.get("containerImage"), "containerFile": self.sub.dockerfile,
            "containerConfig": body.get("containerConfig"), "condaFile": self.sub.condafile,
            "platform": body.get("containerPlatform"), "towerEndpoint": body.get("towerEndpoint") or TOWER_ENDPOINT,
            "buildRepository": body.get("buildRepository"), "cacheRepository": body.get("cacheRepository"),
            "fingerprint": body.get("fingerprint"), "timestamp": iso(self.creation), "zoneId": "Z",
            "ipAddress": self.ip, "sourceImage": self.container_image, "waveImage": self.target_image,
            "expiration": iso(self.expiration), "buildId": self.build_id,
            "buildNew": self.build_new if self.build_id else None,
            "freeze": self.sub.freeze if self.build_id else None})

    def status(self, now: float) -> dict[str, Any]:
        """``GET /v1alpha2/container/{id}/status`` (``ContainerStatusServiceImpl``); observes the build.

        :raises WaveError: 404 for a dry run's build id, which names no build.
        """
        if self.build_id and self.build is None:
            raise WaveError(404, MISSING_BUILD.format(id=self.build_id))
        if self.build is not None:
            self.build.observe(now)
            if self.build.running:
                return self._answer("BUILDING", self.build.start)
            start, duration, succeeded = self.build.start, self.build.duration, self.build.succeeded
        else:
            start, duration, succeeded = self.creation, now - self.creation, True
        if not self.scan_id or not succeeded:
            failed = not succeeded
            return self._answer("DONE", start, duration, succeeded, reason=BUILD_FAILED if failed else None,
                                details=f"{SERVER_URL}/view/builds/{self.build_id}" if failed else None)
        if self.sub.scan_mode == "required":
            self.scan_seen += 1
            if self.scan_seen <= self.course.scan_polls:
                return self._answer("SCANNING", start)
            if self.scan_end is None:
                self.scan_end = now
            return self._scanned(start, self.scan_end - start)
        return self._answer("DONE", start, duration, succeeded)

    def _scanned(self, start: float, duration: float) -> dict[str, Any]:
        """The answer once the required scan is done: the vulnerabilities against ``scanLevels``."""
        found = {k: v for k, v in self.course.vulnerabilities.items() if v}
        allowed = self.sub.scan_levels
        details = f"{SERVER_URL}/view/scans/{self.scan_id}"
        refused = [s for s in SEVERITIES if s in found and s not in allowed]
        if refused:
            answer = self._answer("DONE", start, duration, False, SCAN_LEVELS.format(levels=",".join(refused)), details)
        elif found:
            answer = self._answer("DONE", start, duration, True, SCAN_COMPATIBLE.format(levels=",".join(allowed)),
                                  details)
        else:
            answer = self._answer("DONE", start, duration, True)
        answer["vulnerabilities"] = found
        return answer

    def _answer(self, status: str, start: float, duration: float | None = None, succeeded: bool | None = None,
                reason: str | None = None, details: str | None = None) -> dict[str, Any]:
        return present({"id": self.id, "status": status, "buildId": self.build_id, "scanId": self.scan_id,
                        "succeeded": succeeded, "reason": reason, "detailsUri": details,
                        "creationTime": iso(start), "duration": seconds(duration)})


class SimState:
    """Everything the simulator remembers; cleared by ``POST /_sim/reset``."""

    LOG_LIMIT = 100_000

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.config = Config()
        self.default_course = Course()
        self.courses: list[Course] = []  # newest first
        self.faults: list[Fault] = []
        self.requests: dict[str, ContainerRequest] = {}
        self.builds: dict[str, Build] = {}
        self.latest_build: dict[str, Build] = {}  # container id -> its newest build
        self.calls: dict[str, int] = {}
        self.log: list[dict[str, Any]] = []
        self.received: list[dict[str, Any]] = []

    # -- records
    def record(self, route: str, entry: dict[str, Any]) -> dict[str, Any]:
        """Count a call of ``route`` and keep its log entry (the answer's status is filled in later)."""
        self.calls[route] = self.calls.get(route, 0) + 1
        if len(self.log) < self.LOG_LIMIT:
            self.log.append(entry)
        return entry

    def take_fault(self, route: str) -> Fault | None:
        return take_fault(self.faults, lambda fault: fault.matches(route))

    # -- courses
    def set_course(self, course: Course) -> None:
        """Make ``course`` the default (no ``match``) or the course of matching builds to come."""
        if course.match is None:
            self.default_course = course
        else:
            self.courses.insert(0, course)

    def course_for(self, entries: list[str], image: str | None) -> Course:
        return next((c for c in self.courses if c.matches(entries, image)), self.default_course)

    # -- requests
    def submit(self, sub: Submission, ip: str | None, now: float) -> ContainerRequest:
        """Accept a checked request: find its build by identity or start one, or serve the image as is."""
        user = self._user(sub.token)
        course = self.course_for(sub.entries, sub.body.get("containerImage"))
        request_id = secrets.token_hex(6)
        build = build_id = build_new = succeeded = None
        if sub.dockerfile is not None:
            container_id = sub.container_id()
            repo = self._build_repository(sub)
            strategy = sub.body.get("nameStrategy")
            if strategy is None and self.config.public_repository and repo.startswith(self.config.public_repository):
                strategy = "imageSuffix"
            image = target_image(sub.fmt, repo, container_id, sub.condafile, strategy)
            prefix = "mb" if "," in sub.platform else "bd"
            existing = self.latest_build.get(container_id)
            if sub.body.get("dryRun"):
                build_id, build_new = f"{prefix}-{container_id}_0", existing is None or existing.succeeded is not True
                succeeded = True
            elif existing is not None:  # built or building: Wave's build store answers with that build
                build, build_id, build_new, succeeded = existing, existing.id, False, existing.succeeded
            else:
                number = 1 + sum(b.container_id == container_id for b in self.builds.values())
                build_id = f"{prefix}-{container_id}_{number}"
                build = Build(id=build_id, container_id=container_id, target_image=image, course=course,
                              dockerfile=sub.dockerfile, condafile=sub.condafile, platform=sub.platform, fmt=sub.fmt,
                              scan_id=self._scan_id(image, sub), start=now, user=user, request_ip=ip)
                self.builds[build_id] = build
                self.latest_build[container_id] = build
                build_new = True
            container_image = image
            course = build.course if build is not None else course
        else:
            container_image = Image.parse(sub.body["containerImage"]).target
            succeeded = True
        target = f"{SERVER}/wt/{request_id}/{Image.parse(container_image.removeprefix('oras://')).image_and_tag}"
        req = ContainerRequest(id=request_id, sub=sub, build=build, build_id=build_id, build_new=build_new,
                               container_image=container_image, target_image=target,
                               scan_id=self._scan_id(container_image, sub), course=course, creation=now,
                               expiration=now + TOKEN_TTL, user=user, ip=ip, succeeded=succeeded)
        self.requests[request_id] = req
        return req

    def request(self, request_id: str) -> ContainerRequest:
        req = self.requests.get(request_id)
        if req is None:
            raise WaveError(404, "Not Found")
        return req

    def build(self, build_id: str) -> Build:
        build = self.builds.get(build_id)
        if build is None:
            raise WaveError(404, "Not Found")
        return build

    def _build_repository(self, sub: Submission) -> str:
        repo = sub.body.get("buildRepository")
        if repo:
            return repo
        if sub.freeze and self.config.public_repository:
            return f"{self.config.public_repository.rstrip('/')}/library"
        return BUILD_REPOSITORY

    @staticmethod
    def _scan_id(image: str, sub: Submission) -> str | None:
        return f"sc-{digest(image)[:16]}_1" if sub.scan_mode in ("async", "required") else None

    @staticmethod
    def _user(token: str | None) -> dict[str, Any] | None:
        """The Platform user a token stands for: named after the token's digest, never the token."""
        if not token:
            return None
        tag = digest(token)[:8]
        return {"id": int(tag, 16), "userName": f"user-{tag}", "email": f"user-{tag}@wave.local"}


def redact(body: Any) -> Any:
    """A request body as ``/_sim/requests`` shows it: Platform tokens replaced by ``sha256:<hex>``."""
    if not isinstance(body, dict):
        return body
    return {k: f"sha256:{digest(v)}" if k in ("towerAccessToken", "towerRefreshToken") and isinstance(v, str) else v
            for k, v in body.items()}
