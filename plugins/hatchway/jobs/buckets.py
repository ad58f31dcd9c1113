"""The work and results buckets of a job, on GCS (google provider) or S3 (amazon provider).

A bucket is created only by the run that owns it and labelled with that run's id; cleanup
deletes only buckets carrying this run's label, so a bucket that existed before (an error
for the run) is never deleted by it. Both buckets also carry the job's owner identity and the
deployment's cost centre (:mod:`hatchway.domain.labels`), for cost reports.

Deleting a bucket empties it first, page by page: a paginated listing (every generation or
version, and S3's delete markers), deleted in batches (GCS batch requests of 100 calls, S3
``DeleteObjects`` of 1,000 keys), then the bucket. The client libraries' one-call forms do
not: ``Bucket.delete(force=True)`` refuses a bucket of more than 256 objects, and the amazon
provider's ``force_delete`` leaves old versions and delete markers behind, so the bucket
delete fails on any real job's bucket.
"""

from __future__ import annotations

import logging
from typing import Any

from hatchway import s3
from hatchway.domain.jobs import GENOMIC_SUFFIXES, JobNames, JobPlatformConfig
from hatchway.domain.labels import UNKNOWN_OWNER, gcs_label_value

log = logging.getLogger(__name__)
RUN_LABEL = "hatchway-run"
OWNER_LABEL, COST_LABEL = "hatchway-owner", "hatchway-cost-center"
OWNER_TAG = "hatchway:owner"
GCS_LIST_PAGE = 1000
GCS_BATCH_CALLS = 100  # GCS takes at most 100 calls in one batch request


class BucketExistsError(RuntimeError):
    """A job bucket already exists: another run or a person made it. It is left untouched."""


def label_value(dag_run_id: str) -> str:
    return gcs_label_value(dag_run_id)


def _cost_center(config: JobPlatformConfig) -> str:
    # hatchway.jobs.settings.JobSettings carries the deployment's cost centre; the namespace otherwise.
    return getattr(config, "bucket_cost_center", None) or config.namespace


def _cost_tag_key(config: JobPlatformConfig) -> str:
    return getattr(config, "cost_tag_key", None) or "hatchway:cost-center"


class BucketNotEmptied(RuntimeError):
    """A bucket still holds objects after a delete round: nothing was removed in that round."""


