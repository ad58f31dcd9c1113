"""``hatchway.s3.split_s3``: the one reading of an ``s3://`` URL that STAC, the Cromwell placement
and the crate writers share, with the error each caller raises."""

from __future__ import annotations

import pytest

from hatchway.s3 import split_s3
from hatchway.wdl.runs import PlacementError


@pytest.mark.parametrize(("url", "expected"), [
    ("s3://bucket/a/b.txt", ("bucket", "a/b.txt")),
    ("s3://bucket/prefix/", ("bucket", "prefix/")),
    ("s3://bucket", ("bucket", "")),
])
def test_an_s3_url_is_its_bucket_and_key(url, expected):
    assert split_s3(url) == expected


@pytest.mark.parametrize("url", ["gs://bucket/key", "s3:///key", "s3://", "/local/path", "S3://bucket/key"])
def test_anything_else_raises_the_callers_error(url):
    with pytest.raises(ValueError, match="is not an s3:// URL with a bucket"):
        split_s3(url)
    with pytest.raises(PlacementError, match="is not an s3:// URL"):
        split_s3(url, error=PlacementError)
