"""The workspace key as a Kubernetes Secret: schema-valid, labelled, and only in the data field."""

from __future__ import annotations

import base64
import json
import os

import kubernetes_validate
import pytest

from hatchway.domain.names import WorkspaceNames
from hatchway.domain.workspace import PlatformConfig, WorkspaceRequest, workspace_tags
from hatchway.workspace.kube import secret_manifest

NAMES = WorkspaceNames("hatchway", "alice")
VALUE = {"aws_access_key_id": "AKIAEXAMPLEEXAMPLE12", "aws_secret_access_key": "s" * 40,
         "region": "us-east-1", "bucket_url": "s3://data/alice/", "job_queue": "arn:aws:batch:q"}
TAGS = workspace_tags(PlatformConfig(bucket="data-bucket"), WorkspaceRequest(workspace="alice",
                                                                             owner="alice@example.org"))


def test_secret_manifest_validates_against_the_kubernetes_schema():
    manifest = secret_manifest(NAMES, VALUE, TAGS)
    kubernetes_validate.validate(manifest, kubernetes_validate.latest_version(), strict=True)
    assert manifest["metadata"]["namespace"] == "hatchway-alice"
    assert manifest["metadata"]["labels"]["hatchway.io/workspace"] == "alice"


def test_secret_value_appears_only_encoded_in_data():
    manifest = secret_manifest(NAMES, VALUE, TAGS)
    decoded = base64.b64decode(manifest["data"]["AWS_SECRET_ACCESS_KEY"]).decode()
    assert decoded == VALUE["aws_secret_access_key"]
    without_data = {k: v for k, v in manifest.items() if k != "data"}
    assert VALUE["aws_secret_access_key"] not in json.dumps(without_data)


def test_a_broken_manifest_is_caught_by_the_validator():
    manifest = secret_manifest(NAMES, VALUE, TAGS)
    manifest["metadata"]["name"] = 42
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(manifest, kubernetes_validate.latest_version(), strict=True)


@pytest.mark.kubernetes
@pytest.mark.skipif(not os.environ.get("KUBECONFIG"), reason="needs a cluster: set KUBECONFIG (not counted as run)")
def test_secret_round_trip_on_a_real_cluster(monkeypatch):
    from kubernetes import client, config

    from hatchway.workspace.kube import delete_secret, put_secret

    monkeypatch.setenv("AIRFLOW_CONN_KUBERNETES_E2E", json.dumps(
        {"conn_type": "kubernetes", "extra": {"kube_config_path": os.environ["KUBECONFIG"]}}))
    put_secret("kubernetes_e2e", NAMES, VALUE, TAGS)
    put_secret("kubernetes_e2e", NAMES, VALUE, TAGS)  # an ensure: the second is a replace
    config.load_kube_config()
    stored = client.CoreV1Api().read_namespaced_secret(NAMES.kubernetes_secret, NAMES.namespace)
    assert base64.b64decode(stored.data["AWS_ACCESS_KEY_ID"]).decode() == VALUE["aws_access_key_id"]
    delete_secret("kubernetes_e2e", NAMES)
    delete_secret("kubernetes_e2e", NAMES)
