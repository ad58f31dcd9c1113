"""Job requests and status messages of the job-run lifecycle (INTERVENE-compatible).

Plain pydantic, one meaning per model. The request is what the backend produces on the
intake topic; the status message is what it consumes on the status topic. The rules of
the request are validators here, so intake, the DAG and the tests share them.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from enum import Enum
from pathlib import PurePosixPath
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from hatchway.domain.names import NameError_, check_dns1123_label, check_s3_bucket
from hatchway.domain.wave import ContainerBlock

JOB_ID = re.compile(r"^INTP\d{1,20}$")
UUID4 = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$", re.IGNORECASE)
SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
GENOMIC_SUFFIXES = (".vcf", ".pgen", ".pvar", ".psam", ".bim", ".bed", ".fam", ".zst", ".gz")
# Which file of a target genome carries which suffix, per format (within what pyvatti's
# check_geno/pheno/variant_suffix allow: no zstd genotypes, VCFs only bgzipped).
FORMAT_SUFFIXES = {
    "pfile": {"geno": (".pgen",), "variants": (".pvar", ".pvar.zst"), "pheno": (".psam",)},
    "bfile": {"geno": (".bed",), "variants": (".bim", ".bim.zst"), "pheno": (".fam",)},
    "vcf": {"geno": (".vcf.gz",), "variants": (".vcf.gz",), "pheno": (".vcf.gz",)},
}
# pyvatti TargetGenome.check_format_and_filenames: the set of every suffix of the three files
# (pathlib's, so a dot inside a name counts too) must be exactly one of these.
FORMAT_EXTENSIONS = {
    "pfile": ({".pvar", ".psam", ".pgen"}, {".pvar", ".zst", ".psam", ".pgen"}),
    "bfile": ({".bed", ".bim", ".fam"}, {".bed", ".bim", ".zst", ".fam"}),
    "vcf": ({".vcf"}, {".vcf", ".gz"}),
}


def _suffix_allowed(value: str, plain: tuple[str, ...], compressed: dict[str, tuple[str, ...]]) -> bool:
    """pyvatti's ``match path.suffix``: a plain suffix, or a compression suffix after one of its formats."""
    path = PurePosixPath(value)
    if path.suffix in plain:
        return True
    return any(s in path.suffixes for s in compressed.get(path.suffix, ()))


def _safe_file_name(value: str, what: str) -> str:
    if "/" in value or ".." in value or not SAFE_NAME.match(value):
        raise ValueError(f"{what} {value!r} must be a plain file name: letters, digits, '.', '_' and '-', no '/' or '..'")
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class GlobusFile(_Strict):
    # The patterns in json_schema_extra repeat a validator's rule for the trigger form only.
    filename: str = Field(json_schema_extra={"pattern": r"\.c4gh$"})
    size: int = Field(gt=0, description="bytes; checked after the transfer")  # pyvatti GlobusFile.size gt=0

    @field_validator("filename")
    @classmethod
    def _encrypted(cls, v: str) -> str:
        _safe_file_name(v, "filename")
        # pyvatti GlobusFile.must_have_c4gh_suffix.
        if not v.endswith(".c4gh"):
            raise ValueError(f"filename {v!r} must end with .c4gh (inputs arrive Crypt4GH-encrypted)")
        return v


class GlobusDetails(_Strict):
    dir_path_on_guest_collection: str = Field(min_length=1, max_length=1024)
    files: list[GlobusFile] = Field(min_length=1, max_length=1000)

    @field_validator("dir_path_on_guest_collection")
    @classmethod
    def _relative_path(cls, v: str) -> str:
        if v.startswith("/") or ".." in v.split("/") or any(c in v for c in "\\\n\r\t\0"):
            raise ValueError("dir_path_on_guest_collection must be a relative path without '..'")
        return v

    @model_validator(mode="after")
    def _unique(self) -> GlobusDetails:
        names = [f.filename for f in self.files]
        if len(set(names)) != len(names):
            raise ValueError("files lists a filename twice")
        return self


