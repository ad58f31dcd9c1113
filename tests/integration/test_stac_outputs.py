"""Harvesting a run's outputs as a STAC catalog, against a real moto S3 server.

Outputs are written under the executing workspace (alice); the catalog and the copies of
the outputs must land under the calling workspace's ``processing-results/<run_id>/`` and
nowhere else, and a second harvest must converge on the same keys and bytes.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import socket
from datetime import datetime, timedelta, timezone

import pystac
import pytest
import referencing.exceptions

from hatchway.outputs import stac
from hatchway.outputs.stac import (OutOfScopeWriteError, RunOutputs, S3StacIO, catalog_prefix, harvest,
                                   outputs_prefix, validate_item)

BUCKET = "hatchway-test-data"  # TEST_CONFIG["bucket"]
RUN_ID = "manual__2026-03-01T10:00:00+00:00"
FINISHED = datetime(2026, 3, 1, 11, 30, tzinfo=timezone.utc)
OUTPUTS = {
    "summary.tsv": b"sample\tscore\nS1\t0.12\nS2\t0.97\n",
    "report.json": json.dumps({"samples": 2, "ok": True}).encode(),
    "scores/chr 1/aggregated.tsv": b"chrom\tpos\tscore\n1\t12345\t0.5\n",
    # Above the 1 MiB read chunk and the 5 MiB multipart part size: checksums are streamed.
    "genotypes.bin": os.urandom(6 * 1024 * 1024 + 321),
}
# Data that is not this run's outputs: no harvest may change it.
UNRELATED = {
    "bob/data/notes.txt": b"bob's own data",
    "alice/runs/other-run/outputs/x.tsv": b"another run",
    "bob/processing-results/other-run/catalog.json": b"{}",
}


def run_outputs(calling: str, executing: str = "alice", run_id: str = RUN_ID) -> RunOutputs:
    return RunOutputs(run_id=run_id, workflow_name="pgsc_calc", workflow_version="2.0.0",
                      calling_workspace=calling, executing_workspace=executing, bucket=BUCKET,
                      finished_at=FINISHED)


def snapshot(s3, prefix: str = "") -> dict[str, bytes]:
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix)
    keys = [o["Key"] for page in pages for o in page.get("Contents", [])]
    return {key: s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() for key in keys}


@pytest.fixture
def bucket(aws):
    """The platform bucket with alice's run outputs and some data that is not the run's."""
    aws.s3.create_bucket(Bucket=BUCKET)
    for relative, body in OUTPUTS.items():
        aws.s3.put_object(Bucket=BUCKET, Key=outputs_prefix("alice", RUN_ID) + relative, Body=body)
    for key, body in UNRELATED.items():
        aws.s3.put_object(Bucket=BUCKET, Key=key, Body=body)
    return aws.s3


@pytest.fixture
def no_internet(monkeypatch):
    """Only loopback connections (the moto server); anything else fails the test loudly."""
    attempts: list[object] = []
    real_connect = socket.socket.connect

    def connect(self, address):
        host = address[0] if isinstance(address, tuple) else address
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = host == "localhost"
        if not loopback:
            attempts.append(address)
            raise OSError(f"network blocked in this test: {address}")
        return real_connect(self, address)

    monkeypatch.setattr(socket.socket, "connect", connect)
    return attempts


def read_catalog(s3, url: str) -> tuple[pystac.Catalog, list[pystac.Item]]:
    catalog = pystac.Catalog.from_file(url, stac_io=S3StacIO(s3))
    return catalog, list(catalog.get_items())


def test_outputs_paths_are_the_workspace_prefixes():
    assert outputs_prefix("alice", "r1") == "alice/runs/r1/outputs/"
    assert catalog_prefix("bob", "r1") == "bob/processing-results/r1/"


def test_user_service_outputs_are_copied_into_the_calling_workspace_catalog(bucket, no_internet):
    before = snapshot(bucket)
    result = harvest(run_outputs(calling="bob"))

    target = catalog_prefix("bob", RUN_ID)
    assert result.catalog_url == f"s3://{BUCKET}/{target}catalog.json"
    assert len(result.item_ids) == len(OUTPUTS)

    after = snapshot(bucket)
    # Nothing outside bob's processing-results/<run_id>/ was written, changed or removed.
    assert {k: v for k, v in after.items() if not k.startswith(target)} == before
    assert f"{target}catalog.json" in after

    catalog, items = read_catalog(bucket, result.catalog_url)
    assert catalog.id == f"processing-results-{RUN_ID}"
    assert sorted(item.id for item in items) == sorted(result.item_ids)
    by_path = {item.assets["data"].title: item for item in items}
    assert set(by_path) == set(OUTPUTS)

    for relative, body in OUTPUTS.items():
        item = by_path[relative]
        assert item.geometry is None and item.bbox is None
        assert item.datetime == FINISHED
        assert {k: v for k, v in item.properties.items() if k.startswith("hatchway:")} == {
            "hatchway:run_id": RUN_ID, "hatchway:workflow": "pgsc_calc", "hatchway:workflow_version": "2.0.0",
            "hatchway:calling_workspace": "bob", "hatchway:executing_workspace": "alice"}
        asset = item.assets["data"]
        assert asset.extra_fields["file:checksum"] == "1220" + hashlib.sha256(body).hexdigest()
        assert asset.extra_fields["file:size"] == len(body)
        # The href resolves to a copy under bob's catalog prefix, holding the output's bytes.
        href = asset.get_absolute_href()
        assert href.startswith(f"s3://{BUCKET}/{target}{item.id}/")
        assert after[href[len(f"s3://{BUCKET}/"):]] == body
        validate_item(item.to_dict())

    assert by_path["summary.tsv"].assets["data"].media_type == "text/tab-separated-values"
    assert by_path["report.json"].assets["data"].media_type == "application/json"
    assert by_path["genotypes.bin"].assets["data"].media_type == "application/octet-stream"
    assert no_internet == []


def test_catalog_is_self_contained_with_relative_hrefs(bucket):
    result = harvest(run_outputs(calling="bob"))
    target = catalog_prefix("bob", RUN_ID)
    documents = {k: json.loads(v) for k, v in snapshot(bucket, target).items() if k.endswith(".json")}
    raw_catalog = documents[f"{target}catalog.json"]
    assert {link["rel"] for link in raw_catalog["links"]} == {"root", "item"}
    for item_id in result.item_ids:
        raw_item = documents[f"{target}{item_id}/{item_id}.json"]
        hrefs = [link["href"] for link in raw_item["links"]] + [a["href"] for a in raw_item["assets"].values()]
        assert all(not href.startswith(("s3://", "/", "http")) for href in hrefs), hrefs
        assert raw_item["assets"]["data"]["href"].startswith("./")
        assert "self" not in {link["rel"] for link in raw_item["links"]}


def test_same_workspace_harvest_catalogues_alices_outputs_in_her_own_prefix(bucket):
    before = snapshot(bucket)
    result = harvest(run_outputs(calling="alice", executing="alice"))

    target = catalog_prefix("alice", RUN_ID)
    assert result.catalog_url == f"s3://{BUCKET}/{target}catalog.json"
    after = snapshot(bucket)
    assert {k: v for k, v in after.items() if not k.startswith(target)} == before  # outputs left in place
    _, items = read_catalog(bucket, result.catalog_url)
    assert {item.properties["hatchway:calling_workspace"] for item in items} == {"alice"}
    for item in items:
        body = OUTPUTS[item.assets["data"].title]
        assert after[item.assets["data"].get_absolute_href()[len(f"s3://{BUCKET}/"):]] == body


def test_harvesting_twice_gives_the_same_keys_and_bytes(bucket):
    target = catalog_prefix("bob", RUN_ID)
    first = harvest(run_outputs(calling="bob"))
    once = snapshot(bucket)
    second = harvest(run_outputs(calling="bob"))
    assert second == first
    assert snapshot(bucket) == once
    assert len([k for k in once if k.startswith(target)]) == 1 + 2 * len(OUTPUTS)  # catalog, items, copies


def test_a_retry_removes_what_an_interrupted_attempt_left_in_the_catalog_prefix(bucket):
    target = catalog_prefix("bob", RUN_ID)
    bucket.put_object(Bucket=BUCKET, Key=f"{target}stale-item/stale-item.json", Body=b"{}")
    harvest(run_outputs(calling="bob"))
    after = snapshot(bucket)
    assert f"{target}stale-item/stale-item.json" not in after
    assert all(after[k] == v for k, v in UNRELATED.items())


def test_a_run_without_outputs_gets_an_empty_catalog(bucket):
    result = harvest(run_outputs(calling="bob", run_id="empty-run"))

    assert result.item_ids == []
    assert result.catalog_url == f"s3://{BUCKET}/bob/processing-results/empty-run/catalog.json"
    catalog, items = read_catalog(bucket, result.catalog_url)
    assert items == [] and catalog.id == "processing-results-empty-run"
    assert list(snapshot(bucket, "bob/processing-results/empty-run/")) == [
        "bob/processing-results/empty-run/catalog.json"]


def test_catalog_writes_outside_the_calling_workspace_prefix_are_refused(bucket):
    io = S3StacIO(bucket, write_prefix=f"s3://{BUCKET}/{catalog_prefix('bob', RUN_ID)}")
    for dest in (f"s3://{BUCKET}/alice/processing-results/{RUN_ID}/catalog.json",
                 f"s3://{BUCKET}/bob/processing-results/{RUN_ID}/../../data/catalog.json",
                 f"s3://other-bucket/bob/processing-results/{RUN_ID}/catalog.json"):
        with pytest.raises(OutOfScopeWriteError):
            io.write_text(dest, "{}")
    with pytest.raises(OutOfScopeWriteError):
        S3StacIO(bucket).write_text(f"s3://{BUCKET}/bob/processing-results/{RUN_ID}/catalog.json", "{}")
    assert snapshot(bucket, "alice/processing-results/") == {}
    assert snapshot(bucket, f"bob/processing-results/{RUN_ID}/") == {}


def test_run_outputs_refuse_naive_times_and_bad_names():
    with pytest.raises(ValueError, match="timezone-aware"):
        RunOutputs("r1", "wf", "1", "bob", "alice", BUCKET, datetime(2026, 1, 1))
    with pytest.raises(ValueError):
        RunOutputs("r1", "wf", "1", "../bob", "alice", BUCKET, FINISHED)
    with pytest.raises(ValueError, match="run id"):
        RunOutputs("a/b", "wf", "1", "bob", "alice", BUCKET, FINISHED)
    local = RunOutputs("r1", "wf", "1", "bob", "alice", BUCKET, FINISHED.astimezone(timezone(timedelta(hours=2))))
    assert local.finished_at.tzinfo == timezone.utc and local.finished_at == FINISHED


# -- validation, offline

def valid_item() -> dict:
    item = pystac.Item("an-output", geometry=None, bbox=None, datetime=FINISHED, properties={})
    return item.to_dict(include_self_link=False)


@pytest.fixture
def cold_validator(no_internet):
    """The validator built from scratch with the network blocked."""
    stac.local_schema_registry.cache_clear()
    stac.item_validator.cache_clear()
    yield no_internet
    assert no_internet == []


def test_validate_item_accepts_a_valid_item_offline(cold_validator):
    validate_item(valid_item())


def test_validate_item_rejects_an_item_without_datetime(cold_validator):
    item = valid_item()
    del item["properties"]["datetime"]
    with pytest.raises(ValueError, match="'datetime' is a required property"):
        validate_item(item)


def test_validate_item_rejects_a_bad_geometry(cold_validator):
    item = {**valid_item(), "geometry": {"type": "Point", "coordinates": "not-a-position"}}
    with pytest.raises(ValueError, match=r"geometry.*'not-a-position' is not of type 'array'"):
        validate_item(item)


def test_validate_item_rejects_a_datetime_that_is_not_rfc3339(cold_validator):
    item = valid_item()
    item["properties"]["datetime"] = "yesterday"
    with pytest.raises(ValueError, match="properties/datetime"):
        validate_item(item)


def test_schemas_not_held_locally_are_refused_not_downloaded(cold_validator):
    with pytest.raises(referencing.exceptions.Unretrievable) as raised:
        stac.local_schema_registry().get_or_retrieve("https://stac-extensions.github.io/file/v2.1.0/schema.json")
    assert "never downloaded" in str(raised.value.__cause__)
    # The item schema's own references (GeoJSON, common metadata, bands...) are all local.
    for uri in ("https://geojson.org/schema/Feature.json", "https://geojson.org/schema/Geometry.json",
                "https://schemas.stacspec.org/v1.1.0/item-spec/json-schema/common.json",
                "https://schemas.stacspec.org/v1.1.0/item-spec/json-schema/bands.json"):
        assert stac.local_schema_registry().get_or_retrieve(uri).value.contents


def test_the_guarded_harvest_removes_its_marker_only_when_it_finished_and_the_clean_respects_it(bucket, aws):
    from hatchway.domain.wes import harvest_marker_key, run_prefix
    from hatchway.outputs.stac import clean_run_area, harvest_run

    marker = harvest_marker_key("alice", RUN_ID)
    bucket.put_object(Bucket=BUCKET, Key=marker, Body=b"an earlier harvest that died")
    kept = clean_run_area(BUCKET, "alice", RUN_ID)
    assert kept.removed == 0 and kept.kept_outputs == f"s3://{BUCKET}/{outputs_prefix('alice', RUN_ID)}"
    assert set(snapshot(bucket, outputs_prefix("alice", RUN_ID))) == {outputs_prefix("alice", RUN_ID) + p
                                                                      for p in OUTPUTS}
    result = harvest_run(run_outputs(calling="bob"))
    assert len(result.item_ids) == len(OUTPUTS) and marker not in snapshot(bucket, "alice/")
    done = clean_run_area(BUCKET, "alice", RUN_ID)
    assert done.kept_outputs is None and done.removed == len(OUTPUTS)
    assert snapshot(bucket, run_prefix("alice", RUN_ID)) == {}
    assert snapshot(bucket, "alice/runs/other-run/") == {"alice/runs/other-run/outputs/x.tsv": b"another run"}
