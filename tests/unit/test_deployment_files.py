"""The deployment files are consistent with the package (no Docker engine runs here)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]


def test_compose_runs_every_airflow_component_on_celery_postgres_redis():
    compose = yaml.safe_load((REPO / "docker-compose.yaml").read_text())
    services = compose["services"]
    airflow = {name: s for name, s in services.items() if name.startswith("airflow-")}
    commands = {" ".join(s["command"]) for s in airflow.values()}
    assert {"airflow api-server", "airflow scheduler", "airflow dag-processor", "airflow triggerer",
            "airflow celery worker", "airflow db migrate"} == commands
    for service in airflow.values():
        env = service["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql")
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://redis")
        json.loads(env["AIRFLOW_CONN_AWS_DEFAULT"])
        json.loads(env["AIRFLOW_VAR_HATCHWAY_CONFIG"])
    assert {"postgres", "redis", "moto"} <= set(services)


def test_image_and_lock_pin_the_same_airflow():
    dockerfile = (REPO / "Dockerfile").read_text()
    lock = (REPO / "requirements.txt").read_text().splitlines()
    airflow = next(line for line in lock if line.startswith("apache-airflow=="))
    assert f"apache/airflow:{airflow.split('==')[1]}-python3.11" in dockerfile


def test_lock_is_fully_pinned():
    for name in ("requirements.txt", "requirements-dev.txt"):
        pins = [ln for ln in (REPO / name).read_text().splitlines() if ln and not ln.startswith((" ", "#", "-"))]
        assert pins and all("==" in ln for ln in pins), name


def test_example_config_and_request_validate():
    from hatchway.domain.workspace import PlatformConfig, WorkspaceRequest

    PlatformConfig.from_json((REPO / "include/examples/hatchway-config.json").read_text())
    WorkspaceRequest.model_validate_json((REPO / "include/examples/workspace-provision.json").read_text())
