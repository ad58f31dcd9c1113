"""container_build for real (dag.test): the Wave simulator, the image cache in moto's S3, the
Asset event, and the mail SES sends (read back from moto).

Every Wave request body the DAG sent is checked against tests/contracts/wave-api-7b8b9f6d.yaml.
"""

from __future__ import annotations

import json

import pytest

from hatchway.containers.builds import CACHE_PREFIX
from hatchway.domain.wave import ContainerSpec
from support import run_dag, task_states, unique, xcom_values
from support.notify import html_of, sent_mail
from support.wave import NOTIFY_TO, notify_by_mail, submitted, wave, wave_simulator  # noqa: F401 - fixtures

BUCKET = "hatchway-test-data"
PACKAGES = ["samtools=1.19", "bwa=0.7.17"]
FAILING_LOG = "\n".join([f"#{i} [build] step {i}" for i in range(12)]
                        + ["error libmamba Could not solve for environment specs",
                           "critical libmamba Could not solve for environment specs"])


@pytest.fixture
def bucket(aws):
    aws.s3.create_bucket(Bucket=BUCKET)
    return aws


def _asset_events(uri: str) -> list[dict]:
    from airflow.models.asset import AssetEvent, AssetModel
    from airflow.utils.session import create_session

    with create_session() as session:
        rows = (session.query(AssetEvent).join(AssetModel, AssetEvent.asset_id == AssetModel.id)
                .filter(AssetModel.uri == uri).order_by(AssetEvent.id).all())
        return [dict(r.extra or {}) for r in rows]


def _mails(moto_server) -> list:
    return [m["message"] for m in sent_mail(moto_server)]


