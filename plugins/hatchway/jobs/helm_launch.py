"""The ``helm`` launcher: the nextflow-job chart, installed with the Helm SDK.

With no cluster configured the launch fails at once, naming the connection id (or
``KUBECONFIG``) it looked for: a dry run would start nothing, and the run would otherwise
report Deployed and then wait out the not-started timeout. The chart is still linted first,
so a broken chart is reported as such.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hatchway.domain.helm_values import ChartSettings, build_values
from hatchway.domain.jobs import JobNames, JobPlatformConfig, JobRequest

log = logging.getLogger(__name__)
# Installed, the chart ships inside the package (hatchway/charts); in the repository it is
# include/charts. One of the two exists.
_PACKAGED_CHART = Path(__file__).resolve().parents[1] / "charts" / "nextflow-job"
CHART = _PACKAGED_CHART if _PACKAGED_CHART.is_dir() else \
    Path(__file__).resolve().parents[3] / "include" / "charts" / "nextflow-job"


def chart_settings(config: JobPlatformConfig) -> ChartSettings:
    return ChartSettings(namespace=config.namespace, storage_scheme=config.work_dir_scheme,
                         pipeline=config.pipeline, revision=config.revision, **config.helm)


def install_release(hook, config: JobPlatformConfig, request: JobRequest, names: JobNames,
                    container_image: str | None = None) -> dict[str, Any]:
    values = build_values(request, chart_settings(config), container_image=container_image)
    hook.lint(CHART, values, namespace=config.namespace)
    hook.require_cluster()
    status = hook.install(CHART, values, names.release, config.namespace)
    return {"launcher": "helm", "release": names.release, "installed": True, "status": status.get("status")}