class TargetGenome(_Strict):
    sampleset: str = Field(min_length=1, max_length=64,
                           json_schema_extra={"pattern": "^(?!reference$)[A-Za-z0-9-]+$"})
    # pyvatti: coerce_numbers_to_str (the backend may send chrom 22 as a number).
    chrom: str | None = Field(None, coerce_numbers_to_str=True,
                              json_schema_extra={"anyOf": [{"type": "string"}, {"type": "number"}, {"type": "null"}]})
    vcf_import_dosage: bool = False
    geno: str
    pheno: str
    variants: str
    format: Literal["pfile", "bfile", "vcf"]  # pyvatti TargetFormat

    @field_validator("sampleset")
    @classmethod
    def _sampleset(cls, v: str) -> str:
        # pyvatti TargetGenome.check_sampleset_name: no '_' (pgsc_calc splits its file names on
        # '_'), and not 'reference' (the calculator's own sampleset).
        if "_" in v:
            raise ValueError(f"sampleset {v!r} can't contain '_'")
        if v == "reference":
            raise ValueError("sampleset can't be 'reference' (the calculator's own reference panel)")
        if not re.match(r"^[A-Za-z0-9-]+$", v):
            raise ValueError("sampleset may contain only letters, digits and '-'")
        return v

    @field_validator("geno", "pheno", "variants")
    @classmethod
    def _plain(cls, v: str, info) -> str:
        _safe_file_name(v, info.field_name)
        # pyvatti TargetGenome.check_file_suffix: the workflow reads decrypted files only.
        if v.endswith(".c4gh"):
            raise ValueError(f"{info.field_name} {v!r} names the decrypted file: drop the .c4gh suffix")
        return v

    @field_validator("geno")
    @classmethod
    def _geno_suffix(cls, v: str) -> str:
        # pyvatti TargetGenome.check_geno_suffix: .pgen, .bed or .vcf.gz.
        if not _suffix_allowed(v, (".pgen", ".bed"), {".gz": (".vcf",)}):
            raise ValueError(f"geno {v!r}: suffix {PurePosixPath(v).suffix!r} is not a supported genotype format "
                             "(.pgen, .bed, .vcf.gz)")
        return v

    @field_validator("variants")
    @classmethod
    def _variants_suffix(cls, v: str) -> str:
        # pyvatti TargetGenome.check_variant_suffix: .pvar, .bim, zstd of those, .bim.gz or .vcf.gz.
        if not _suffix_allowed(v, (".pvar", ".bim"), {".zst": (".pvar", ".bim"), ".gz": (".bim", ".vcf")}):
            raise ValueError(f"variants {v!r}: suffix {PurePosixPath(v).suffix!r} is not a supported variant "
                             "information format (.pvar, .bim, .pvar.zst, .bim.zst, .bim.gz, .vcf.gz)")
        return v

    @field_validator("pheno")
    @classmethod
    def _pheno_suffix(cls, v: str) -> str:
        # pyvatti TargetGenome.check_pheno_suffix: .psam, .fam or .vcf.gz.
        if not _suffix_allowed(v, (".psam", ".fam"), {".gz": (".vcf",)}):
            raise ValueError(f"pheno {v!r}: suffix {PurePosixPath(v).suffix!r} is not a supported phenotype "
                             "information format (.psam, .fam, .vcf.gz)")
        return v

    @model_validator(mode="after")
    def _format_and_filenames(self) -> TargetGenome:
        # pyvatti TargetGenome.check_format_and_filenames (runs before our per-field check below).
        paths = [self.geno, self.pheno, self.variants]
        extensions = {s for p in paths for s in PurePosixPath(p).suffixes}
        if extensions not in FORMAT_EXTENSIONS[self.format]:
            allowed = " or ".join(str(sorted(e)) for e in FORMAT_EXTENSIONS[self.format])
            raise ValueError(f"format {self.format!r} does not fit the file names {paths}: their suffixes "
                             f"{sorted(extensions)} must be exactly {allowed}")
        return self

    @model_validator(mode="after")
    def _suffixes_match_format(self) -> TargetGenome:
        for field, suffixes in FORMAT_SUFFIXES[self.format].items():
            value = getattr(self, field)
            if not value.endswith(suffixes):
                raise ValueError(f"{field} {value!r} does not fit format {self.format}: expected {' or '.join(suffixes)}")
        return self


