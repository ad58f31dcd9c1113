"""Where the job lifecycle reads its settings from."""

from __future__ import annotations

from hatchway.domain.jobs import JobPlatformConfig

JOBS_VARIABLE = "hatchway_jobs_config"


def load_jobs_config(variable: str = JOBS_VARIABLE) -> JobPlatformConfig:
    from airflow.sdk import Variable

    raw = Variable.get(variable, default=None)
    return JobPlatformConfig.model_validate_json(raw) if raw else JobPlatformConfig()
