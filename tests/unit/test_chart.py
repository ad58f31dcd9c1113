"""The nextflow-job chart, rendered, linted and dry-run installed for real with helm-python-sdk.

No cluster here: every rendered object is checked against the Kubernetes schemas
(kubernetes-validate, strict), and the hook's cluster actions must refuse clearly.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any, Iterator

import kubernetes_validate
import pytest

from hatchway_dev.process import free_port
from hatchway.domain.helm_values import ChartSettings, build_values
from hatchway.domain.jobs import JobNames, JobRequest
from hatchway.hooks.helm import HelmChartError, HelmClusterNotConfigured, HelmHook, HelmHookError

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "include/charts/nextflow-job"
EXAMPLE = REPO / "include/examples/intervene-job-request.json"
NAMESPACE = "intervene-dev"
KUBE_VERSION = "1.33.0"
# Recognisable stand-ins: where a Secret's name and keys go. Each may appear only as a
# secretKeyRef, never as a value (the real token never reaches Hatchway at all).
SEQERA_SECRET = "fake-seqera-token-secret"
SEQERA_TOKEN_KEY = "FAKE_TOKEN_KEY_5eb1"
SEQERA_WORKSPACE_KEY = "FAKE_WORKSPACE_KEY_77c2"
TRANSFER_SECRET = "fake-transfer-secret"
FAKE_TOKEN = "eyJ0aWQiOiAxNTE3fQ.FAKE-SEQERA-TOKEN-c0ffee"


@pytest.fixture(scope="module")
def names() -> JobNames:
    return JobNames(NAMESPACE, "INTP00000000513")


@pytest.fixture(scope="module")
def values() -> dict[str, Any]:
    request = JobRequest.model_validate_json(EXAMPLE.read_text())
    settings = ChartSettings(namespace=NAMESPACE, seqera_secret_name=SEQERA_SECRET,
                             seqera_token_key=SEQERA_TOKEN_KEY, seqera_workspace_key=SEQERA_WORKSPACE_KEY,
                             transfer_secret_name=TRANSFER_SECRET,
                             key_handler_url="https://keys.example.org/key-handler",
                             globus_base_url="https://g-1a2b3c.data.globus.org",
                             gcp_project="intervene", gcp_location="europe-west2")
    return build_values(request, settings, with_transfer=True)


@pytest.fixture(scope="module")
def hook() -> HelmHook:
    return HelmHook()


@pytest.fixture(scope="module")
def manifests(hook, values, names) -> list[dict[str, Any]]:
    return hook.render(CHART, values, names.release, NAMESPACE)


def by_kind(manifests: list[dict], kind: str) -> dict:
    [obj] = [m for m in manifests if m["kind"] == kind]
    return obj


def walk(node: Any, path: tuple = ()) -> Iterator[tuple[tuple, Any]]:
    if isinstance(node, dict):
        for key, value in node.items():
            yield from walk(value, (*path, key))
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from walk(value, (*path, i))
    else:
        yield path, node


def without(values: dict, *path: str) -> dict:
    changed = copy.deepcopy(values)
    node = changed
    for key in path[:-1]:
        node = node[key]
    del node[path[-1]]
    return changed


# -- the chart renders, lints and dry-runs
def test_chart_renders_lints_and_dry_run_installs(hook, values, names, manifests):
    assert sorted(m["kind"] for m in manifests) == ["ConfigMap", "Job"]

    report = hook.lint(CHART, values, namespace=NAMESPACE)
    assert [m for m in report["messages"] if m["severity"] >= 2] == []

    installed = hook.dry_run_install(CHART, values, names.release, NAMESPACE)
    assert installed == manifests


@pytest.mark.parametrize("kind", ["ConfigMap", "Job"])
def test_every_manifest_validates_strictly(manifests, kind):
    obj = by_kind(manifests, kind)
    kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
    assert obj["metadata"]["namespace"] == NAMESPACE


def test_all_rendered_objects_are_validated(manifests):
    # The parametrised test above names the kinds; a new template must be added there too.
    assert {m["kind"] for m in manifests} == {"ConfigMap", "Job"}


# -- secrets stay references
def test_manifests_reference_secrets_and_never_carry_them(manifests, values):
    text = json.dumps(manifests) + json.dumps(values)
    assert FAKE_TOKEN not in text
    assert not [m for m in manifests if m["kind"] == "Secret"]

    sentinels = {SEQERA_SECRET, SEQERA_TOKEN_KEY, SEQERA_WORKSPACE_KEY, TRANSFER_SECRET}
    places = [(path, value) for m in manifests for path, value in walk(m) if value in sentinels]
    assert places, "the Secret references are missing"
    for path, _ in places:
        assert path[-2] == "secretKeyRef" and path[-1] in ("name", "key"), f"secret setting used at {path}"

    env = {e["name"]: e for c in by_kind(manifests, "Job")["spec"]["template"]["spec"]["containers"] for e in c["env"]}
    assert env["TOWER_ACCESS_TOKEN"] == {"name": "TOWER_ACCESS_TOKEN", "valueFrom": {"secretKeyRef": {
        "name": SEQERA_SECRET, "key": SEQERA_TOKEN_KEY}}}
    assert env["TOWER_WORKSPACE_ID"]["valueFrom"]["secretKeyRef"] == {"name": SEQERA_SECRET,
                                                                      "key": SEQERA_WORKSPACE_KEY}


def test_no_secret_like_environment_variable_has_a_plain_value(manifests):
    pod = by_kind(manifests, "Job")["spec"]["template"]["spec"]
    for container in pod["initContainers"] + pod["containers"]:
        for entry in container.get("env", []):
            if any(word in entry["name"] for word in ("TOKEN", "PASSWORD", "PASSPHRASE", "SECRET", "WORKSPACE_ID")):
                assert "value" not in entry and "secretKeyRef" in entry["valueFrom"], entry["name"]


def test_a_token_value_in_the_values_is_refused(hook, values, names):
    leaky = copy.deepcopy(values)
    leaky["seqera"]["token"] = FAKE_TOKEN

    with pytest.raises(HelmChartError, match="token"):
        hook.render(CHART, leaky, names.release, NAMESPACE)


# -- the Job
def test_job_runs_once_and_names_the_run(manifests, names):
    job = by_kind(manifests, "Job")

    assert job["metadata"]["name"] == names.release
    assert job["spec"]["backoffLimit"] == 0
    assert job["spec"]["ttlSecondsAfterFinished"] == 3600
    assert job["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    for labels in (job["metadata"]["labels"], job["spec"]["template"]["metadata"]["labels"]):
        assert labels["hatchway.io/job-id"] == "INTP00000000513"
        assert labels["hatchway.io/run-name"] == names.run_name
        assert labels["app.kubernetes.io/instance"] == names.release


def test_init_container_transfers_without_local_disk(manifests):
    pod = by_kind(manifests, "Job")["spec"]["template"]["spec"]
    [transfer] = pod["initContainers"]

    assert transfer["command"][:3] == ["python", "-m", "hatchway.transfer"]
    assert transfer["command"][3:] == ["--config", "/etc/hatchway/transfer.json"]
    # Plaintext may only go to the bucket: read-only root, and the config is its only mount.
    assert transfer["securityContext"]["readOnlyRootFilesystem"] is True
    assert [(m["name"], m.get("readOnly")) for m in transfer["volumeMounts"]] == [("config", True)]
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in transfer["env"] if "valueFrom" in e}
    assert env == {
        "HATCHWAY_KEY_HANDLER_TOKEN": {"name": TRANSFER_SECRET, "key": "key-handler-token", "optional": True},
        "HATCHWAY_KEY_PASSPHRASE": {"name": TRANSFER_SECRET, "key": "key-passphrase", "optional": True},
        "HATCHWAY_SOURCE_TOKEN": {"name": TRANSFER_SECRET, "key": "source-token", "optional": True},
    }


def test_nextflow_runs_pgsc_calc_with_tower(manifests, values, names):
    [nextflow] = by_kind(manifests, "Job")["spec"]["template"]["spec"]["containers"]
    command = nextflow["command"]

    assert command[:3] == ["nextflow", "run", "pgscatalog/pgsc_calc"]
    assert command[command.index("-r") + 1] == values["pipeline"]["revision"]
    assert command[command.index("-name") + 1] == names.run_name
    assert command[command.index("-params-file") + 1] == "/etc/hatchway/params.json"
    assert command[command.index("-with-tower") + 1] == "https://api.cloud.seqera.io"


def test_config_map_carries_params_samplesheet_and_transfer(manifests, values):
    data = by_kind(manifests, "ConfigMap")["data"]

    params = json.loads(data["params.json"])
    assert params == {**values["params"], "input": "/etc/hatchway/samplesheet.json"}
    assert params["min_overlap"] == 0.75
    assert json.loads(data["samplesheet.json"]) == values["samplesheet"]
    assert json.loads(data["transfer.json"]) == values["transfer"]
    assert 'workDir = "gs://intervene-dev-intp00000000513-work/work"' in data["nextflow.config"]
    assert 'process.executor = "google-batch"' in data["nextflow.config"]


def test_transfer_config_is_what_the_transfer_accepts(manifests):
    from hatchway.transfer.config import TransferConfig

    config = TransferConfig.model_validate_json(by_kind(manifests, "ConfigMap")["data"]["transfer.json"])
    assert [f.filename for f in config.source.files] == ["hapnest.pgen.c4gh", "hapnest.pvar.c4gh",
                                                         "hapnest.psam.c4gh"]


def test_deployment_settings_reach_the_pod(hook, values, names):
    tuned = {**values, "serviceAccountName": "nextflow", "nodeSelector": {"pool": "jobs"},
             "images": {"transfer": {"repository": "registry.example.org/transfer", "tag": "9"},
                        "nextflow": {"repository": "registry.example.org/nextflow", "tag": "24.10.0"}}}
    rendered = hook.render(CHART, tuned, names.release, NAMESPACE)
    pod = by_kind(rendered, "Job")["spec"]["template"]["spec"]

    for obj in rendered:
        kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
    assert pod["serviceAccountName"] == "nextflow"
    assert pod["nodeSelector"] == {"pool": "jobs"}
    assert pod["initContainers"][0]["image"] == "registry.example.org/transfer:9"
    assert pod["containers"][0]["image"] == "registry.example.org/nextflow:24.10.0"


# -- bad values fail clearly
@pytest.mark.parametrize("path, field", [
    (("runName",), "runName"),
    (("jobId",), "jobId"),
    (("seqera", "secretName"), "secretName"),
    (("params", "outdir"), "outdir"),
    (("transfer", "secret_key"), "secret_key"),
])
def test_missing_required_value_fails_render_lint_and_dry_run(hook, values, names, path, field):
    bad = without(values, *path)

    with pytest.raises(HelmChartError, match=field):
        hook.render(CHART, bad, names.release, NAMESPACE)
    with pytest.raises(HelmChartError, match=field):
        hook.lint(CHART, bad, namespace=NAMESPACE)
    with pytest.raises(HelmChartError, match=field):
        hook.dry_run_install(CHART, bad, names.release, NAMESPACE)


def test_invalid_release_name_is_refused(hook, values):
    with pytest.raises(HelmChartError, match="INTP00000000513"):
        hook.render(CHART, values, "INTP00000000513", NAMESPACE)


# -- no cluster here
def test_without_a_cluster_only_offline_actions_are_available(monkeypatch, values, names):
    monkeypatch.delenv("KUBECONFIG", raising=False)
    hook = HelmHook()

    assert hook.has_cluster() is False
    with pytest.raises(HelmClusterNotConfigured, match="only render, lint and dry_run_install"):
        hook.install(CHART, values, names.release, NAMESPACE)
    with pytest.raises(HelmClusterNotConfigured):
        hook.uninstall(names.release, NAMESPACE)


def _dead_kubeconfig(tmp_path: Path) -> Path:
    # A cluster whose API server port nothing listens on: Helm's own error must come through.
    path = tmp_path / "kubeconfig"
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "dead",
        "clusters": [{"name": "dead", "cluster": {"server": f"https://127.0.0.1:{free_port()}"}}],
        "users": [{"name": "nobody", "user": {"token": "not-a-token"}}],
        "contexts": [{"name": "dead", "context": {"cluster": "dead", "user": "nobody"}}],
    }))
    return path


def test_failed_install_raises_with_helms_reason(tmp_path, monkeypatch, values, names):
    monkeypatch.setenv("KUBECONFIG", str(_dead_kubeconfig(tmp_path)))
    hook = HelmHook()

    assert hook.has_cluster() is True
    with pytest.raises(HelmHookError, match=r"helm install of intp00000000513 in intervene-dev failed: "
                                            r"kubernetes cluster unreachable"):
        hook.install(CHART, values, names.release, NAMESPACE)


def test_cluster_comes_from_a_kubernetes_connection(tmp_path, monkeypatch, values, names):
    monkeypatch.delenv("KUBECONFIG", raising=False)
    kubeconfig = _dead_kubeconfig(tmp_path)
    monkeypatch.setenv("AIRFLOW_CONN_HELM_TEST_CLUSTER", json.dumps(
        {"conn_type": "kubernetes", "extra": {"kube_config_path": str(kubeconfig)}}))
    server = json.loads(kubeconfig.read_text())["clusters"][0]["cluster"]["server"]
    hook = HelmHook(kubernetes_conn_id="helm_test_cluster")

    assert hook.has_cluster() is True
    with pytest.raises(HelmHookError, match=f"helm uninstall of .* failed: .*{server}"):
        hook.uninstall(names.release, NAMESPACE)


def test_require_cluster_names_what_it_looked_for(monkeypatch):
    monkeypatch.delenv("KUBECONFIG", raising=False)
    with pytest.raises(HelmClusterNotConfigured, match=r"kubernetes_conn_id is not set .* KUBECONFIG is not set"):
        HelmHook().require_cluster()
    monkeypatch.setenv("AIRFLOW_CONN_EMPTY_CLUSTER", json.dumps({"conn_type": "kubernetes", "extra": {}}))
    with pytest.raises(HelmClusterNotConfigured, match="connection 'empty_cluster' names no cluster"):
        HelmHook(kubernetes_conn_id="empty_cluster").require_cluster()


def test_without_a_transfer_the_chart_has_no_init_container(hook, values, names):
    # What job_run installs: its transfer_inputs task decrypted the inputs already.
    plain = {k: v for k, v in values.items() if k not in ("transfer", "transferSecrets")}
    rendered = hook.render(CHART, plain, names.release, NAMESPACE)

    for obj in rendered:
        kubernetes_validate.validate(obj, KUBE_VERSION, strict=True)
    assert "initContainers" not in by_kind(rendered, "Job")["spec"]["template"]["spec"]
    assert "transfer.json" not in by_kind(rendered, "ConfigMap")["data"]
    hook.lint(CHART, plain, namespace=NAMESPACE)


def test_a_built_container_runs_every_process_and_a_bad_one_is_refused(hook, values, names):
    image = "wave.seqera.io/wt/8f2c1a/hatchway/samtools_bwa:1a2b3c4d"
    with_image = {**values, "nextflow": {**values["nextflow"], "processContainer": image}}
    rendered = hook.render(CHART, with_image, names.release, NAMESPACE)
    assert f'process.container = "{image}"' in by_kind(rendered, "ConfigMap")["data"]["nextflow.config"]
    hook.lint(CHART, with_image, namespace=NAMESPACE)
    plain = hook.render(CHART, values, names.release, NAMESPACE)
    assert "process.container" not in by_kind(plain, "ConfigMap")["data"]["nextflow.config"]
    bad = {**values, "nextflow": {**values["nextflow"], "processContainer": 'x"; evil = "1'}}
    with pytest.raises(Exception, match="processContainer|pattern"):
        hook.lint(CHART, bad, namespace=NAMESPACE)


def test_build_values_puts_the_built_image_where_the_chart_reads_it():
    request = JobRequest.model_validate_json(EXAMPLE.read_text())
    settings = ChartSettings(namespace=NAMESPACE, seqera_secret_name=SEQERA_SECRET, seqera_token_key=SEQERA_TOKEN_KEY,
                             seqera_workspace_key=SEQERA_WORKSPACE_KEY, gcp_project="intervene",
                             key_handler_url="https://keys.example.org/key-handler",
                             globus_base_url="https://g-1a2b3c.data.globus.org", gcp_location="europe-west2")
    assert build_values(request, settings, container_image="quay.io/x/y:1")["nextflow"]["processContainer"] == \
        "quay.io/x/y:1"
    assert "processContainer" not in build_values(request, settings)["nextflow"]