class NxfParamsFile(_Strict):
    pgs_id: str | None = None
    pgp_id: str | None = None
    trait_efo: str | None = None
    target_build: Literal["GRCh37", "GRCh38"]  # pyvatti GenomeBuild
    format: Literal["json"] = "json"  # pyvatti SamplesheetFormat

    @field_validator("pgs_id", "pgp_id", "trait_efo", mode="before")
    @classmethod
    def _blank_is_none(cls, v):
        # pyvatti PGSParams.parse_pgs_requests: a blank id ("" or spaces) is no id.
        return None if isinstance(v, str) and not v.strip() else v

    @field_validator("pgs_id", "pgp_id", "trait_efo")
    @classmethod
    def _ids(cls, v: str | None, info) -> str | None:
        if v is not None and not re.match(r"^[A-Za-z0-9_:, -]{1,4096}$", v):
            raise ValueError(f"{info.field_name} may contain only letters, digits, '_', ':', ',' and spaces")
        return v

    @model_validator(mode="after")
    def _one_score_source(self) -> NxfParamsFile:
        # pyvatti PGSParams.check_calculation_requests.
        if not (self.pgs_id or self.pgp_id or self.trait_efo):
            raise ValueError("nxf_params_file needs at least one of pgs_id, pgp_id, trait_efo")
        return self


class PipelineParam(_Strict):
    id: str = Field(json_schema_extra={"pattern": "^INTP[0-9]{1,20}$"})
    target_genomes: list[TargetGenome] = Field(min_length=1, max_length=100)
    nxf_params_file: NxfParamsFile

    @field_validator("id")
    @classmethod
    def _job_id(cls, v: str) -> str:
        # pyvatti PGSJobParams.id: pattern "INTP.*" (here anchored, digits only: it names buckets).
        if not JOB_ID.match(v):
            raise ValueError(f"id {v!r} must match INTP followed by digits")
        return v


class SecretKeyDetails(_Strict):
    secret_id: str = Field(json_schema_extra={"pattern": "^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-4[0-9a-fA-F]{3}-[89abAB]"
                                                         "[0-9a-fA-F]{3}-[0-9a-fA-F]{12}$"})
    # pyvatti: coerce_numbers_to_str (a version may arrive as the number 1).
    secret_id_version: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9._-]+$",
                                   coerce_numbers_to_str=True, json_schema_extra={"type": ["string", "number"]})

    @field_validator("secret_id")
    @classmethod
    def _uuid4(cls, v: str) -> str:
        # pyvatti SecretKeyDetails.secret_id: UUID4 (here also with its hyphens).
        if not UUID4.match(v):
            raise ValueError("secret_id must be a UUID4")
        return v


class JobRequest(_Strict):
    """A job request from the intake topic."""

    globus_details: GlobusDetails
    pipeline_param: PipelineParam
    secret_key_details: SecretKeyDetails
    # Hatchway's own addition (INTERVENE sends none): a ready image, or packages to build first.
    container: ContainerBlock | None = None

    @property
    def job_id(self) -> str:
        return self.pipeline_param.id

    @model_validator(mode="after")
    def _genomes_are_transferred(self) -> JobRequest:
        encrypted = {f.filename.removesuffix(".c4gh") for f in self.globus_details.files}
        for genome in self.pipeline_param.target_genomes:
            missing = [f for f in (genome.geno, genome.pheno, genome.variants) if f not in encrypted]
            if missing:
                raise ValueError(f"target genome {genome.sampleset!r} needs {missing} but globus_details.files "
                                 "has no matching .c4gh file")
        return self


