"""The ``transfer_inputs`` step: every job's Crypt4GH inputs, decrypted into its work bucket.

It runs in the Airflow task, for every launcher, before ``launch``: the samplesheet of a
Seqera launch and of a Helm release both point at ``<work bucket>/data/<file>``. It is the
``hatchway.transfer`` package (streaming, plaintext only in memory and in the bucket, sizes
checked), with the deployment's connections for the buckets and an optional connection for
the credentials; an ensure (files already transferred are skipped), so a retry is cheap.
"""

from __future__ import annotations

import os
from typing import Any

from hatchway.domain.jobs import JobPlatformConfig, JobRequest

# Extras of the credentials connection -> the environment names hatchway.transfer reads.
CREDENTIAL_EXTRAS = {"key_handler_token": "HATCHWAY_KEY_HANDLER_TOKEN", "key_passphrase": "HATCHWAY_KEY_PASSPHRASE",
                     "source_token": "HATCHWAY_SOURCE_TOKEN"}


def transfer_config(config: JobPlatformConfig, request: JobRequest):
    """The :class:`hatchway.transfer.config.TransferConfig` of one job (no credentials in it)."""
    from hatchway.domain.helm_values import TransferSettings, transfer_config as build
    from hatchway.transfer.config import TransferConfig

    settings = TransferSettings.from_helm(config.helm)
    return TransferConfig.model_validate(build(request, settings, config.namespace, config.work_dir_scheme))


def credentials(conn_id: str | None) -> dict[str, str]:
    """The transfer's environment: the worker's, with the connection's extras on top (if it exists).

    :param conn_id: a connection whose extras may hold ``key_handler_token``, ``key_passphrase``
        and ``source_token`` (Airflow masks extras with such names in logs).
    """
    env = {k: v for k, v in os.environ.items() if k in CREDENTIAL_EXTRAS.values()}
    if conn_id:
        from airflow.sdk import BaseHook
        from airflow.sdk.exceptions import AirflowNotFoundException

        try:
            extras = BaseHook.get_connection(conn_id).extra_dejson
        except AirflowNotFoundException:
            extras = {}
        env.update({name: str(extras[key]) for key, name in CREDENTIAL_EXTRAS.items() if extras.get(key)})
    return env


def storage_clients(config: JobPlatformConfig):
    """The work bucket's client from the deployment's own connection (the one that made the bucket)."""
    from hatchway.transfer.storage import Clients

    if config.storage == "gcs":
        from airflow.providers.google.cloud.hooks.gcs import GCSHook

        return Clients(gcs=GCSHook(gcp_conn_id=config.gcp_conn_id).get_conn())
    from airflow.providers.amazon.aws.hooks.s3 import S3Hook

    return Clients(s3=S3Hook(aws_conn_id=config.aws_conn_id).get_conn())


def transfer_inputs(config: JobPlatformConfig, request: JobRequest) -> list[dict[str, Any]]:
    """Decrypt the job's inputs into its work bucket; skip those already there.

    :return: one record per file (object, sizes, sha256, skipped): no secret in it.
    :raises hatchway.transfer.core.TransferError: a file failed (its object is removed).
    """
    from hatchway.transfer.core import run

    done = run(transfer_config(config, request), credentials(getattr(config, "transfer_conn_id", None)),
               storage_clients(config))
    return [{"file": d.source, "object": d.destination, "encrypted_bytes": d.encrypted_bytes,
             "plaintext_bytes": d.plaintext_bytes, "sha256": d.sha256, "skipped": d.skipped} for d in done]
