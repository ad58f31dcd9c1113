"""The values of the ``nextflow-job`` chart, built from a job request (pure, no I/O).

One job request becomes one structured values dict; it reaches Helm as that dict, never as
string-built ``--set`` flags. What the chart's pods need at run time is in here, except
secrets: the Seqera token and workspace, and the key handler's credentials, stay in
Kubernetes Secrets that the chart only *references* by name and key, so no secret value is
ever in the values, the release record or the rendered manifests.

Paths in the work bucket (one place for each):

- ``<work>/data/<file>``: the decrypted inputs (``hatchway.transfer`` writes them, the
  samplesheet points at them). ``job_run``'s ``transfer_inputs`` task writes them for every
  launcher before ``launch``, so the values Hatchway builds leave the chart's own transfer
  (its init container) out; ``build_values(..., with_transfer=True)`` puts it back for using
  the chart without that task;
- ``<work>/work``: Nextflow's work directory;
- ``<results>/results``: pgsc_calc's ``outdir``.
"""

from __future__ import annotations

import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from hatchway.domain.jobs import JobNames, JobRequest
from hatchway.domain.names import check_dns1123_label

DATA_PREFIX = "data"
WORK_PREFIX = "work"
RESULTS_PREFIX = "results"
DEFAULT_MIN_OVERLAP = 0.75

# Which Nextflow executor runs the pipeline's tasks next to which object store.
EXECUTORS = {"gs": "google-batch", "s3": "awsbatch"}

# Kubernetes Secret and service account names are DNS-1123 subdomains; Secret keys are [-._a-zA-Z0-9]+.
_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_SECRET_KEY = re.compile(r"^[-._a-zA-Z0-9]{1,253}$")
_REVISION = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._/-]{0,127}$")
# https:// anywhere; plain http only to a loopback address (local tests), as hatchway.transfer allows.
SOURCE_URL_PATTERN = r"^(https://[^\s/]+(/[^\s]*)?|http://(127\.0\.0\.1|localhost)(:\d+)?(/[^\s]*)?)$"
# `nextflow run` takes a hub name (owner/repo) or a repository URL.
_PIPELINE = re.compile(r"^([A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+|https://[A-Za-z0-9.-]+(/[A-Za-z0-9_.-]+)+)$")


def _object_name(value: str, what: str) -> str:
    if len(value) > 253 or not _SUBDOMAIN.match(value):
        raise ValueError(f"{what} {value!r} is not a Kubernetes object name (DNS-1123 subdomain)")
    return value


def _secret_key(value: str, what: str) -> str:
    if not _SECRET_KEY.match(value):
        raise ValueError(f"{what} {value!r} is not a Kubernetes Secret key ([-._a-zA-Z0-9]+)")
    return value


