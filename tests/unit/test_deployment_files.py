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


COMPOSE = REPO / "docker-compose.yaml"
AIRFLOW_SERVICES = {"airflow-init": "db migrate", "airflow-apiserver": "api-server", "airflow-scheduler": "scheduler",
                    "airflow-dag-processor": "dag-processor", "airflow-triggerer": "triggerer",
                    "airflow-worker": "celery worker"}
DEV_SERVICES = {"moto", "gcs", "kafka", "seqera-sim"}


def _compose_config(*args: str) -> dict:
    """The file as a real compose implementation reads it (Debian's docker-compose; make test installs it)."""
    binary = shutil.which("docker-compose")
    assert binary, "docker-compose is missing: `make system-deps` installs it (apt-get install docker-compose)"
    done = subprocess.run([binary, "-f", str(COMPOSE), *args, "config"], capture_output=True, text=True,
                          cwd=REPO, env={**os.environ, "COMPOSE_PROJECT_NAME": "hatchway"})
    assert done.returncode == 0, done.stderr
    return yaml.safe_load(done.stdout)


def test_compose_file_is_valid_for_a_real_compose_implementation_with_and_without_the_dev_profile():
    plain, dev = _compose_config(), _compose_config("--profile", "dev")
    assert set(dev["services"]) == set(AIRFLOW_SERVICES) | {"postgres", "redis"} | DEV_SERVICES
    # Without the profile only the deployment starts: the stand-ins are in the dev profile alone.
    deployment = {name for name, service in plain["services"].items() if not service.get("profiles")}
    assert deployment == set(AIRFLOW_SERVICES) | {"postgres", "redis"}


def test_compose_runs_every_airflow_component_on_celery_postgres_redis_from_one_image():
    services = _compose_config("--profile", "dev")["services"]
    secrets = set()
    for name, command in AIRFLOW_SERVICES.items():
        service = services[name]
        assert service["image"] == services["airflow-apiserver"]["image"] and "build" in service, name
        env = service["environment"]
        assert env["AIRFLOW__CORE__EXECUTOR"] == "CeleryExecutor"
        assert env["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"].startswith("postgresql+psycopg2://airflow:airflow@postgres/")
        assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://") and "@redis:6379" in env["AIRFLOW__CELERY__BROKER_URL"]
        assert env["AIRFLOW__CORE__EXECUTION_API_SERVER_URL"] == "http://airflow-apiserver:8080/execution/"
        assert "PYTHONPATH" not in env  # the provider is installed in the image
        secrets.add(env["AIRFLOW__API_AUTH__JWT_SECRET"])
        argv = " ".join(service.get("command") or [])
        assert command in argv, (name, argv)
        if name != "airflow-init":
            assert "healthcheck" in service, name
            assert service["depends_on"]["airflow-init"]["condition"] == "service_completed_successfully"
    assert len(secrets) == 1  # the api-server signs what the workers' tasks present


def test_compose_sets_up_the_simple_auth_manager_as_it_really_works():
    services = _compose_config()["services"]
    api, init = services["airflow-apiserver"], services["airflow-init"]
    env = api["environment"]
    assert env["AIRFLOW__CORE__AUTH_MANAGER"].endswith("simple_auth_manager.SimpleAuthManager")
    assert env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS"] == "admin:admin"  # user:role
    passwords = env["AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE"]
    # airflow-init writes the file on a volume the api-server mounts at the same place.
    folder = str(Path(passwords).parent)
    def targets(service):  # "source:target:mode" as docker-compose 1.x prints them, or the long form
        return {v["target"] if isinstance(v, dict) else v.split(":")[1] for v in service["volumes"]}

    assert folder in targets(api) and folder in targets(init)
    script = " ".join(init["command"])
    assert "SIMPLE_AUTH_MANAGER_PASSWORDS_FILE" in script and "AIRFLOW_ADMIN_PASSWORD" in script
    assert init["environment"]["AIRFLOW_ADMIN_PASSWORD"] == "admin"  # the default the file's header names


