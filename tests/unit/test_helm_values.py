"""The nextflow-job chart's values, built from INTERVENE's example request (pure domain code)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from hatchway.domain.helm_values import ChartSettings, Image, build_values
from hatchway.domain.jobs import JobNames, JobRequest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "include/examples/intervene-job-request.json"
NAMESPACE = "intervene-dev"
WORK = "gs://intervene-dev-intp00000000513-work"
RESULTS = "gs://intervene-dev-intp00000000513-results"


@pytest.fixture
def request_() -> JobRequest:
    return JobRequest.model_validate_json(EXAMPLE.read_text())


def settings(**changes) -> ChartSettings:
    base = {"namespace": NAMESPACE, "seqera_secret_name": "seqera-credentials",
            "key_handler_url": "https://keys.example.org/key-handler",
            "globus_base_url": "https://g-1a2b3c.data.globus.org", "gcp_project": "intervene",
            "gcp_location": "europe-west2"}
    return ChartSettings(**{**base, **changes})


def test_samplesheet_paths_point_into_the_work_bucket(request_):
    values = build_values(request_, settings(), with_transfer=True)

    assert values["samplesheet"] == [{
        "sampleset": "test",
        "chrom": None,
        "vcf_import_dosage": False,
        "format": "pfile",
        "geno": f"{WORK}/data/hapnest.pgen",
        "pheno": f"{WORK}/data/hapnest.psam",
        "variants": f"{WORK}/data/hapnest.pvar",
    }]
    # The transfer writes exactly where the samplesheet reads.
    destination = values["transfer"]["destination"]
    decrypted = {f"{destination}/{f['filename'].removesuffix('.c4gh')}" for f in values["transfer"]["source"]["files"]}
    sheet = values["samplesheet"][0]
    assert {sheet["geno"], sheet["pheno"], sheet["variants"]} == decrypted


def test_params_file_carries_the_request_outdir_and_default_min_overlap(request_):
    values = build_values(request_, settings())

    assert values["params"] == {"trait_efo": "EFO_1000068", "target_build": "GRCh38", "format": "json",
                                "outdir": f"{RESULTS}/results", "min_overlap": 0.75}
    assert values["nextflow"] == {"executor": "google-batch", "workDir": f"{WORK}/work",
                                  "google": {"project": "intervene", "location": "europe-west2"}}
    assert values["buckets"] == {"work": WORK, "results": RESULTS}


def test_min_overlap_follows_the_settings(request_):
    assert build_values(request_, settings(min_overlap=0.5))["params"]["min_overlap"] == 0.5
    with pytest.raises(ValidationError, match="min_overlap"):
        settings(min_overlap=1.5)


def test_run_name_and_ids_follow_job_names(request_):
    values = build_values(request_, settings())
    names = JobNames(NAMESPACE, "INTP00000000513")

    assert values["runName"] == names.run_name == "intervene-dev-intp00000000513"
    assert values["jobId"] == "INTP00000000513"


def test_transfer_settings_come_from_the_request(request_):
    transfer = build_values(request_, settings(), with_transfer=True)["transfer"]

    assert transfer == {
        "source": {
            "base_url": "https://g-1a2b3c.data.globus.org",
            "dir": "test@ebi.ac.uk/Sample-Set-Wednesday-18-Sep-15-17-fc578e94",
            "files": [{"filename": "hapnest.pgen.c4gh", "size": 278705850},
                      {"filename": "hapnest.pvar.c4gh", "size": 215004174},
                      {"filename": "hapnest.psam.c4gh", "size": 8517}],
        },
        "destination": f"{WORK}/data",
        "key_handler": {"kind": "http", "url": "https://keys.example.org/key-handler"},
        "secret_key": {"secret_id": "81D5C400-21B4-4E88-8208-8D64C9920283", "secret_id_version": "1"},
    }


def test_secrets_manager_key_handler(request_):
    values = build_values(request_, settings(key_handler="secretsmanager", key_handler_url=None,
                                             key_handler_region="eu-west-2"), with_transfer=True)

    assert values["transfer"]["key_handler"] == {"kind": "secretsmanager", "region": "eu-west-2"}


def test_seqera_credentials_are_only_a_secret_reference(request_):
    values = build_values(request_, settings(seqera_secret_name="tower-creds", seqera_token_key="TOWER_TOKEN",
                                             transfer_secret_name="transfer-creds"), with_transfer=True)

    assert values["seqera"] == {"endpoint": "https://api.cloud.seqera.io", "secretName": "tower-creds",
                                "tokenKey": "TOWER_TOKEN", "workspaceKey": "workspace_id"}
    assert values["transferSecrets"] == {"secretName": "transfer-creds"}
    assert "token" not in {k.lower() for k in ChartSettings.model_fields}, "settings must not take a token value"


def test_s3_storage_uses_s3_urls_and_aws_batch(request_):
    values = build_values(request_, settings(storage_scheme="s3", aws_region="eu-west-1",
                                             aws_batch_queue="intervene-queue"))

    assert values["buckets"]["work"] == "s3://intervene-dev-intp00000000513-work"
    assert values["samplesheet"][0]["geno"] == "s3://intervene-dev-intp00000000513-work/data/hapnest.pgen"
    assert values["nextflow"]["executor"] == "awsbatch"
    assert values["nextflow"]["aws"] == {"region": "eu-west-1", "batchQueue": "intervene-queue"}


def test_deployment_options_are_passed_only_when_set(request_):
    plain = build_values(request_, settings())
    assert not {"images", "serviceAccountName", "nodeSelector", "transferSecrets"} & set(plain)

    tuned = build_values(request_, settings(
        transfer_image=Image(repository="registry.example.org/hatchway-transfer", tag="1.2.3"),
        service_account="nextflow", node_selector={"pool": "jobs"}))
    assert tuned["images"] == {"transfer": {"repository": "registry.example.org/hatchway-transfer", "tag": "1.2.3",
                                            "pullPolicy": "IfNotPresent"}}
    assert tuned["serviceAccountName"] == "nextflow"
    assert tuned["nodeSelector"] == {"pool": "jobs"}


def test_values_are_plain_json_and_deterministic(request_):
    first, second = build_values(request_, settings()), build_values(request_, settings())

    assert json.loads(json.dumps(first)) == first == second


@pytest.mark.parametrize("changes, field", [
    ({"key_handler": "http", "key_handler_url": None}, "key_handler_url"),
    ({"key_handler": "secretsmanager"}, "key_handler_region"),
    ({"seqera_secret_name": "Not_A_Secret"}, "seqera_secret_name"),
    ({"namespace": "Intervene"}, "DNS-1123"),
    ({"globus_base_url": "http://g-1.data.globus.org"}, "globus_base_url"),
    ({"revision": "../../etc"}, "revision"),
])
def test_bad_settings_are_refused_naming_the_field(changes, field):
    with pytest.raises(ValidationError, match=field):
        settings(**changes)


def test_domain_module_imports_no_airflow_or_cloud_sdk():
    # ("google" itself is a namespace package that site-packages' .pth files import at start-up.)
    code = ("import sys, hatchway.domain.helm_values; "
            "sdks = ('airflow', 'boto3', 'botocore', 'google.cloud.storage', 'helm_python', 'kubernetes'); "
            "bad = [m for m in sys.modules if m.startswith(sdks)]; print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                          env={"PYTHONPATH": str(REPO / "plugins")}, timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_job_run_values_leave_the_transfer_to_the_transfer_inputs_task(request_):
    values = build_values(request_, settings(transfer_secret_name="transfer-creds"))

    assert "transfer" not in values and "transferSecrets" not in values


def test_transfer_config_is_the_same_for_every_launcher(request_):
    from hatchway.domain.helm_values import TransferSettings, transfer_config

    helm = {"seqera_secret_name": "seqera-credentials", "key_handler_url": "https://keys.example.org/key-handler",
            "globus_base_url": "https://g-1a2b3c.data.globus.org", "gcp_project": "intervene"}
    from_helm = transfer_config(request_, TransferSettings.from_helm(helm), NAMESPACE, "gs")

    assert from_helm == build_values(request_, settings(), with_transfer=True)["transfer"]
    assert from_helm["destination"] == f"{WORK}/data"
