"""The ``helm`` launcher: the nextflow-job chart, installed with the Helm SDK.

With no cluster configured, it runs the SDK as far as it can (lint and a client-side
dry-run install) and says so; the run then fails at the not-started timeout.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from hatchway.domain.helm_values import ChartSettings, build_values
from hatchway.domain.jobs import JobNames, JobPlatformConfig, JobRequest

log = logging.getLogger(__name__)
CHART = Path(__file__).resolve().parents[3] / "include" / "charts" / "nextflow-job"


def chart_settings(config: JobPlatformConfig) -> ChartSettings:
    return ChartSettings(namespace=config.namespace, storage_scheme=config.work_dir_scheme,
                         pipeline=config.pipeline, revision=config.revision, **config.helm)


def install_release(hook, config: JobPlatformConfig, request: JobRequest, names: JobNames) -> dict[str, Any]:
    values = build_values(request, chart_settings(config))
    hook.lint(CHART, values, namespace=config.namespace)
    if not hook.has_cluster():
        objects = hook.dry_run_install(CHART, values, names.release, config.namespace)
        log.warning("no Kubernetes cluster configured: release %s checked with a client-side dry run "
                    "(%d objects), not installed", names.release, len(objects))
        return {"launcher": "helm", "release": names.release, "installed": False, "objects": len(objects)}
    status = hook.install(CHART, values, names.release, config.namespace)
    return {"launcher": "helm", "release": names.release, "installed": True, "status": status.get("status")}
