"""Every DAG imports cleanly and carries what a platform engineer needs to run it."""

from __future__ import annotations

from pathlib import Path

import pytest

DAGS = Path(__file__).resolve().parents[2] / "dags"
EXPECTED = {"platform_bootstrap", "workspace_provision", "workspace_teardown", "workspace_reaper",
            "job_intake", "job_run", "container_build"}


@pytest.fixture(scope="module")
def dagbag():
    from airflow.dag_processing.dagbag import DagBag

    return DagBag(dag_folder=str(DAGS))


def test_every_dag_file_imports_without_errors(dagbag):
    assert dagbag.import_errors == {}
    assert EXPECTED <= set(dagbag.dag_ids)


def test_every_dag_has_owner_tags_and_docs(dagbag):
    for dag_id, dag in dagbag.dags.items():
        assert "hatchway" in dag.tags, dag_id
        assert dag.doc_md and len(dag.doc_md.strip()) > 80, dag_id
        assert all(task.owner == "hatchway" for task in dag.tasks), dag_id


def test_every_param_has_a_schema_type(dagbag):
    for dag_id, dag in dagbag.dags.items():
        for name, param in dag.params.items():
            assert "type" in param.schema, f"{dag_id}.{name} has no JSON-schema type"


@pytest.mark.parametrize("bad", ["Alice", "a..b", "a" * 200, "a;rm -rf /", "$(id)", "ab", "a--b", "-ab"])
def test_trigger_form_rejects_bad_workspace_names(dagbag, bad):
    from airflow.sdk.exceptions import ParamValidationError

    dag = dagbag.dags["workspace_provision"]
    with pytest.raises(ParamValidationError, match="workspace"):
        _params_with(dag, workspace=bad, owner="alice").validate()


def test_trigger_form_accepts_a_good_request(dagbag):
    dag = dagbag.dags["workspace_provision"]
    params = _params_with(dag, workspace="alice-demo", owner="alice@example.org")
    assert params.validate()["workspace"] == "alice-demo"


def _params_with(dag, **values):
    """The DAG's Params with values typed in, as the trigger form sets them (each is validated)."""
    import copy

    params = copy.deepcopy(dag.params)
    params.update(values)
    return params


def test_dag_files_import_nothing_heavy_at_top_level():
    """Parse time is a tracked figure: DAG files add no cloud SDK to what Airflow itself loads."""
    import subprocess
    import sys

    code = ("import sys, glob, runpy\n"
            "import airflow.sdk\n"
            "heavy = ('boto3', 'botocore', 'google.cloud.storage', 'kubernetes', 'confluent_kafka', 'helm_python')\n"
            "before = {m for m in heavy if m in sys.modules}\n"
            f"[runpy.run_path(p) for p in sorted(glob.glob({str(DAGS)!r} + '/*.py'))]\n"
            "print('HEAVY=' + ','.join(m for m in heavy if m in sys.modules and m not in before))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    added = [line for line in out.stdout.splitlines() if line.startswith("HEAVY=")]
    assert added == ["HEAVY="]


@pytest.mark.parametrize("field,bad", [("packages", ["sam tools"]), ("platform", "linux/s390x"),
                                       ("format", "oci"), ("name", "Bad_Name"), ("base_image", "UPPER/case")])
def test_container_build_form_refuses_bad_requests(dagbag, field, bad):
    from airflow.sdk.exceptions import ParamValidationError

    with pytest.raises(ParamValidationError):
        _params_with(dagbag.dags["container_build"], **{"workspace": "alice", "packages": ["samtools=1.19"],
                                                        field: bad}).validate()


def test_container_build_form_accepts_packages_with_versions(dagbag):
    params = _params_with(dagbag.dags["container_build"], workspace="alice",
                          packages=["samtools=1.19", "bioconda::bwa==0.7.17", "python=3.11=h1234_0"])
    assert params.validate()["packages"] == ["samtools=1.19", "bioconda::bwa==0.7.17", "python=3.11=h1234_0"]