def test_compose_configures_every_connection_and_variable_the_lifecycles_read():
    from hatchway.api.auth import API_CONN_ID
    from hatchway.jobs.settings import JobSettings
    from hatchway.domain.wes import WesSettings
    from hatchway.domain.workspace import PlatformConfig
    from hatchway.hooks.seqera_settings import SEQERA_CONN_ID

    services = _compose_config("--profile", "dev")["services"]
    env = services["airflow-worker"]["environment"]
    conns = {k.removeprefix("AIRFLOW_CONN_").lower(): json.loads(v) for k, v in env.items()
             if k.startswith("AIRFLOW_CONN_")}
    platform = PlatformConfig.from_json(env["AIRFLOW_VAR_HATCHWAY_CONFIG"])
    jobs = JobSettings.model_validate_json(env["AIRFLOW_VAR_HATCHWAY_JOBS_CONFIG"])
    wes = WesSettings.model_validate_json(env["AIRFLOW_VAR_HATCHWAY_WES_CONFIG"])
    needed = {platform.aws_conn_id, jobs.kafka_conn_id, jobs.gcp_conn_id, jobs.seqera_conn_id, jobs.transfer_conn_id,
              wes.seqera_conn_id, wes.aws_conn_id, SEQERA_CONN_ID, API_CONN_ID}
    assert needed <= set(conns)
    # ... each pointing at the dev profile's service of that name.
    assert conns["aws_default"]["extra"]["endpoint_url"] == "http://moto:5000"
    assert conns["kafka_default"]["extra"]["bootstrap.servers"] == "kafka:9092"
    assert conns["kafka_default"]["extra"]["enable.auto.commit"] is False  # offsets committed after the runs exist
    seqera = conns["seqera_default"]
    assert seqera["conn_type"] == "seqera" and seqera["host"] == "http://seqera-sim:8765"
    sim = services["seqera-sim"]
    assert seqera["password"] == sim["environment"]["SEQERA_SIM_TOKEN"]
    assert env["STORAGE_EMULATOR_HOST"] == "http://gcs:9023" and "9023" in " ".join(services["gcs"]["command"])
    assert all(services[s]["profiles"] == ["dev"] for s in DEV_SERVICES)


HELM_VALUES = REPO / "include/deploy/airflow-values.yaml"


def test_helm_values_validate_against_the_official_charts_schema():
    import jsonschema

    schema = json.loads((REPO / "tests/contracts/airflow-chart-values.schema.json").read_text())
    values = yaml.safe_load(HELM_VALUES.read_text())
    jsonschema.Draft7Validator(schema).validate(values)
    # ... and the schema is a real check: a wrong executor or a stray key is refused.
    for bad in ({**values, "executor": "SequentialExecutorX"}, {**values, "triggerer": {"enabled": "yes"}},
                {**values, "dags": {**values["dags"], "gitSync": {"enabled": False, "repoo": "x"}}}):
        assert list(jsonschema.Draft7Validator(schema).iter_errors(bad)), bad


def test_helm_values_deploy_hatchway_as_the_compose_file_does():
    import tomllib

    values = yaml.safe_load(HELM_VALUES.read_text())
    version = re.search(r'__version__ = "([^"]+)"', (REPO / "plugins/hatchway/__init__.py").read_text()).group(1)
    assert values["images"]["airflow"]["tag"] == version
    lock = (REPO / "requirements.txt").read_text()
    assert f'apache-airflow=={values["airflowVersion"]}\n' in lock
    assert values["executor"] in ("CeleryExecutor", "KubernetesExecutor")
    assert values["triggerer"]["enabled"] is True and values["dagProcessor"]["enabled"] is True
    assert values["dags"]["persistence"]["enabled"] is False and values["dags"]["gitSync"]["enabled"] is False
    # Every connection and Variable the compose file sets comes from a Secret here.
    compose_env = _compose_config()["services"]["airflow-worker"]["environment"]
    wanted = {k for k in compose_env if k.startswith(("AIRFLOW_CONN_", "AIRFLOW_VAR_"))} | {"HATCHWAY_DB_URL"}
    assert {s["envName"] for s in values["secret"]} == wanted
    assert all(s["secretName"] and s["secretKey"] for s in values["secret"])
    # The door lives on the api-server: its ingress (the fields api-server-ingress.yaml reads) serves every path.
    ingress = values["ingress"]["apiServer"]
    assert ingress["enabled"] is True and ingress["path"] == "/" and ingress["pathType"] == "Prefix"
    assert all(set(h) <= {"name", "tls"} for h in ingress["hosts"])
    assert tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["name"] == "hatchway-airflow"


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
    assert not [s for s in sources if s.startswith(("tests", "include/simulators")) or "hatchway_dev" in s]


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