def _work_rules(config: JobPlatformConfig) -> tuple[int, list[str]]:
    days = max(1, config.deployed_timeout_seconds // 86_400)
    return days, list(GENOMIC_SUFFIXES)


class GcsBuckets:
    """:param config: job settings. :param names: the job's names. :param run_id: the DAG run id.
    :param owner: the job's owner identity (:func:`hatchway.domain.labels.job_owner`)."""

    def __init__(self, config: JobPlatformConfig, names: JobNames, run_id: str, owner: str = UNKNOWN_OWNER):
        from airflow.providers.google.cloud.hooks.gcs import GCSHook

        self.client = GCSHook(gcp_conn_id=config.gcp_conn_id).get_conn()
        self.config, self.names, self.label = config, names, label_value(run_id)
        self.owner = owner

    def create(self) -> dict[str, Any]:
        from google.api_core.exceptions import Conflict

        created = []
        for name, work in ((self.names.work_bucket, True), (self.names.results_bucket, False)):
            bucket = self.client.bucket(name)
            try:
                bucket = self.client.create_bucket(bucket, location=self.config.bucket_location)
            except Conflict as exc:
                existing = self.client.get_bucket(name)
                if (existing.labels or {}).get(RUN_LABEL) == self.label:
                    created.append(name)  # this run made it on an earlier try
                    continue
                raise BucketExistsError(f"bucket {name!r} already exists and was not made by this run: "
                                        "it is left untouched") from exc
            # The emulator (and GCS) keep these settings when patched after creation.
            bucket.labels = {RUN_LABEL: self.label, "hatchway-job": self.names.job_id.lower(),
                             OWNER_LABEL: gcs_label_value(self.owner),
                             COST_LABEL: gcs_label_value(_cost_center(self.config))}
            bucket.iam_configuration.public_access_prevention = "enforced"
            bucket.iam_configuration.uniform_bucket_level_access_enabled = True
            bucket.soft_delete_policy.retention_duration_seconds = 0
            if work:
                days, suffixes = _work_rules(self.config)
                bucket.lifecycle_rules = [
                    {"action": {"type": "Delete"}, "condition": {"age": days, "matchesSuffix": suffixes}},
                    {"action": {"type": "AbortIncompleteMultipartUpload"}, "condition": {"age": days}},
                ]
            else:
                bucket.lifecycle_rules = [
                    {"action": {"type": "Delete"}, "condition": {"age": self.config.results_retention_days}},
                    {"action": {"type": "AbortIncompleteMultipartUpload"}, "condition": {"age": 1}},
                ]
            bucket.patch()
            created.append(name)
        return {"created": created}

    def delete_own(self, names: list[str]) -> list[str]:
        from google.api_core.exceptions import NotFound

        deleted = []
        for name in names:
            try:
                bucket = self.client.get_bucket(name)
            except NotFound:
                continue
            if (bucket.labels or {}).get(RUN_LABEL) != self.label:
                log.warning("bucket %s is not this run's: left untouched", name)
                continue
            self._empty(name)
            bucket.delete()
            deleted.append(name)
        return deleted

    def stored_bytes(self, name: str) -> int:
        """Bytes the bucket holds now (0 if it is gone)."""
        from google.api_core.exceptions import NotFound

        try:
            return sum(blob.size or 0 for blob in self.client.list_blobs(name))
        except NotFound:
            return 0

    def files(self, name: str) -> list[Any]:
        """The bucket's objects as crate files (``gs://`` URL, size, sha256 up to the hash limit),
        the crate itself left out; none if the bucket is gone."""
        from google.api_core.exceptions import NotFound

        from hatchway.outputs.crate import CRATE_FILE, HASH_LIMIT, CrateFile, sha256_of

        try:
            blobs = [b for b in self.client.list_blobs(name, page_size=GCS_LIST_PAGE) if b.name != CRATE_FILE]
        except NotFound:
            return []
        found = []
        for blob in blobs:
            digest = None
            if (blob.size or 0) <= HASH_LIMIT:
                with blob.open("rb", chunk_size=1 << 20) as fh:
                    digest = sha256_of(iter(lambda: fh.read(1 << 20), b""))
            found.append(CrateFile(url=f"gs://{name}/{blob.name}", size=blob.size, sha256=digest,
                                   media_type=blob.content_type))
        return found

    def put_crate(self, name: str, crate: dict[str, Any]) -> str:
        """Write ``ro-crate-metadata.json`` at the bucket's root. :return: its URL."""
        import json

        from hatchway.outputs.crate import CRATE_FILE

        self.client.bucket(name).blob(CRATE_FILE).upload_from_string(
            json.dumps(crate, indent=2), content_type="application/ld+json")
        return f"gs://{name}/{CRATE_FILE}"

    def _empty(self, name: str) -> None:
        # Each round lists the first page again: what was deleted is gone from it, and a
        # page token would be stale once its objects are.
        seen: set[tuple[str, int | None]] = set()
        bucket = self.client.bucket(name)
        while True:
            blobs = list(self.client.list_blobs(name, versions=True, max_results=GCS_LIST_PAGE))
            if not blobs:
                return
            page = {(b.name, b.generation) for b in blobs}
            if page <= seen:
                raise BucketNotEmptied(f"bucket {name!r}: {len(page)} objects survived their delete")
            seen |= page
            for start in range(0, len(blobs), GCS_BATCH_CALLS):
                # raise_exception=False: an object already gone (404) is not a failure; what
                # really failed is listed again next round.
                with self.client.batch(raise_exception=False):
                    for blob in blobs[start:start + GCS_BATCH_CALLS]:
                        bucket.delete_blob(blob.name, generation=blob.generation)
            log.info("bucket %s: deleted %d objects", name, len(blobs))


class S3Buckets:
    """The same on S3, for AWS deployments (tags instead of labels)."""

    def __init__(self, config: JobPlatformConfig, names: JobNames, run_id: str, owner: str = UNKNOWN_OWNER):
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        self.hook = S3Hook(aws_conn_id=config.aws_conn_id)
        self.client = self.hook.get_conn()
        self.config, self.names, self.label = config, names, label_value(run_id)
        self.owner = owner

    def _label(self, name: str) -> str | None:
        from botocore.exceptions import ClientError

        try:
            tags = self.client.get_bucket_tagging(Bucket=name)["TagSet"]
        except ClientError:
            return None
        return {t["Key"]: t["Value"] for t in tags}.get(RUN_LABEL)

    def create(self) -> dict[str, Any]:
        created = []
        for name, work in ((self.names.work_bucket, True), (self.names.results_bucket, False)):
            if self.hook.check_for_bucket(name):
                if self._label(name) == self.label:
                    created.append(name)
                    continue
                raise BucketExistsError(f"bucket {name!r} already exists and was not made by this run: "
                                        "it is left untouched")
            self.hook.create_bucket(bucket_name=name)
            self.client.put_bucket_tagging(Bucket=name, Tagging={"TagSet": [
                {"Key": RUN_LABEL, "Value": self.label}, {"Key": "hatchway-job", "Value": self.names.job_id},
                {"Key": OWNER_TAG, "Value": self.owner},
                {"Key": _cost_tag_key(self.config), "Value": _cost_center(self.config)}]})
            self.client.put_public_access_block(Bucket=name, PublicAccessBlockConfiguration={
                "BlockPublicAcls": True, "IgnorePublicAcls": True, "BlockPublicPolicy": True,
                "RestrictPublicBuckets": True})
            # S3 lifecycle filters match prefixes and tags, not suffixes: the whole work
            # bucket (intermediate files only) expires after the deployed timeout instead.
            days, _ = _work_rules(self.config)
            rules = [{"ID": "expire", "Filter": {"Prefix": ""}, "Status": "Enabled",
                      "Expiration": {"Days": days if work else self.config.results_retention_days}}]
            rules.append({"ID": "abort-uploads", "Filter": {"Prefix": ""}, "Status": "Enabled",
                          "AbortIncompleteMultipartUpload": {"DaysAfterInitiation": days if work else 1}})
            self.client.put_bucket_lifecycle_configuration(Bucket=name, LifecycleConfiguration={"Rules": rules})
            created.append(name)
        return {"created": created}

    def delete_own(self, names: list[str]) -> list[str]:
        deleted = []
        for name in names:
            if not self.hook.check_for_bucket(name) or self._label(name) != self.label:
                continue
            self._empty(name)
            self.client.delete_bucket(Bucket=name)
            deleted.append(name)
        return deleted

    def stored_bytes(self, name: str) -> int:
        """Bytes the bucket holds now (0 if it is gone)."""
        from botocore.exceptions import ClientError

        from hatchway.usage.runs import area_bytes

        try:
            return area_bytes(self.client, name, "")[0]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "NoSuchBucket":
                return 0
            raise

    def files(self, name: str) -> list[Any]:
        """The bucket's objects as crate files (``s3://`` URL, size, sha256 up to the hash limit),
        the crate itself left out; none if the bucket is gone."""
        from botocore.exceptions import ClientError

        from hatchway.outputs.crate import CRATE_FILE, HASH_LIMIT, CrateFile, sha256_of

        try:
            pages = self.client.get_paginator("list_objects_v2").paginate(Bucket=name)
            objects = [o for page in pages for o in page.get("Contents", []) if o["Key"] != CRATE_FILE]
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "NoSuchBucket":
                return []
            raise
        found = []
        for obj in objects:
            digest = None
            if obj["Size"] <= HASH_LIMIT:
                body = self.client.get_object(Bucket=name, Key=obj["Key"])["Body"]
                digest = sha256_of(body.iter_chunks(1 << 20))
            found.append(CrateFile(url=f"s3://{name}/{obj['Key']}", size=obj["Size"], sha256=digest))
        return found

    def put_crate(self, name: str, crate: dict[str, Any]) -> str:
        """Write ``ro-crate-metadata.json`` at the bucket's root. :return: its URL."""
        import json

        from hatchway.outputs.crate import CRATE_FILE

        self.client.put_object(Bucket=name, Key=CRATE_FILE, Body=json.dumps(crate, indent=2).encode(),
                               ContentType="application/ld+json")
        return f"s3://{name}/{CRATE_FILE}"

    def _empty(self, name: str) -> None:
        removed = s3.empty(self.client, name, error=BucketNotEmptied)
        log.info("bucket %s: deleted %d objects (every version and delete marker)", name, removed)


def job_buckets(config: JobPlatformConfig, names: JobNames, run_id: str,
                owner: str = UNKNOWN_OWNER) -> GcsBuckets | S3Buckets:
    """:param owner: the job's owner identity; only :meth:`create` uses it (labels)."""
    return (GcsBuckets if config.storage == "gcs" else S3Buckets)(config, names, run_id, owner)