class Image(BaseModel):
    """A container image of the chart.

    :param repository: registry and repository, e.g. ``docker.io/nextflow/nextflow``.
    :param tag: image tag.
    :param pull_policy: ``IfNotPresent``, ``Always`` or ``Never``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    repository: str = Field(min_length=1, pattern=r"^[a-z0-9][a-z0-9._/:-]*$")
    tag: str = Field(min_length=1, max_length=128, pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.-]*$")
    pull_policy: Literal["IfNotPresent", "Always", "Never"] = "IfNotPresent"

    def to_values(self) -> dict[str, str]:
        return {"repository": self.repository, "tag": self.tag, "pullPolicy": self.pull_policy}


class ChartSettings(BaseModel):
    """Deployment settings of the ``helm`` launcher: everything a values dict needs besides the request.

    :param namespace: Kubernetes namespace of the releases (also the bucket and run-name prefix).
    :param storage_scheme: ``gs`` (GCS, Nextflow on Google Batch) or ``s3`` (S3, AWS Batch).
    :param seqera_secret_name: an existing Kubernetes Secret holding the Seqera token and workspace id.
    :param seqera_token_key: key of the token in that Secret.
    :param seqera_workspace_key: key of the workspace id in that Secret.
    :param seqera_endpoint: Seqera Platform API URL given to ``-with-tower``.
    :param key_handler: where the Crypt4GH private key comes from: ``http`` (a key handler service,
        ``GET`` returns the key) or ``secretsmanager`` (AWS Secrets Manager).
    :param key_handler_url: the key handler's URL (``http`` only); may contain ``{secret_id}`` and
        ``{secret_id_version}``, else both are appended as path segments.
    :param key_handler_region: AWS region of Secrets Manager (``secretsmanager`` only).
    :param key_handler_endpoint_url: a Secrets Manager endpoint override (tests: moto).
    :param transfer_secret_name: an existing Kubernetes Secret with the transfer's credentials
        (key handler token, key passphrase, source token); each key is optional.
    :param globus_base_url: HTTPS base URL of the Globus guest collection the inputs come from.
    :param pipeline: Nextflow pipeline.
    :param revision: pipeline revision (``-r``).
    :param min_overlap: pgsc_calc's ``min_overlap`` (share of score variants that must match).
    :param transfer_image: image running ``python -m hatchway.transfer`` (default: the chart's).
    :param nextflow_image: image running the Nextflow head job (default: the chart's).
    :param service_account: Kubernetes service account of the job's pod (cloud identity of the
        buckets and the executor).
    :param node_selector: node selector of the job's pod.
    :param gcp_project: Google Cloud project of Google Batch (``gs`` only).
    :param gcp_location: Google Batch location (``gs`` only).
    :param aws_region: AWS region of AWS Batch (``s3`` only).
    :param aws_batch_queue: AWS Batch job queue (``s3`` only).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    namespace: str
    storage_scheme: Literal["gs", "s3"] = "gs"
    seqera_secret_name: str
    seqera_token_key: str = "token"
    seqera_workspace_key: str = "workspace_id"
    seqera_endpoint: str = Field("https://api.cloud.seqera.io", pattern=r"^https?://[^\s]+$")
    key_handler: Literal["http", "secretsmanager"] = "http"
    key_handler_url: str | None = Field(None, pattern=r"^https?://[^\s]+$")
    key_handler_region: str | None = Field(None, pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")
    key_handler_endpoint_url: str | None = Field(None, pattern=r"^https?://[^\s]+$")
    transfer_secret_name: str | None = None
    globus_base_url: str = Field(pattern=SOURCE_URL_PATTERN)
    pipeline: str = "pgscatalog/pgsc_calc"
    revision: str = "v2.0.0"
    min_overlap: float = Field(DEFAULT_MIN_OVERLAP, ge=0, le=1)
    transfer_image: Image | None = None
    nextflow_image: Image | None = None
    service_account: str | None = None
    node_selector: dict[str, str] | None = None
    gcp_project: str | None = None
    gcp_location: str | None = None
    aws_region: str | None = None
    aws_batch_queue: str | None = None

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, v: str) -> str:
        return check_dns1123_label(v)

    @field_validator("seqera_secret_name", "transfer_secret_name", "service_account")
    @classmethod
    def _names(cls, v: str | None, info) -> str | None:
        return v if v is None else _object_name(v, info.field_name)

    @field_validator("seqera_token_key", "seqera_workspace_key")
    @classmethod
    def _keys(cls, v: str, info) -> str:
        return _secret_key(v, info.field_name)

    @field_validator("pipeline")
    @classmethod
    def _pipeline(cls, v: str) -> str:
        if not _PIPELINE.match(v):
            raise ValueError(f"pipeline {v!r} must be <owner>/<repository> or an https:// repository URL")
        return v

    @field_validator("revision")
    @classmethod
    def _revision(cls, v: str) -> str:
        if not _REVISION.match(v) or ".." in v:
            raise ValueError(f"revision {v!r} must be a tag, branch or commit")
        return v

    @model_validator(mode="after")
    def _key_handler_complete(self) -> ChartSettings:
        if self.key_handler == "http" and not self.key_handler_url:
            raise ValueError("key_handler 'http' needs key_handler_url")
        if self.key_handler == "secretsmanager" and not self.key_handler_region:
            raise ValueError("key_handler 'secretsmanager' needs key_handler_region")
        return self


class TransferSettings(BaseModel):
    """Where a job's encrypted inputs and their key come from, for ``hatchway.transfer``.

    The same-named fields of :class:`ChartSettings` (the ``helm`` section of the job
    settings), read for every launcher: see :meth:`from_helm`.

    :param globus_base_url: HTTPS base URL of the Globus guest collection.
    :param key_handler: ``http`` or ``secretsmanager``.
    :param key_handler_url: the key handler's URL (``http``).
    :param key_handler_region: AWS region of Secrets Manager (``secretsmanager``).
    :param key_handler_endpoint_url: a Secrets Manager endpoint override (tests: moto).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    globus_base_url: str = Field(pattern=SOURCE_URL_PATTERN)
    key_handler: Literal["http", "secretsmanager"] = "http"
    key_handler_url: str | None = Field(None, pattern=r"^https?://[^\s]+$")
    key_handler_region: str | None = Field(None, pattern=r"^[a-z]{2}(-[a-z]+)+-\d$")
    key_handler_endpoint_url: str | None = Field(None, pattern=r"^https?://[^\s]+$")

    @classmethod
    def from_helm(cls, helm: dict[str, Any]) -> TransferSettings:
        """Pick the transfer's fields out of the ``helm`` settings (the rest is the chart's)."""
        return cls.model_validate({k: v for k, v in helm.items() if k in cls.model_fields})

    @model_validator(mode="after")
    def _key_handler_complete(self) -> TransferSettings:
        if self.key_handler == "http" and not self.key_handler_url:
            raise ValueError("key_handler 'http' needs key_handler_url")
        if self.key_handler == "secretsmanager" and not self.key_handler_region:
            raise ValueError("key_handler 'secretsmanager' needs key_handler_region")
        return self


def bucket_url(scheme: str, bucket: str, *parts: str) -> str:
    """``gs://bucket/a/b`` from its parts."""
    return "/".join([f"{scheme}://{bucket}", *parts])


