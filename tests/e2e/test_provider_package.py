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
import time
import tomllib
import zipfile
from pathlib import Path

import pytest
import requests


pytestmark = pytest.mark.e2e

REPO = Path(__file__).resolve().parents[2]
UV = Path(sys.executable).parent / "uv"
EXPECTED_DAGS = {"platform_bootstrap", "workspace_provision", "workspace_teardown", "workspace_reaper",
                 "job_intake", "job_run", "run_reaper", "wes_run", "cromwell_run",
                 "cromwell_server_provision", "cromwell_server_teardown", "container_build"}
DEV_ONLY = re.compile(r"(^|/)(devstack|hatchway_dev|simulators|tests|support)/|(^|/)(faults|conftest)\.py$")


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
            for p in (REPO / "plugins/hatchway").rglob("__init__.py")}
    assert listed == tree | {"hatchway.dags", "hatchway.charts"}


def test_the_package_imports_from_site_packages_and_not_the_repository(venv):
    out = _run(venv, "python", "-c", (
        "import importlib, json, pkgutil, sys, hatchway\n"
        "mods = [m.name for m in pkgutil.walk_packages(hatchway.__path__, 'hatchway.')\n"
        "        if not m.name.startswith('hatchway.dags') and not m.name.endswith('__main__')]\n"
        "for m in mods: importlib.import_module(m)\n"
        "print(json.dumps({'file': hatchway.__file__, 'count': len(mods),\n"
        "                  'dev': sorted(m for m in sys.modules if m.startswith(('hatchway_dev', 'include', 'support')))}))"))
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
def standalone(venv, moto_server, tmp_path_factory):
    """``airflow standalone`` of the fresh venv (scheduler, triggerer, api-server), AWS on moto.

    Nothing of the repository is on its ``PYTHONPATH``: DAGs, plugin and connection types come
    from the installed wheel.
    """
    from hatchway_dev.airflow import Airflow
    from hatchway_dev.client import AirflowClient

    requests.post(f"{moto_server.url}/moto-api/reset", timeout=10).raise_for_status()
    requests.post(f"{moto_server.url}/moto-api/config", json={"batch": {"use_docker": False}},
                  timeout=10).raise_for_status()
    root = tmp_path_factory.mktemp("standalone")
    home, plugins = root / "airflow", root / "plugins"  # an empty plugins folder: the plugin is the wheel's
    plugins.mkdir()
    env = {**moto_server.airflow_env(), "AIRFLOW__CORE__TEST_CONNECTION": "Enabled",
           "AIRFLOW_VAR_HATCHWAY_CONFIG": json.dumps(
               {"region": "us-east-1", "bucket": "hatchway-ui-data", "prefix": "hatchway", "compute_wait_delay": 1})}
    airflow = Airflow(home, env=env, dags_folder=Path(venv["dags"]), plugins_folder=plugins,
                      bin_dir=venv["bin"], pythonpath=[])
    airflow.start()
    try:
        client = AirflowClient(airflow.url, airflow.username, airflow.password).login()
        yield airflow, client, client.session
    finally:
        airflow.stop()


@pytest.fixture(scope="module")
def api_server(standalone):
    airflow, _, session = standalone
    return airflow.url, session


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


# -- seen in a real browser: Debian's chromium driven by Playwright ---------------------------
SCREENSHOTS = REPO / ".screenshots"  # git-ignored; docs/img keeps the one the README shows
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# As root, headless, and quiet on a machine with no network but loopback.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update"]


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), "chromium is missing: `make system-deps` installs it (apt-get install chromium)"
    SCREENSHOTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, standalone):
    """A logged-in page of the standalone Airflow (its login form, as a person signs in)."""
    airflow, _, _ = standalone
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(f"{airflow.url}/")
    page.fill("input[name=username]", airflow.username)
    page.fill("input[name=password]", airflow.password)
    page.click("button[type=submit]")
    page.wait_for_url(f"{airflow.url}/", timeout=60_000)
    yield page
    context.close()


