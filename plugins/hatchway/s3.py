"""S3 work shared by the concerns: emptying a prefix (a workspace's data) or a whole bucket (a job's).

Every version and delete marker goes when the bucket keeps versions, in DeleteObjects calls of
at most 1,000 keys, and unfinished multipart uploads are aborted: they hold storage and keep a
bucket from being deleted, though they are no objects.
"""

from __future__ import annotations

from typing import Any

DELETE_BATCH = 1000  # the most keys one DeleteObjects call takes


def split_s3(url: str, *, error: type[Exception] = ValueError) -> tuple[str, str]:
    """``s3://bucket/key`` as ``(bucket, key)``; anything else (another scheme, no bucket) raises ``error``."""
    bucket, _, key = url[len("s3://"):].partition("/") if url.startswith("s3://") else ("", "", "")
    if not bucket:
        raise error(f"{url!r} is not an s3:// URL with a bucket")
    return bucket, key


def versioned(s3: Any, bucket: str) -> bool:
    """Whether the bucket keeps versions (now or once did: suspended buckets keep old ones)."""
    return s3.get_bucket_versioning(Bucket=bucket).get("Status") in ("Enabled", "Suspended")


def empty(s3: Any, bucket: str, prefix: str = "", *, with_versions: bool | None = None,
          error: type[Exception] = RuntimeError) -> int:
    """Delete every object under ``prefix`` (the whole bucket by default); return how many were deleted.

    :param s3: a boto3 S3 client.
    :param with_versions: whether the bucket keeps versions (default: asked of the bucket);
        a caller emptying several prefixes of one bucket asks once.
    :param error: raised, naming a key and S3's code, when S3 refuses to delete something.
    """
    for page in s3.get_paginator("list_multipart_uploads").paginate(Bucket=bucket, Prefix=prefix):
        for upload in page.get("Uploads", []):
            s3.abort_multipart_upload(Bucket=bucket, Key=upload["Key"], UploadId=upload["UploadId"])
    if with_versions is None:
        with_versions = versioned(s3, bucket)
    deleted = 0
    # Each round lists from the start of the prefix and deletes what it got: a listing
    # continued past keys (or versions) it already deleted can lose its place.
    while batch := _first_keys(s3, bucket, prefix, with_versions):
        errors = s3.delete_objects(Bucket=bucket, Delete={"Objects": batch, "Quiet": True}).get("Errors", [])
        if errors:
            first = errors[0]
            raise error(f"bucket {bucket!r}: {len(errors)} object(s) under {prefix!r} not deleted, e.g. "
                        f"{first.get('Key')!r}: {first.get('Code')}")
        deleted += len(batch)
    return deleted


def _first_keys(s3: Any, bucket: str, prefix: str, with_versions: bool) -> list[dict[str, str]]:
    if not with_versions:
        listed = s3.list_objects_v2(Bucket=bucket, Prefix=prefix, MaxKeys=DELETE_BATCH)
        return [{"Key": o["Key"]} for o in listed.get("Contents", [])]
    listed = s3.list_object_versions(Bucket=bucket, Prefix=prefix, MaxKeys=DELETE_BATCH)
    return [{"Key": o["Key"], "VersionId": o["VersionId"]}
            for o in listed.get("Versions", []) + listed.get("DeleteMarkers", [])][:DELETE_BATCH]