def test_a_build_that_succeeds_gives_the_image_its_asset_event_the_cache_and_a_mail(wave, bucket, moto_server,
                                                                                    monkeypatch):
    notify_by_mail(monkeypatch, bucket)
    wave.set_course("succeed", after=2)
    name = unique("sam")
    run = run_dag("container_build", workspace="alice", name=name, packages=PACKAGES)
    assert run.state == "success", task_states(run)
    built = xcom_values(run)["build_container:return_value"]
    [received] = submitted(wave)
    assert received["body"]["packages"] == {"type": "CONDA", "entries": sorted(PACKAGES),
                                            "channels": ["conda-forge", "bioconda"]}
    assert received["body"]["containerPlatform"] == "linux/amd64"
    [record] = [b for b in wave.builds() if b["buildId"] == built["build_id"]]
    # not frozen: the image to run is Wave's tokenized reference to the built one
    assert built["image"].startswith("wave.local/wt/") and built["image"].endswith(record["targetImage"].split("/", 1)[1])
    assert built["source"] == "new" and built["expires_at"]
    assert wave.calls()["status"] >= 2  # waited through BUILDING polls, in the triggerer

    # the Asset event carries the image; a DAG scheduled on the Asset reads it there
    events = _asset_events(f"hatchway-container://alice/{name}")
    assert [e["image"] for e in events] == [built["image"]]

    # the cache record, tagged with the workspace
    key = f"{CACHE_PREFIX}/alice/{ContainerSpec(packages=PACKAGES).cache_key()}.json"
    kept = json.loads(bucket.s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
    assert kept["image"] == built["image"] and kept["succeeded"] is True
    tags = {t["Key"]: t["Value"] for t in bucket.s3.get_object_tagging(Bucket=BUCKET, Key=key)["TagSet"]}
    assert tags["hatchway:workspace"] == "alice"
    assert not [k for k in _keys(bucket) if k.endswith(".pending.json")]

    # the mail: to the workspace's address, with the image
    [mail] = _mails(moto_server)
    assert mail["To"] == NOTIFY_TO and "Container build" in mail["Subject"]
    assert built["image"] in html_of(mail)


def _keys(aws) -> list[str]:
    return [o["Key"] for o in aws.s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]


def test_a_repeated_request_is_served_from_the_cache_without_calling_wave(wave, bucket, monkeypatch):
    wave.set_course("succeed", after=1)
    first = run_dag("container_build", workspace="alice", name="repeat", packages=PACKAGES)
    assert first.state == "success", task_states(first)
    calls = sum(wave.calls().values())
    again = run_dag("container_build", workspace="alice", name="repeat", packages=list(reversed(PACKAGES)))
    assert again.state == "success", task_states(again)
    first_image = xcom_values(first)["build_container:return_value"]["image"]
    served = xcom_values(again)["build_container:return_value"]
    assert served["image"] == first_image and served["source"] == "cache"
    assert sum(wave.calls().values()) == calls  # not one Wave call
    assert [e["image"] for e in _asset_events("hatchway-container://alice/repeat")] == [first_image, first_image]
    # another platform is another image: Wave is asked
    other = run_dag("container_build", workspace="alice", name="repeat-arm", packages=PACKAGES, platform="linux/arm64")
    assert other.state == "success" and wave.calls()["submit"] == 2


def test_a_failed_build_mails_the_log_s_last_lines_and_a_cached_failure_is_refused(wave, bucket, moto_server,
                                                                                  monkeypatch):
    notify_by_mail(monkeypatch, bucket, when="on_error")
    wave.set_course("fail", after=1, log=FAILING_LOG)
    name = unique("broken")
    run = run_dag("container_build", workspace="alice", name=name, packages=["nosuchpackage=9.9"])
    assert run.state == "failed"
    failure = xcom_values(run)["build_container:failure"]
    assert failure["reason"] == "Container build did not complete successfully"
    assert failure["log_tail"][-1] == "critical libmamba Could not solve for environment specs"
    assert len(failure["log_tail"]) == 5  # log_tail_lines
    assert _asset_events(f"hatchway-container://alice/{name}") == []
    assert not [k for k in _keys(bucket) if k.startswith(f"{CACHE_PREFIX}/")]  # nothing kept, nothing pending
    [mail] = _mails(moto_server)
    text = html_of(mail)
    assert "FAILED" in mail["Subject"].upper() and "critical libmamba Could not solve" in text

    # Wave answers the same request from its cache: cached, not succeeded -> refused, no wait
    status_calls = wave.calls().get("status", 0)
    again = run_dag("container_build", workspace="alice", name=name, packages=["nosuchpackage=9.9"])
    assert again.state == "failed"
    refused = xcom_values(again)["build_container:failure"]
    assert "cached build" in refused["reason"] and refused["log_tail"][-1].startswith("critical libmamba")
    assert wave.calls().get("status", 0) == status_calls
    assert submitted(wave)[-1]["status"] == 200


@pytest.mark.parametrize("conf,reason", [
    ({"freeze": True}, "Attribute `buildRepository` must be specified when using freeze mode [3]"),
    ({"format": "sif"}, "Singularity build is only allowed enabling freeze mode"),
    ({"format": "sif", "freeze": True, "build_repository": "quay.io/lab/images", "platform": "linux/amd64,linux/arm64"},
     "Multi-platform builds are not supported for Singularity format"),
])
def test_what_wave_would_refuse_is_refused_before_any_call(wave, bucket, conf, reason):
    run = run_dag("container_build", workspace="alice", name="refused", packages=PACKAGES, **conf)
    assert run.state == "failed"
    assert wave.calls() == {} or sum(wave.calls().values()) == 0
    assert wave.requests() == []
    # Wave itself says the same
    import httpx

    body = {"packages": {"type": "CONDA", "entries": PACKAGES, "channels": ["conda-forge"]},
            "buildTemplate": "conda/micromamba:v2", "containerPlatform": conf.get("platform", "linux/amd64"),
            "format": conf.get("format", "docker"), "freeze": conf.get("freeze", False),
            **({"buildRepository": conf["build_repository"]} if conf.get("build_repository") else {})}
    answer = httpx.post(f"{wave.url}/v1alpha2/container", json=body, timeout=10)
    assert answer.status_code == 400 and answer.json()["message"].startswith(reason)


def test_on_error_sends_nothing_for_a_success(wave, bucket, moto_server, monkeypatch):
    notify_by_mail(monkeypatch, bucket, when="on_error")
    wave.set_course("succeed", after=1)
    run = run_dag("container_build", workspace="alice", name=unique("quiet"), packages=["bwa"])
    assert run.state == "success", task_states(run)
    assert _mails(moto_server) == []