def _trigger_dialog(page, url: str, dag_id: str):
    page.goto(f"{url}/dags/{dag_id}")
    page.get_by_role("button", name="Trigger").click()
    dialog = page.get_by_role("dialog")
    dialog.locator("#element_workspace").wait_for()
    return dialog


def test_the_trigger_form_shows_the_params_and_its_run_succeeds(page, standalone):
    airflow, client, _ = standalone
    client.wait_for_dag("platform_bootstrap")
    client.unpause("platform_bootstrap")
    client.trigger("platform_bootstrap", "ui-bootstrap")
    assert client.wait_for_run("platform_bootstrap", "ui-bootstrap", timeout=300)["state"] == "success"

    dialog = _trigger_dialog(page, airflow.url, "workspace_provision")
    text = dialog.inner_text()
    for shown in ("Workspace", "Owner", "Cost center",
                  "3-32 lowercase letters, digits and single '-', starting with a letter",
                  "the researcher's user name or e-mail, lowercase"):
        assert shown in text
    dialog.locator("#element_workspace").fill("carol")
    dialog.locator("#element_owner").fill("carol@example.org")
    page.screenshot(path=str(SCREENSHOTS / "trigger-form.png"))
    before = {r["dag_run_id"] for r in client.runs("workspace_provision")}
    dialog.get_by_role("button", name="Trigger").click()

    def new_run() -> dict | None:
        runs = client.runs("workspace_provision")
        return next((r for r in runs if r["dag_run_id"] not in before), None)

    deadline = time.monotonic() + 60
    while (run := new_run()) is None and time.monotonic() < deadline:
        time.sleep(1)
    assert run is not None, "the form's Trigger made no run"
    assert (run["conf"]["workspace"], run["conf"]["owner"]) == ("carol", "carol@example.org")
    done = client.wait_for_run("workspace_provision", run["dag_run_id"], timeout=420)
    assert done["state"] == "success", client.task_instances("workspace_provision", run["dag_run_id"])
    # ... and the UI says so on the run's page.
    page.goto(f"{airflow.url}/dags/workspace_provision/runs/{run['dag_run_id']}")
    page.get_by_text("success", exact=False).first.wait_for()
    page.screenshot(path=str(SCREENSHOTS / "run-success.png"))


def test_an_invalid_workspace_name_shows_the_rule_and_makes_no_run(page, standalone):
    airflow, client, _ = standalone
    runs_before = len(client.runs("workspace_provision"))
    dialog = _trigger_dialog(page, airflow.url, "workspace_provision")
    dialog.locator("#element_workspace").fill("Bad_Name")
    dialog.locator("#element_owner").fill("carol@example.org")
    dialog.get_by_role("button", name="Trigger").click()
    message = dialog.get_by_text("does not match", exact=False)
    message.first.wait_for()
    assert "Invalid input for param workspace: 'Bad_Name'" in dialog.inner_text()
    page.screenshot(path=str(SCREENSHOTS / "trigger-invalid.png"))
    assert len(client.runs("workspace_provision")) == runs_before


def test_the_seqera_connection_form_shows_its_own_fields(page, standalone):
    airflow, _, _ = standalone
    page.goto(f"{airflow.url}/connections")
    page.get_by_role("button", name="Add Connection").click()
    dialog = page.get_by_role("dialog")
    combo = dialog.get_by_role("combobox").first
    combo.click()
    combo.fill("Seqera")
    page.get_by_role("option", name="Seqera Platform").click()
    dialog.get_by_text("Workspace ID").first.wait_for(state="attached")
    # The form's sections are an accordion (one open at a time); open a folded one only.
    def open_section(name: str, shows: str) -> None:
        toggle = dialog.get_by_role("button", name=name, exact=True)
        if toggle.get_attribute("aria-expanded") != "true":
            toggle.click()
        dialog.get_by_text(shows).first.wait_for()

    open_section("Standard Fields", "API URL")
    page.wait_for_timeout(800)  # the accordion's animation, for the screenshot only
    standard = dialog.inner_text()
    assert "Access token" in standard
    assert not {"Login", "Schema", "Port"} & set(standard.splitlines())  # hidden by the form's behaviour
    page.screenshot(path=str(SCREENSHOTS / "seqera-connection-standard.png"), full_page=True)
    open_section("Extra Fields", "Workspace ID")
    page.wait_for_timeout(800)
    extra = dialog.inner_text()
    for field in ("Workspace ID", "Compute environment ID", "Verify TLS",
                  "Seqera workspace (numeric id) the runs are launched and listed in"):
        assert field in extra, extra
    page.screenshot(path=str(SCREENSHOTS / "seqera-connection.png"), full_page=True)