def samplesheet(request: JobRequest, data_url: str) -> list[dict[str, Any]]:
    # pgsc_calc's JSON samplesheet: the request's genomes, each file name turned into the
    # path where hatchway.transfer leaves the decrypted file.
    sheet = []
    for genome in request.pipeline_param.target_genomes:
        entry = genome.model_dump(mode="json")
        for field in ("geno", "pheno", "variants"):
            entry[field] = f"{data_url}/{entry[field]}"
        sheet.append(entry)
    return sheet


def pipeline_params(request: JobRequest, results_url: str, min_overlap: float) -> dict[str, Any]:
    # The chart adds `input` (the samplesheet's path inside the pod, which only it knows).
    nxf = request.pipeline_param.nxf_params_file.model_dump(mode="json", exclude_none=True)
    return {**nxf, "outdir": results_url, "min_overlap": min_overlap}


def transfer_config(request: JobRequest, settings: TransferSettings | ChartSettings, namespace: str,
                    scheme: str) -> dict[str, Any]:
    """The ``hatchway.transfer`` config (its ``--config`` format) of one job: every ``.c4gh``
    input of the request, decrypted into ``<work bucket>/data``.

    :param namespace: the deployment namespace (names the work bucket).
    :param scheme: ``gs`` or ``s3``.
    """
    data_url = bucket_url(scheme, JobNames(namespace, request.job_id).work_bucket, DATA_PREFIX)
    return _transfer(request, settings, data_url)


def _transfer(request: JobRequest, settings: TransferSettings | ChartSettings, data_url: str) -> dict[str, Any]:
    key_handler: dict[str, Any] = {"kind": settings.key_handler}
    if settings.key_handler == "http":
        key_handler["url"] = settings.key_handler_url
    else:
        key_handler["region"] = settings.key_handler_region
        if settings.key_handler_endpoint_url:
            key_handler["endpoint_url"] = settings.key_handler_endpoint_url
    globus = request.globus_details
    return {
        "source": {
            "base_url": settings.globus_base_url.rstrip("/"),
            "dir": globus.dir_path_on_guest_collection,
            "files": [{"filename": f.filename, "size": f.size} for f in globus.files],
        },
        "destination": data_url,
        "key_handler": key_handler,
        "secret_key": {
            "secret_id": request.secret_key_details.secret_id,
            "secret_id_version": request.secret_key_details.secret_id_version,
        },
    }