def request_errors(exc) -> str:
    """A pydantic ``ValidationError`` of a request as one line: ``field.path: reason; ...``."""
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'request'}: {e['msg']}" for e in exc.errors())


def readable_job_id(data) -> str | None:
    """The job id of a request that may be invalid elsewhere, if it is there and well-formed."""
    try:
        job_id = data["pipeline_param"]["id"]
    except (KeyError, TypeError, IndexError):
        return None
    return job_id if isinstance(job_id, str) and JOB_ID.match(job_id) else None


def request_param_schemas() -> dict[str, dict]:
    """The JSON schema of each top-level field of :class:`JobRequest`, for the ``job_run``
    trigger form's Params: self-contained (every ``$ref`` inlined), so the UI and the REST API
    refuse a conf that breaks a type, a pattern, a length or an allowed value before a run
    exists. Rules across fields stay with the model (``resolve`` checks them).

    Generated from the model; the DAG file reads the copy written by
    ``python -m hatchway.domain.job_form`` (:mod:`hatchway.domain.job_form`), which a unit test
    keeps equal to this: building the model's schema at every parse would double it.
    """
    schema = JobRequest.model_json_schema()
    defs = schema.pop("$defs", {})

    def inline(node, names: bool = False):
        # Without pydantic's "title" of every field and model ("Dir Path On Guest Collection"):
        # the form shows the Params' own titles, and every task of job_run carries a copy of
        # these schemas, copied and serialized at every parse. ``names``: the keys are field names.
        if isinstance(node, dict):
            if names:
                return {k: inline(v) for k, v in node.items()}
            if "$ref" in node:
                return inline({**defs[node["$ref"].rsplit("/", 1)[-1]],
                               **{k: v for k, v in node.items() if k != "$ref"}})
            return {k: inline(v, names=k == "properties") for k, v in node.items() if k != "title"}
        if isinstance(node, list):
            return [inline(v) for v in node]
        return node

    return {name: inline(field) for name, field in schema["properties"].items() if name != "container"}


class JobEvent(str, Enum):
    REQUESTED = "Requested"
    CREATED = "Created"
    DEPLOYED = "Deployed"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"

    @property
    def terminal(self) -> bool:
        return self in (JobEvent.SUCCEEDED, JobEvent.FAILED)


# The INTERVENE backend knows only these; the others are switchable (pyvatti's status model).
BACKEND_EVENTS = frozenset({JobEvent.DEPLOYED, JobEvent.SUCCEEDED, JobEvent.FAILED})
_ORDER = [JobEvent.REQUESTED, JobEvent.CREATED, JobEvent.DEPLOYED, JobEvent.SUCCEEDED]


def can_move(current: JobEvent | None, new: JobEvent) -> bool:
    """Whether a run may go from ``current`` to ``new`` (forward only; Failed from any live state)."""
    if current is None:
        return True
    if current.terminal:
        return False
    if new is JobEvent.FAILED:
        return True
    return _ORDER.index(new) > _ORDER.index(current)


class StatusMessage(BaseModel):
    """A status message for the status topic: ``trace_*`` only when Failed."""

    model_config = ConfigDict(extra="forbid")

    run_name: str
    utc_time: datetime
    event: JobEvent
    trace_name: str | None = None
    trace_exit: int | None = None

    @field_validator("utc_time")
    @classmethod
    def _utc(cls, v: datetime) -> datetime:
        if v.tzinfo is None:
            raise ValueError("utc_time must carry a timezone")
        return v.astimezone(timezone.utc)

    @model_validator(mode="after")
    def _trace_only_on_failure(self) -> StatusMessage:
        if self.event is not JobEvent.FAILED and (self.trace_name is not None or self.trace_exit is not None):
            raise ValueError("trace_name and trace_exit belong to Failed messages only")
        return self

    def to_json(self) -> bytes:
        data = self.model_dump(mode="json", exclude={"trace_name", "trace_exit"}
                               if self.event is not JobEvent.FAILED else None)
        data["utc_time"] = self.utc_time.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        import json

        return json.dumps(data, separators=(",", ":")).encode()


