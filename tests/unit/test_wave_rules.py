"""What a container request may be, before Wave is called: Wave's own refusals, the cache key, the body."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from hatchway.domain.wave import (
    FREEZE_NEEDS_REPOSITORY,
    MULTI_NEEDS_BUILD,
    ONLY_MULTI_PAIR,
    SIF_NEEDS_FREEZE,
    SIF_SINGLE_PLATFORM,
    BuiltImage,
    ContainerBlock,
    ContainerSpec,
    TowerAuth,
    nextflow_container_config,
    parse_duration,
)


@pytest.mark.parametrize("fields,reason", [
    ({"packages": ["sam tools"]}, "invalid package spec"),
    ({"packages": ["samtools>=1.19; rm -rf /"]}, "invalid package spec"),
    ({"packages": ["samtools"], "platform": "linux/s390x"}, "unknown platform 'linux/s390x'"),
    ({"packages": ["samtools"], "platform": "linux/arm64,linux/amd64"}, ONLY_MULTI_PAIR),
    ({"packages": ["samtools"], "freeze": True}, FREEZE_NEEDS_REPOSITORY.format(mode=3)),
    ({"base_image": "ubuntu:22.04", "freeze": True}, FREEZE_NEEDS_REPOSITORY.format(mode=2)),
    ({"base_image": "ubuntu:22.04", "platform": "linux/amd64,linux/arm64"}, MULTI_NEEDS_BUILD),
    ({"packages": ["samtools"], "format": "sif"}, SIF_NEEDS_FREEZE),
    ({"packages": ["samtools"], "format": "sif", "freeze": True, "build_repository": "quay.io/lab/images",
      "platform": "linux/amd64,linux/arm64"}, SIF_SINGLE_PLATFORM),
    ({"packages": ["samtools"], "build_template": "conda-micromamba/v2"}, "unknown build template"),
    ({"packages": ["samtools"], "channels": ["bad channel"]}, "invalid channel"),
    ({}, "give packages, a base_image"),
    ({"base_image": "UPPER/case"}, "invalid base image"),
])
def test_what_wave_would_refuse_is_refused_with_its_reason(fields, reason):
    with pytest.raises(ValidationError) as err:
        ContainerSpec.model_validate(fields)
    assert reason in str(err.value)


def test_the_same_packages_in_another_order_share_a_cache_key_and_the_platform_does_not():
    a = ContainerSpec(packages=["samtools=1.19", "bwa"])
    b = ContainerSpec(packages=["bwa", "samtools=1.19", "bwa"])
    assert a.cache_key() == b.cache_key()
    assert a.cache_key() != ContainerSpec(packages=["bwa", "samtools=1.19"], platform="linux/arm64").cache_key()
    assert a.cache_key() != ContainerSpec(packages=["bwa", "samtools=1.19"], channels=["bioconda"]).cache_key()
    assert a.cache_key() == ContainerSpec(packages=["bwa", "samtools=1.19"], scan_mode="async").cache_key()


def test_the_request_body_has_wave_s_field_names_and_the_token_only_when_asked():
    spec = ContainerSpec(packages=["samtools=1.19"], base_image="ubuntu:22.04", freeze=True,
                         build_repository="quay.io/lab/images", scan_mode="required")
    body = spec.request_body()
    assert body == {"containerPlatform": "linux/amd64", "format": "docker", "freeze": True,
                    "packages": {"type": "CONDA", "entries": ["samtools=1.19"], "channels": ["conda-forge", "bioconda"],
                                 "condaOpts": {"baseImage": "ubuntu:22.04"}},
                    "buildTemplate": "conda/micromamba:v2", "buildRepository": "quay.io/lab/images",
                    "scanMode": "required"}
    assert ContainerSpec(base_image="ubuntu:22.04").request_body()["containerImage"] == "ubuntu:22.04"
    tower = TowerAuth(endpoint="https://seqera.example.org/api", token="s3cr3t-token", workspace_id=42)
    assert "s3cr3t" not in repr(tower)
    with_tower = spec.request_body(tower)
    assert with_tower["towerAccessToken"] == "s3cr3t-token" and with_tower["towerWorkspaceId"] == 42
    assert with_tower["towerEndpoint"] == "https://seqera.example.org/api"


def test_a_container_block_is_an_image_or_a_build_never_both():
    assert ContainerBlock.model_validate({"image": "quay.io/biocontainers/samtools:1.19"}).request("alice") is None
    build = ContainerBlock.model_validate({"packages": ["samtools"], "name": "sam"}).request("alice")
    assert build.workspace == "alice" and build.name == "sam" and build.asset_uri == "hatchway-container://alice/sam"
    for bad in ({"image": "ubuntu:22.04", "packages": ["x"]}, {"name": "x"}, {"image": "Bad Image"}):
        with pytest.raises(ValidationError):
            ContainerBlock.model_validate(bad)


def test_a_kept_image_is_reused_only_while_its_token_outlives_the_margin():
    now = datetime(2026, 12, 4, 12, tzinfo=timezone.utc)
    frozen = BuiltImage(cache_key="k", image="quay.io/lab/images:abc", succeeded=True)
    soon = BuiltImage(cache_key="k", image="wave/wt/x", succeeded=True, expires_at=now + timedelta(minutes=30))
    later = BuiltImage(cache_key="k", image="wave/wt/x", succeeded=True, expires_at=now + timedelta(hours=5))
    failed = BuiltImage(cache_key="k", image="wave/wt/x", succeeded=False)
    assert frozen.usable(now) and later.usable(now)
    assert not soon.usable(now) and not failed.usable(now)


def test_wave_durations_and_the_nextflow_config():
    assert parse_duration("123.914989000") == pytest.approx(123.914989)
    assert parse_duration("PT1M3.5S") == pytest.approx(63.5)
    assert parse_duration(None) is None
    assert nextflow_container_config("quay.io/x/y:1") == 'process.container = "quay.io/x/y:1"\n'
