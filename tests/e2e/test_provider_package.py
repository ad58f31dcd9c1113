"""The hatchway-airflow wheel, installed into a fresh venv with nothing of the repository beside it.

The wheel is built from exactly what the Dockerfile's build stage copies, installed with the
lock as constraints (so its own dependency list must be complete), and run from an empty
folder with no ``PYTHONPATH``: Airflow must find the provider, its connection type and form,
the DAGs, and the front door through the package alone.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
import requests

from hatchway.devstack.process import ManagedProcess, free_port, wait_until

pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
UV = Path(sys.executable).parent / "uv"
EXPECTED_DAGS = {"platform_bootstrap", "workspace_provision", "workspace_teardown", "workspace_reaper",
                 "job_intake", "job_run", "run_reaper", "wes_run"}
DEV_ONLY = re.compile(r"(^|/)(devstack|simulators|tests)/|(^|/)(faults|conftest|transfer_stand_ins)\.py$")


def _wheel_stage_sources() -> list[str]:
    """The repository paths the Dockerfile's wheel stage copies (``COPY <src>... <dest>`` before stage 2)."""
    text = (REPO / "Dockerfile").read_text()
    stage = text.split("\nFROM ", 2)[1]  # the first FROM's body (the wheel stage)
    sources = []
    for line in stage.splitlines():
        if line.startswith("COPY ") and "--from" not in line:
            sources += line.split()[1:-1]
    return sources


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    context = tmp_path_factory.mktemp("image-context")
    for source in _wheel_stage_sources():
        src = REPO / source
        if src.is_dir():
            shutil.copytree(src, context / source, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        else:
            shutil.copy2(src, context / source)
    out = tmp_path_factory.mktemp("dist")
    subprocess.run([str(UV), "build", "--wheel", "--no-build-isolation", "--python", sys.executable,
                    "--out-dir", str(out), str(context)], check=True, capture_output=True, text=True)
    [built] = out.glob("hatchway_airflow-*.whl")
    return built


@pytest.fixture(scope="module")
def venv(wheel, tmp_path_factory) -> dict:
    """A fresh venv with the wheel (its [celery] extra too, as the image has), an empty Airflow home."""
    root = tmp_path_factory.mktemp("fresh")
    subprocess.run([str(UV), "venv", "--quiet", "--python", sys.executable, str(root / "venv")], check=True)
    python = root / "venv" / "bin" / "python"
    subprocess.run([str(UV), "pip", "install", "--quiet", "--python", str(python), "-c", str(REPO / "requirements.txt"),
                    f"{wheel}[celery]"], check=True, capture_output=True, text=True)
    home = root / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW", "PYTHON", "HATCHWAY"))}
    dags = subprocess.run([str(python), "-c", "import hatchway; print(hatchway.dags_folder())"], check=True,
                          capture_output=True, text=True, cwd=root, env=env).stdout.strip()
    assert dags.startswith(str(root))
    env.update(PATH=f"{python.parent}{os.pathsep}{os.environ['PATH']}", AIRFLOW_HOME=str(home),
               AIRFLOW__CORE__DAGS_FOLDER=dags, AIRFLOW__CORE__LOAD_EXAMPLES="False",
               AIRFLOW__CORE__PLUGINS_FOLDER=str(home / "plugins"),
               AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=f"sqlite:///{home / 'airflow.db'}")
    return {"python": python, "bin": python.parent, "home": home, "dags": dags, "env": env, "cwd": root}


def _run(venv: dict, *argv: str, **extra_env: str) -> str:
    done = subprocess.run([str(venv["bin"] / argv[0]), *argv[1:]], env={**venv["env"], **extra_env},
                          cwd=venv["cwd"], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def _json_out(text: str):
    """The JSON document in a CLI's output (Airflow may print log lines before it)."""
    starts = [m.start(1) for m in re.finditer(r"(?:^|\n)([\[{])", text)]
    for start in starts:
        try:
            return json.loads(text[start:])
        except json.JSONDecodeError:
            continue
    raise AssertionError(f"no JSON document in: {text[-2000:]}")


def test_wheel_holds_the_package_its_dags_and_chart_and_nothing_of_the_dev_stack(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert [n for n in names if DEV_ONLY.search(n)] == []
    assert {f"hatchway/dags/{d}.py" for d in ("job_run", "wes_run", "workspace_provision")} <= set(names)
    assert "hatchway/charts/nextflow-job/templates/job.yaml" in names
    assert "hatchway/store/migrations/versions/0001_initial.py" in names
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    text = zipfile.ZipFile(wheel).read(entry_points).decode()
    assert "[apache_airflow_provider]\nprovider_info = hatchway.provider_info:get_provider_info" in text


def test_the_packages_listed_in_pyproject_are_the_production_tree():
    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    tree = {".".join(p.parent.relative_to(REPO / "plugins").parts)
            for p in (REPO / "plugins/hatchway").rglob("__init__.py") if "devstack" not in p.parts}
    assert listed == tree | {"hatchway.dags", "hatchway.charts"}


def test_the_package_imports_from_site_packages_and_not_the_repository(venv):
    out = _run(venv, "python", "-c", (
        "import importlib, json, pkgutil, sys, hatchway\n"
        "mods = [m.name for m in pkgutil.walk_packages(hatchway.__path__, 'hatchway.')\n"
        "        if not m.name.startswith('hatchway.dags') and not m.name.endswith('__main__')]\n"
        "for m in mods: importlib.import_module(m)\n"
        "print(json.dumps({'file': hatchway.__file__, 'count': len(mods),\n"
        "                  'dev': sorted(m for m in sys.modules if 'devstack' in m or 'simulators' in m)}))"))
    found = _json_out(out)
    assert "site-packages" in found["file"] and str(REPO) not in found["file"]
    assert found["count"] > 50 and found["dev"] == []


def test_airflow_lists_the_provider_and_parses_its_dags(venv):
    providers = _json_out(_run(venv, "airflow", "providers", "list", "-o", "json"))
    assert {"package_name": "hatchway-airflow", "version": "0.1.0"}.items() <= \
        next(p for p in providers if p["package_name"] == "hatchway-airflow").items()
    _run(venv, "airflow", "db", "migrate")
    dags = _json_out(_run(venv, "airflow", "dags", "list", "--local", "-o", "json"))
    assert {d["dag_id"] for d in dags} == EXPECTED_DAGS
    assert _json_out(_run(venv, "airflow", "dags", "list-import-errors", "--local", "-o", "json")) == []
    plugins = _json_out(_run(venv, "airflow", "plugins", "-o", "json"))
    assert "hatchway" in [p["name"] for p in plugins]


@pytest.fixture(scope="module")
def api_server(venv):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    passwords = venv["home"] / "passwords.json"
    passwords.write_text(json.dumps({"admin": "wheel-test-pw"}))
    env = {**venv["env"],
           "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": "admin:admin",
           "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
           "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
           "AIRFLOW__API__HOST": "127.0.0.1", "AIRFLOW__API__PORT": str(port), "AIRFLOW__API__WORKERS": "1",
           "AIRFLOW__API__BASE_URL": url, "AIRFLOW__API_AUTH__JWT_SECRET": "wheel-test-jwt-secret-0123456789",
           "AIRFLOW__API__SECRET_KEY": "wheel-test-secret"}
    subprocess.run([str(venv["bin"] / "airflow"), "db", "migrate"], env=env, cwd=venv["cwd"], check=True,
                   capture_output=True)
    proc = ManagedProcess("api-server", [str(venv["bin"] / "airflow"), "api-server"], venv["home"] / "api.log",
                          env=env, cwd=venv["cwd"]).start()

    def healthy() -> bool:
        try:
            return requests.get(f"{url}/api/v2/monitor/health", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    try:
        wait_until(healthy, timeout=180, what="the api-server of the installed wheel", procs=[proc], interval=1)
        token = requests.post(f"{url}/auth/token", json={"username": "admin", "password": "wheel-test-pw"},
                              timeout=10).json()["access_token"]
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {token}"
        yield url, session
    finally:
        proc.stop()


def test_the_api_server_serves_the_seqera_connection_form(api_server):
    url, session = api_server
    # The form metadata the UI reads (Airflow 3.3 serves it under /ui, not /api/v2).
    meta = session.get(f"{url}/ui/connections/hook_meta", timeout=30)
    assert meta.status_code == 200, meta.text
    seqera = next(h for h in meta.json() if h["connection_type"] == "seqera")
    assert seqera["hook_name"] == "Seqera Platform"
    assert {"workspace_id", "compute_env_id", "verify"} <= set(seqera["extra_fields"])
    assert seqera["extra_fields"]["workspace_id"]["schema"]["title"] == "Workspace ID"
    standard = seqera["standard_fields"]
    assert standard["host"]["title"] == "API URL" and standard["password"]["title"] == "Access token"
    assert standard["login"]["hidden"] is True


def test_the_test_button_reaches_seqera_through_the_hook(api_server, seqera_simulator):
    url, session = api_server
    seqera_simulator.reset()
    conn = seqera_simulator.connection()
    body = {"connection_id": "seqera_ui", "conn_type": "seqera", "host": conn["host"],
            "password": conn["password"], "extra": json.dumps(conn["extra"])}
    ok = session.post(f"{url}/api/v2/connections/test", json=body, timeout=60)
    assert ok.status_code == 200, ok.text
    assert ok.json()["status"] is True and ok.json()["message"].startswith("Seqera Platform")
    bad = session.post(f"{url}/api/v2/connections/test", json={**body, "password": "wrong-token"}, timeout=60).json()
    assert bad["status"] is False and "wrong-token" not in bad["message"]
    assert re.search(r"401|token", bad["message"])


def test_the_front_door_is_mounted_from_the_package(api_server):
    url, _ = api_server
    answer = requests.get(f"{url}/hatchway/ga4gh/wes/v1/service-info", timeout=30)
    # Mounted: the door itself answers (no token: 401; unconfigured: 503), not the api-server's 404.
    assert answer.status_code in (401, 503), (answer.status_code, answer.text[:300])
    assert answer.headers["content-type"].startswith("application/json")