def seqera_event(status: str | None) -> JobEvent | None:
    """Seqera workflow status -> job event; ``None`` (not started yet) changes nothing."""
    if status is None:
        return None
    return {"SUBMITTED": JobEvent.DEPLOYED, "RUNNING": JobEvent.DEPLOYED, "SUCCEEDED": JobEvent.SUCCEEDED,
            "FAILED": JobEvent.FAILED, "UNKNOWN": JobEvent.FAILED, "CANCELLED": JobEvent.FAILED}.get(status)


class JobNames:
    """Names of one job's resources, from the deployment namespace and the job id."""

    def __init__(self, namespace: str, job_id: str):
        check_dns1123_label(namespace)
        if not JOB_ID.match(job_id):
            raise NameError_(f"job id {job_id!r} must match INTP followed by digits")
        self.namespace = namespace
        self.job_id = job_id
        lowered = job_id.lower()
        self.run_name = f"{namespace}-{lowered}"
        self.release = check_dns1123_label(lowered[:53])
        self.work_bucket = check_s3_bucket(f"{namespace}-{lowered}-work")
        self.results_bucket = check_s3_bucket(f"{namespace}-{lowered}-results")
        self.dag_run_id = f"job__{lowered}"


class JobPlatformConfig(BaseModel):
    """Settings of the job-run lifecycle, from the Airflow Variable ``hatchway_jobs_config`` (JSON)."""

    model_config = ConfigDict(extra="forbid")

    namespace: str = Field("intervene-dev", description="Kubernetes namespace; prefix of run and bucket names")
    kafka_conn_id: str = "kafka_default"
    intake_topic: str = "pipeline-launch"
    status_topic: str = "pipeline-status"
    dead_letter_topic: str = "pipeline-launch-dlq"
    max_message_bytes: int = Field(1_048_576, ge=1024)
    status_send_timeout_seconds: int = Field(
        120, ge=1, description="how long a status send waits for the broker: an outage shorter than this "
                               "only delays the message; a longer one fails the task, whose retry sends it once")
    extra_status_events: bool = Field(True, description="also send Requested and Created (the INTERVENE "
                                                        "backend knows only Deployed, Succeeded, Failed)")
    max_concurrent_jobs: int = Field(10, ge=1)
    storage: Literal["gcs", "s3"] = "gcs"
    gcp_conn_id: str = "google_cloud_default"
    aws_conn_id: str = "aws_default"
    bucket_location: str = "EUROPE-WEST2"
    results_retention_days: int = Field(7, ge=1)
    launcher: Literal["seqera", "helm"] = "seqera"
    seqera_conn_id: str = "seqera_default"
    pipeline: str = "https://github.com/pgscatalog/pgsc_calc"
    revision: str = "v2.0.0"
    kubernetes_conn_id: str | None = None
    helm: dict = Field(default_factory=lambda: {"seqera_secret_name": "seqera-credentials",
                                                "globus_base_url": "https://g-1234.data.globus.org",
                                                "key_handler_url": "https://keys.example.org/key"},
                       description="the helm launcher's ChartSettings (besides namespace, storage, pipeline)")
    timeout_seconds: int = Field(3600, ge=1, description="not started within this -> Failed")
    deployed_timeout_seconds: int = Field(172_800, ge=1, description="not finished within this -> Failed")
    poll_interval_seconds: float = Field(60.0, gt=0, description="one shared Seqera list call per interval")

    @field_validator("namespace")
    @classmethod
    def _namespace(cls, v: str) -> str:
        if len(v) > 27:
            raise ValueError("namespace must be at most 27 characters (bucket names carry it and the job id)")
        return check_dns1123_label(v)

    @property
    def work_dir_scheme(self) -> str:
        return "gs" if self.storage == "gcs" else "s3"

    @property
    def sent_events(self) -> frozenset[JobEvent]:
        return frozenset(JobEvent) if self.extra_status_events else BACKEND_EVENTS
