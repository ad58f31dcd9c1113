"""The deployment files are consistent with the package (no Docker engine runs here)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
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


def test_image_installs_the_wheel_and_nothing_else_of_the_repository():
    dockerfile = (REPO / "Dockerfile").read_text()
    build, runtime = dockerfile.split("\nFROM ")[1:]
    assert build.startswith("apache/airflow:") and " AS wheel" in build.splitlines()[0]
    assert "pip wheel" in build and "--no-deps" in build
    copies = [line.split()[1:-1] for line in runtime.splitlines() if line.startswith("COPY ")]
    assert copies == [["requirements.txt"], ["--from=wheel", "/src/dist/"]]
    assert re.search(r"pip install .*-c /opt/hatchway/requirements\.txt", runtime.replace("\\\n", ""))
    assert "hatchway_airflow-" in runtime and "PYTHONPATH" not in dockerfile
    # The build stage takes the package sources only: no dev stack, simulators or tests.
    sources = [part for line in build.splitlines() if line.startswith("COPY ") for part in line.split()[1:-1]]
    assert not [s for s in sources if s.startswith(("tests", "include/simulators")) or "devstack" in s]


def test_lock_is_fully_pinned():
    for name in ("requirements.txt", "requirements-dev.txt"):
        pins = [ln for ln in (REPO / name).read_text().splitlines() if ln and not ln.startswith((" ", "#", "-"))]
        assert pins and all("==" in ln for ln in pins), name


def test_example_config_and_request_validate():
    from hatchway.domain.workspace import PlatformConfig, WorkspaceRequest

    PlatformConfig.from_json((REPO / "include/examples/hatchway-config.json").read_text())
    WorkspaceRequest.model_validate_json((REPO / "include/examples/workspace-provision.json").read_text())


# -- the transfer image (include/docker/transfer.Dockerfile)
TRANSFER_DOCKERFILE = REPO / "include/docker/transfer.Dockerfile"
TRANSFER_NEEDS = {"crypt4gh", "boto3", "google-cloud-storage", "requests", "pydantic"}


def _instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n\s*", " ", "\n".join(ln for ln in text.splitlines() if not ln.lstrip().startswith("#")))
    return [(ln.split(None, 1)[0].upper(), ln.split(None, 1)[1].strip()) for ln in joined.splitlines() if ln.strip()]


def test_transfer_image_runs_the_transfer_and_installs_only_what_it_needs():
    steps = _instructions(TRANSFER_DOCKERFILE.read_text())
    assert [json.loads(args) for op, args in steps if op == "ENTRYPOINT"] == [["python", "-m", "hatchway.transfer"]]
    installs = [args for op, args in steps if op == "RUN" and "pip install" in args]
    assert len(installs) == 1
    pins = dict(p.split("==") for p in installs[0].split() if "==" in p)
    assert set(pins) == TRANSFER_NEEDS
    lock = dict(ln.split("==") for ln in (REPO / "requirements.txt").read_text().splitlines()
                if "==" in ln and not ln.startswith((" ", "#")))
    assert pins == {name: lock[name] for name in pins}, "the image and the lock pin different versions"
    copied = [args.split()[:-1] for op, args in steps if op == "COPY"]
    assert all(src.startswith(("plugins/hatchway/transfer/", "plugins/hatchway/domain/")) for c in copied for src in c)
    assert "apache-airflow" not in TRANSFER_DOCKERFILE.read_text()
    assert any(op == "USER" and args.startswith("1000") for op, args in steps)  # the chart's runAsUser


def test_transfer_image_is_the_one_the_chart_names():
    values = yaml.safe_load((REPO / "include/charts/nextflow-job/values.yaml").read_text())
    image = values["images"]["transfer"]
    build = re.search(r"docker build -f include/docker/transfer\.Dockerfile -t (\S+) \.", TRANSFER_DOCKERFILE.read_text())
    assert build and build.group(1) == f"{image['repository']}:{image['tag']}"


def test_transfer_image_files_are_enough_to_run_the_transfer(tmp_path):
    # Lay the image's files out as its COPY steps do, and import every transfer module with
    # only them on the path: a missing hatchway module fails here, not in a pod.
    steps = _instructions(TRANSFER_DOCKERFILE.read_text())
    root = tmp_path / "opt"
    for op, args in steps:
        if op != "COPY":
            continue
        *sources, target = args.split()
        dest = root / target.removeprefix("/opt/hatchway/")
        for src in sources:
            path = REPO / src
            if path.is_dir():
                shutil.copytree(path, dest, dirs_exist_ok=True)
            else:
                dest.mkdir(parents=True, exist_ok=True)
                shutil.copy(path, dest / path.name)
    modules = ", ".join(f"hatchway.transfer.{m}" for m in ("cli", "config", "core", "keys", "storage"))
    probe = f"import {modules}, sys; assert all((m.__file__ or {str(root)!r}).startswith({str(root)!r}) " \
            "for n, m in sys.modules.items() if n.startswith('hatchway')), 'imported hatchway from outside the image'"
    env = {"PATH": os.environ["PATH"], "PYTHONPATH": str(root)}
    imported = subprocess.run([sys.executable, "-c", probe], env=env, cwd=tmp_path, capture_output=True, text=True)
    assert imported.returncode == 0, imported.stderr
    helped = subprocess.run([sys.executable, "-m", "hatchway.transfer", "--help"], env=env, cwd=tmp_path,
                            capture_output=True, text=True)
    assert helped.returncode == 0 and "--config" in helped.stdout
