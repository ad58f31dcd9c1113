"""A job's buckets on the GCS emulator and on moto S3: labelled with owner and cost centre,
and deleted whole however many objects (and, on S3, versions and delete markers) they hold."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage

from hatchway.domain.jobs import JobNames, JobRequest
from hatchway.domain.labels import job_owner
from hatchway.jobs.buckets import job_buckets
from hatchway.jobs.settings import JobSettings
from support.jobs import request

NS = "hwtest"
RUN_ID = "job__intp00000000301"
COST_CENTER = "Genomics-Research 42/EU"


@pytest.fixture
def gcs(jobs, gcs_emulator):
    return storage.Client(project=gcs_emulator.project, credentials=AnonymousCredentials())


def _request(number: int, folder: str = "Alice.Smith@Uni-Example.org/Sample-Set-1") -> JobRequest:
    body = request(number)
    body["globus_details"]["dir_path_on_guest_collection"] = folder
    return JobRequest.model_validate(body)


def _buckets(storage_kind: str, number: int, **settings):
    job = _request(number)
    config = JobSettings(namespace=NS, storage=storage_kind, **settings)
    names = JobNames(NS, job.job_id)
    return job_buckets(config, names, RUN_ID, owner=job_owner(job)), names


def test_gcs_buckets_carry_the_owner_identity_and_the_cost_centre(gcs):
    buckets, names = _buckets("gcs", 301, cost_center=COST_CENTER)
    buckets.create()
    try:
        for name in (names.work_bucket, names.results_bucket):
            labels = gcs.get_bucket(name).labels
            # The owner is the e-mail of the Globus folder, never the sample set folder's name.
            assert labels["hatchway-owner"] == "alice_smith_uni-example_org"
            assert labels["hatchway-cost-center"] == "genomics-research_42_eu"
            assert all(len(v) <= 63 and set(v) <= set("abcdefghijklmnopqrstuvwxyz0123456789_-")
                       for v in labels.values())
    finally:
        buckets.delete_own([names.work_bucket, names.results_bucket])


def test_gcs_cost_centre_defaults_to_the_namespace(gcs):
    buckets, names = _buckets("gcs", 302)
    buckets.create()
    try:
        assert gcs.get_bucket(names.work_bucket).labels["hatchway-cost-center"] == NS
    finally:
        buckets.delete_own([names.work_bucket, names.results_bucket])


def test_gcs_cleanup_deletes_a_bucket_of_2000_objects(gcs):
    buckets, names = _buckets("gcs", 303)
    buckets.create()
    work = gcs.bucket(names.work_bucket)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda i: work.blob(f"work/{i % 40:02d}/task-{i:04d}.out").upload_from_string(b"x"),
                      range(2000)))
    assert sum(1 for _ in gcs.list_blobs(names.work_bucket)) == 2000

    assert buckets.delete_own([names.work_bucket, names.results_bucket]) == [names.work_bucket,
                                                                             names.results_bucket]
    assert gcs.lookup_bucket(names.work_bucket) is None and gcs.lookup_bucket(names.results_bucket) is None


def test_s3_buckets_carry_owner_and_cost_tags(aws):
    buckets, names = _buckets("s3", 304, cost_center=COST_CENTER)
    buckets.create()
    try:
        for name in (names.work_bucket, names.results_bucket):
            tags = {t["Key"]: t["Value"] for t in aws.s3.get_bucket_tagging(Bucket=name)["TagSet"]}
            assert tags["hatchway:owner"] == "alice.smith@uni-example.org"
            assert tags["hatchway:cost-center"] == COST_CENTER
    finally:
        buckets.delete_own([names.work_bucket, names.results_bucket])


def test_s3_cleanup_empties_a_versioned_bucket_with_delete_markers(aws):
    buckets, names = _buckets("s3", 305)
    buckets.create()
    s3 = aws.s3
    s3.put_bucket_versioning(Bucket=names.work_bucket, VersioningConfiguration={"Status": "Enabled"})
    keys = [f"work/{i % 30:02d}/task-{i:04d}.out" for i in range(400)]
    for key in keys:
        s3.put_object(Bucket=names.work_bucket, Key=key, Body=b"first")
    for key in keys[:200]:
        s3.put_object(Bucket=names.work_bucket, Key=key, Body=b"second")
    for key in keys[::3]:
        s3.delete_object(Bucket=names.work_bucket, Key=key)  # a delete marker on top
    listed = s3.list_object_versions(Bucket=names.work_bucket, MaxKeys=1000)
    assert len(listed["Versions"]) == 600 and len(listed["DeleteMarkers"]) == len(keys[::3])

    assert buckets.delete_own([names.work_bucket]) == [names.work_bucket]
    assert names.work_bucket not in {b["Name"] for b in s3.list_buckets()["Buckets"]}
    buckets.delete_own([names.results_bucket])


@pytest.mark.parametrize("kind", ["gcs", "s3"])
def test_results_are_listed_for_the_crate_with_size_and_sha256_up_to_the_hash_limit(kind, request, monkeypatch):
    """What write_crate reads of a results bucket: every object but the crate itself, each with its
    size, and its sha256 unless it is larger than the limit; a bucket that is gone lists nothing."""
    import hashlib

    from hatchway.outputs import crate

    request.getfixturevalue("gcs" if kind == "gcs" else "aws")
    monkeypatch.setattr(crate, "HASH_LIMIT", 1000)
    buckets, names = _buckets(kind, 305 if kind == "gcs" else 306)
    buckets.create()
    files = {"score/aggregated_scores.txt.gz": b"s\t0.42\n" * 10, "score/big.bin": b"x" * 1001,
             "report.html": b"<html></html>"}
    try:
        for key, data in files.items():
            if kind == "gcs":
                buckets.client.bucket(names.results_bucket).blob(key).upload_from_string(data)
            else:
                buckets.client.put_object(Bucket=names.results_bucket, Key=key, Body=data)
        scheme = "gs" if kind == "gcs" else "s3"
        location = buckets.put_crate(names.results_bucket, {"@graph": []})
        assert location == f"{scheme}://{names.results_bucket}/ro-crate-metadata.json"
        listed = {f.url: f for f in buckets.files(names.results_bucket)}
        assert sorted(listed) == sorted(f"{scheme}://{names.results_bucket}/{key}" for key in files)
        for key, data in files.items():
            found = listed[f"{scheme}://{names.results_bucket}/{key}"]
            assert found.size == len(data)
            assert found.sha256 == (None if len(data) > 1000 else hashlib.sha256(data).hexdigest())
    finally:
        buckets.delete_own([names.work_bucket, names.results_bucket])
    assert buckets.files(names.results_bucket) == []
