"""HelmHook against a real cluster: install, idempotent re-install, conflict, uninstall.

Runs only when KUBECONFIG points at a cluster (kind, minikube, a dev cluster); the Job's
images need not be pullable: the test checks the release and its objects, not the run.
Each run uses its own namespace and deletes it afterwards.
"""

from __future__ import annotations

import base64
import copy
import os
import time
import uuid
from pathlib import Path

import pytest

from hatchway.domain.helm_values import ChartSettings, build_values
from hatchway.domain.jobs import JobNames, JobRequest
from hatchway.hooks.helm import HelmHook, HelmReleaseConflict

pytestmark = [
    pytest.mark.kubernetes,
    pytest.mark.skipif(not os.environ.get("KUBECONFIG"),
                       reason="needs a Kubernetes cluster: set KUBECONFIG to run the Helm install/uninstall test"),
]

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "include/charts/nextflow-job"
EXAMPLE = REPO / "include/examples/intervene-job-request.json"
SEQERA_SECRET = "seqera-credentials"
FAKE_TOKEN = "FAKE-SEQERA-TOKEN-for-e2e-only"


@pytest.fixture(scope="module")
def core():
    from kubernetes import client, config

    config.load_kube_config()
    return client.CoreV1Api()


@pytest.fixture(scope="module")
def namespace(core):
    from kubernetes import client
    from kubernetes.client.exceptions import ApiException

    name = f"hatchway-e2e-{uuid.uuid4().hex[:8]}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    core.create_namespaced_secret(name, client.V1Secret(
        metadata=client.V1ObjectMeta(name=SEQERA_SECRET), type="Opaque",
        data={"token": base64.b64encode(FAKE_TOKEN.encode()).decode(),
              "workspace_id": base64.b64encode(b"1234567890").decode()}))
    yield name
    try:
        core.delete_namespace(name)
    except ApiException as exc:
        if exc.status != 404:
            raise


@pytest.fixture(scope="module")
def values(namespace):
    request = JobRequest.model_validate_json(EXAMPLE.read_text())
    settings = ChartSettings(namespace=namespace, seqera_secret_name=SEQERA_SECRET,
                             key_handler_url="https://keys.example.org/key-handler",
                             globus_base_url="https://g-1a2b3c.data.globus.org")
    return build_values(request, settings)


def _wait_gone(read, timeout: float = 60) -> bool:
    from kubernetes.client.exceptions import ApiException

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            read()
        except ApiException as exc:
            if exc.status == 404:
                return True
            raise
        time.sleep(1)
    return False


def test_install_is_idempotent_and_uninstall_removes_everything(core, namespace, values):
    from kubernetes import client

    hook = HelmHook(timeout=120)
    names = JobNames(namespace, values["jobId"])
    assert hook.has_cluster()

    first = hook.install(CHART, values, names.release, namespace)
    assert first["status"] == "deployed" and first["revision"] == 1

    batch = client.BatchV1Api()
    job = batch.read_namespaced_job(names.release, namespace)
    assert job.spec.backoff_limit == 0
    assert job.metadata.labels["hatchway.io/run-name"] == names.run_name
    config_map = core.read_namespaced_config_map(f"{names.release}-config", namespace)
    assert FAKE_TOKEN not in str(config_map.data)

    # A retried task converges: same values, no new revision.
    again = hook.install(CHART, values, names.release, namespace)
    assert again["revision"] == 1

    other = copy.deepcopy(values)
    other["params"]["min_overlap"] = 0.5
    with pytest.raises(HelmReleaseConflict, match="other values"):
        hook.install(CHART, other, names.release, namespace)

    assert hook.uninstall(names.release, namespace) is True
    assert hook.release_status(names.release, namespace) is None
    assert _wait_gone(lambda: batch.read_namespaced_job(names.release, namespace))
    assert _wait_gone(lambda: core.read_namespaced_config_map(f"{names.release}-config", namespace))

    # Teardown runs whatever happened before it: a missing release is fine.
    assert hook.uninstall(names.release, namespace) is False