def _nextflow(settings: ChartSettings, work_url: str) -> dict[str, Any]:
    nextflow: dict[str, Any] = {"executor": EXECUTORS[settings.storage_scheme], "workDir": work_url}
    if settings.storage_scheme == "gs":
        nextflow["google"] = {k: v for k, v in (("project", settings.gcp_project),
                                                 ("location", settings.gcp_location)) if v}
    else:
        nextflow["aws"] = {k: v for k, v in (("region", settings.aws_region),
                                              ("batchQueue", settings.aws_batch_queue)) if v}
    return nextflow


def launch_params(request: JobRequest, namespace: str, scheme: str,
                  min_overlap: float = DEFAULT_MIN_OVERLAP) -> dict[str, Any]:
    """Nextflow params for a launcher without the chart (Seqera's launch API): the same
    params file, with the samplesheet inline as ``input``."""
    names = JobNames(namespace, request.job_id)
    data_url = bucket_url(scheme, names.work_bucket, DATA_PREFIX)
    results_url = bucket_url(scheme, names.results_bucket, RESULTS_PREFIX)
    return {**pipeline_params(request, results_url, min_overlap), "input": samplesheet(request, data_url)}


def work_dir(namespace: str, job_id: str, scheme: str) -> str:
    return bucket_url(scheme, JobNames(namespace, job_id).work_bucket, WORK_PREFIX)


def build_values(request: JobRequest, settings: ChartSettings, *, with_transfer: bool = False,
                 container_image: str | None = None) -> dict[str, Any]:
    """The ``nextflow-job`` chart's values for one job request.

    :param request: a validated job request.
    :param settings: the deployment's settings.
    :param with_transfer: also give the chart the transfer (its init container decrypts the
        inputs). Off for ``job_run``, whose ``transfer_inputs`` task already did.
    :param container_image: run every process in this image (a Wave build's).
    :return: a JSON-serialisable dict to hand to Helm as the release's values.
    """
    names = JobNames(settings.namespace, request.job_id)
    scheme = settings.storage_scheme
    data_url = bucket_url(scheme, names.work_bucket, DATA_PREFIX)
    work_url = bucket_url(scheme, names.work_bucket, WORK_PREFIX)
    results_url = bucket_url(scheme, names.results_bucket, RESULTS_PREFIX)

    values: dict[str, Any] = {
        "jobId": names.job_id,
        "runName": names.run_name,
        "pipeline": {"name": settings.pipeline, "revision": settings.revision},
        "buckets": {"work": bucket_url(scheme, names.work_bucket), "results": bucket_url(scheme, names.results_bucket)},
        "nextflow": _nextflow(settings, work_url),
        "params": pipeline_params(request, results_url, settings.min_overlap),
        "samplesheet": samplesheet(request, data_url),
        "seqera": {
            "endpoint": settings.seqera_endpoint,
            "secretName": settings.seqera_secret_name,
            "tokenKey": settings.seqera_token_key,
            "workspaceKey": settings.seqera_workspace_key,
        },
    }
    if container_image:
        values["nextflow"]["processContainer"] = container_image
    if with_transfer:
        values["transfer"] = _transfer(request, settings, data_url)
        if settings.transfer_secret_name:
            values["transferSecrets"] = {"secretName": settings.transfer_secret_name}
    images = {k: v.to_values() for k, v in (("transfer", settings.transfer_image),
                                             ("nextflow", settings.nextflow_image)) if v}
    if images:
        values["images"] = images
    if settings.service_account:
        values["serviceAccountName"] = settings.service_account
    if settings.node_selector:
        values["nodeSelector"] = dict(settings.node_selector)
    return values