def test_the_workspace_page_shows_a_workspaces_runs_and_costs_behind_the_login(page, standalone, browser):
    """Two jobs of workspace ``dana`` recorded as their record_usage teardowns record them, in
    the standalone's own store; the page in Airflow's navigation shows both with their costs."""
    from datetime import datetime, timedelta, timezone

    from hatchway.domain.usage import Usage
    from hatchway.store import Store, UsageRecord

    airflow, _, _ = standalone
    store = Store(f"sqlite:///{airflow.home / 'hatchway.db'}")
    try:
        store.migrate()
        store.ensure_workspace("dana", owner="dana@example.org", bucket="hatchway-ui-data")
        now = datetime.now(timezone.utc)
        for n, (state, cost) in enumerate((("SUCCEEDED", 1.2345), ("FAILED", 0.0421))):
            store.record_usage(UsageRecord(
                dag_id="job_run", dag_run_id=f"job__dana-{n}", run_id=f"INTP0000000{n + 1}",
                executing_workspace="dana", cost_center="cc-dana", state=state,
                started_at=now - timedelta(hours=3 - n), ended_at=now - timedelta(hours=2 - n),
                usage=Usage(engine="nextflow", cpu_hours=6.0 - n, memory_gib_hours=24.0, wall_seconds=3600,
                            task_count=4, failed_tasks=n, estimated_cost=cost, currency="USD")))
        # the failed job's crate, as its write_crate teardown keeps it (in the store only)
        store.save_crate("job_run", "job__dana-1", "INTP00000002", "hatchway-store://job_run/job__dana-1",
                         {"@context": "https://w3id.org/ro/crate/1.1/context",
                          "@graph": [{"@id": "#run-INTP00000002", "@type": "CreateAction",
                                      "error": "Process `SCORE` failed (exit status 3)"}]})
    finally:
        store.dispose()

    page.goto(f"{airflow.url}/plugin/hatchway-workspaces")  # the external view, in Airflow's own frame
    frame = page.frame_locator("iframe").first
    frame.get_by_role("link", name="dana").click()
    frame.get_by_text("INTP00000002").wait_for()
    text = frame.locator("body").inner_text()
    assert "Workspace dana" in text and "dana@example.org" in text
    assert "1.2345 USD" in text and "0.0421 USD" in text and "SUCCEEDED" in text and "FAILED" in text
    assert "1.28 USD (no budget)" in text  # this month's estimated cost
    page.wait_for_timeout(500)
    page.screenshot(path=str(SCREENSHOTS / "workspace-page.png"))
    links = frame.get_by_role("link", name="RO-Crate")
    assert links.count() == 1  # the failed job's; the other run kept none
    crate_url = links.first.get_attribute("href")
    crate = page.context.request.get(crate_url)  # with the logged-in session's cookie
    assert crate.status == 200 and "Process `SCORE` failed" in crate.json()["@graph"][0]["error"]

    # Without Airflow's login: no page.
    anonymous = browser.new_context().new_page()
    answer = anonymous.goto(f"{airflow.url}/hatchway/ui/workspaces/dana")
    assert answer.status == 401 and "dana@example.org" not in anonymous.content()
    assert anonymous.goto(crate_url).status == 401
    anonymous.context.close()
