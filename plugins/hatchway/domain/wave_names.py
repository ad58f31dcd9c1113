"""What a Wave build may name: platforms, templates, channels and the patterns of a package, a
channel, an image, a repository and an image name. Plain ``re``: the ``container_build`` DAG
file puts them in its Params when it is parsed; :mod:`hatchway.domain.wave` checks requests
with them."""

from __future__ import annotations

import re

SINGLE_PLATFORMS = ("linux/amd64", "linux/arm64")
MULTI_PLATFORM = "linux/amd64,linux/arm64"  # the one multi-platform pair Wave builds
# Wave's BuildTemplate constants (the TypeSpec's "conda-micromamba/v2" spelling is wrong vs the code).
CONDA_TEMPLATES = ("conda/micromamba:v1", "conda/micromamba:v2", "conda/pixi:v1")
DEFAULT_TEMPLATE = "conda/micromamba:v2"
DEFAULT_CHANNELS = ("conda-forge", "bioconda")
# A conda match spec of the simple kind: [channel::]name[=version[=build]] or name==version.
PACKAGE = re.compile(r"^(?:[a-z0-9][a-z0-9_.-]*::)?[A-Za-z0-9_][A-Za-z0-9_.-]*"
                     r"(?:(?:==|=)[A-Za-z0-9_.*+!-]+(?:=[A-Za-z0-9_.*+-]+)?)?$")
CHANNEL = re.compile(r"^(?:[a-z0-9][a-z0-9_.-]*|https://[A-Za-z0-9.-]+(?::[0-9]+)?(?:/[A-Za-z0-9_.~/-]*)?)$")
# An image reference: [registry[:port]/]path[:tag][@sha256:digest], lowercase path.
# A registry is a host with a dot or a port, or localhost (docker's rule); the path is lowercase.
_REGISTRY = r"(?:(?:[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+|localhost)(?::[0-9]+)?/|[A-Za-z0-9-]+:[0-9]+/)?"
IMAGE = re.compile(r"^" + _REGISTRY + r"[a-z0-9]+(?:[._/-][a-z0-9]+)*"
                   r"(?::[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(?:@sha256:[a-f0-9]{64})?$")
REPOSITORY = re.compile(r"^" + _REGISTRY + r"[a-z0-9]+(?:[._/-][a-z0-9]+)*$")
NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
