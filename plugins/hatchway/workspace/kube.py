"""Optional copy of a workspace's AWS key as a Kubernetes Secret in the workspace's namespace.

Only used when ``kubernetes_conn_id`` is configured. The manifest is built here (and
validated in tests); the cncf-kubernetes provider's hook applies it.
"""

from __future__ import annotations

import base64
from typing import Any

from hatchway.domain.names import WorkspaceNames

LABEL_PREFIX = "hatchway.io"


def labels(names: WorkspaceNames, tags: dict[str, str]) -> dict[str, str]:
    # Label values are stricter than tag values (no '@'): the owner stays an annotation.
    return {f"{LABEL_PREFIX}/workspace": names.workspace, f"{LABEL_PREFIX}/platform": names.prefix,
            "app.kubernetes.io/managed-by": "hatchway"}


def secret_manifest(names: WorkspaceNames, value: dict[str, str], tags: dict[str, str]) -> dict[str, Any]:
    data = {
        "AWS_ACCESS_KEY_ID": value["aws_access_key_id"],
        "AWS_SECRET_ACCESS_KEY": value["aws_secret_access_key"],
        "AWS_DEFAULT_REGION": value["region"],
        "HATCHWAY_BUCKET_URL": value["bucket_url"],
        "HATCHWAY_JOB_QUEUE": value["job_queue"],
    }
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {
            "name": names.kubernetes_secret,
            "namespace": names.namespace,
            "labels": labels(names, tags),
            "annotations": {f"{LABEL_PREFIX}/{k.split(':', 1)[-1]}": v for k, v in tags.items()},
        },
        "data": {k: base64.b64encode(v.encode()).decode() for k, v in data.items()},
    }


def _core(conn_id: str):
    from airflow.providers.cncf.kubernetes.hooks.kubernetes import KubernetesHook

    return KubernetesHook(conn_id=conn_id).core_v1_client


def put_secret(conn_id: str, names: WorkspaceNames, value: dict[str, str], tags: dict[str, str]) -> None:
    """Create the namespace if needed, then create or replace the Secret."""
    from kubernetes.client.exceptions import ApiException

    core = _core(conn_id)
    try:
        core.read_namespace(names.namespace)
    except ApiException as exc:
        if exc.status != 404:
            raise
        core.create_namespace({"apiVersion": "v1", "kind": "Namespace",
                               "metadata": {"name": names.namespace, "labels": labels(names, tags)}})
    body = secret_manifest(names, value, tags)
    try:
        core.replace_namespaced_secret(names.kubernetes_secret, names.namespace, body)
    except ApiException as exc:
        if exc.status != 404:
            raise
        core.create_namespaced_secret(names.namespace, body)


def delete_secret(conn_id: str, names: WorkspaceNames) -> None:
    from kubernetes.client.exceptions import ApiException

    try:
        _core(conn_id).delete_namespaced_secret(names.kubernetes_secret, names.namespace)
    except ApiException as exc:
        if exc.status != 404:
            raise
