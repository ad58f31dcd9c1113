"""Every rule of pyvatti's request models (ebi-gdp/hattivatti, pyvatti/src/pyvatti/messagemodels.py)
holds for Hatchway's request: one row per rule, each naming the field it rejects."""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest
from pydantic import ValidationError

from hatchway.domain.jobs import JobRequest
from support.jobs import EXAMPLE


def _genome(**changes) -> Callable[[dict], None]:
    def change(body: dict) -> None:
        body["pipeline_param"]["target_genomes"][0].update(changes)
    return change


def _files(*names: str) -> Callable[[dict], None]:
    def change(body: dict) -> None:
        body["globus_details"]["files"] = [{"filename": f"{n}.c4gh", "size": 10} for n in names]
    return change


def _both(*changes: Callable[[dict], None]) -> Callable[[dict], None]:
    def change(body: dict) -> None:
        for c in changes:
            c(body)
    return change


def _set(path: tuple, value) -> Callable[[dict], None]:
    def change(body: dict) -> None:
        target = body
        for key in path[:-1]:
            target = target[key]
        if value is _DROP:
            target.pop(path[-1])
        else:
            target[path[-1]] = value
    return change


_DROP = object()

# (pyvatti rule, change to the real example request, the field named in the error, words of the reason)
REJECTED = [
    ("GlobusFile.filename must_have_c4gh_suffix",
     _set(("globus_details", "files", 0, "filename"), "hapnest.pgen"), "filename", "must end with .c4gh"),
    ("GlobusFile.size gt=0", _set(("globus_details", "files", 0, "size"), 0), "size", "greater than 0"),
    ("GlobusConfig.dir_path_on_guest_collection required",
     _set(("globus_details", "dir_path_on_guest_collection"), _DROP), "dir_path_on_guest_collection", "required"),
    ("GlobusConfig.files required", _set(("globus_details", "files"), _DROP), "files", "required"),
    ("TargetGenome.check_file_suffix (no .c4gh)", _genome(geno="hapnest.pgen.c4gh"), "geno", ".c4gh"),
    ("TargetGenome.check_sampleset_name (no _)", _genome(sampleset="my_cohort"), "sampleset", "can't contain '_'"),
    ("TargetGenome.check_sampleset_name (not reference)", _genome(sampleset="reference"), "sampleset",
     "can't be 'reference'"),
    ("TargetGenome.check_geno_suffix", _both(_genome(geno="hapnest.pgen.zst"),
                                             _files("hapnest.pgen.zst", "hapnest.pvar", "hapnest.psam")),
     "geno", "is not a supported genotype format"),
    ("TargetGenome.check_geno_suffix (plain .vcf)",
     _both(_genome(format="vcf", geno="s.vcf", pheno="s.vcf.gz", variants="s.vcf.gz"), _files("s.vcf", "s.vcf.gz")),
     "geno", "is not a supported genotype format"),
    ("TargetGenome.check_variant_suffix",
     _both(_genome(format="vcf", geno="s.vcf.gz", pheno="s.vcf.gz", variants="s.vcf"), _files("s.vcf", "s.vcf.gz")),
     "variants", "is not a supported variant information format"),
    ("TargetGenome.check_pheno_suffix",
     _both(_genome(format="vcf", geno="s.vcf.gz", pheno="s.vcf", variants="s.vcf.gz"), _files("s.vcf", "s.vcf.gz")),
     "pheno", "is not a supported phenotype information format"),
    ("TargetGenome.check_format_and_filenames (format vs files)",
     _both(_genome(format="bfile", geno="x.bed", pheno="x.fam", variants="x.bim.gz"),
           _files("x.bed", "x.fam", "x.bim.gz")), "format", "does not fit the file names"),
    ("TargetGenome.check_format_and_filenames (every suffix counts)",
     _both(_genome(geno="my.cohort.pgen", pheno="my.cohort.psam", variants="my.cohort.pvar"),
           _files("my.cohort.pgen", "my.cohort.psam", "my.cohort.pvar")), "format", "does not fit the file names"),
    ("TargetGenome.format allowed values (TargetFormat)", _genome(format="bgen"), "format", "'pfile', 'bfile' or 'vcf'"),
    ("TargetGenome.geno required", _set(("pipeline_param", "target_genomes", 0, "geno"), _DROP), "geno", "required"),
    ("PGSParams.check_calculation_requests (blank ids are missing)",
     _set(("pipeline_param", "nxf_params_file"), {"pgs_id": " ", "pgp_id": None, "trait_efo": "",
                                                  "target_build": "GRCh38"}),
     "nxf_params_file", "at least one of pgs_id, pgp_id, trait_efo"),
    ("PGSParams.target_build allowed values (GenomeBuild)",
     _set(("pipeline_param", "nxf_params_file", "target_build"), "hg19"), "target_build", "'GRCh37' or 'GRCh38'"),
    ("PGSParams.format allowed values (SamplesheetFormat)",
     _set(("pipeline_param", "nxf_params_file", "format"), "csv"), "nxf_params_file.format", "'json'"),
    ("SecretKeyDetails.secret_id UUID4",
     _set(("secret_key_details", "secret_id"), "81D5C400-21B4-1E88-8208-8D64C9920283"), "secret_id", "UUID4"),
    ("SecretKeyDetails.secret_id_version required",
     _set(("secret_key_details", "secret_id_version"), _DROP), "secret_id_version", "required"),
    ("PGSJobParams.id pattern INTP.*", _set(("pipeline_param", "id"), "JOB0001"), "id", "INTP"),
    ("PGSJobParams.target_genomes required", _set(("pipeline_param", "target_genomes"), _DROP),
     "target_genomes", "required"),
    ("JobRequest.secret_key_details required", _set(("secret_key_details",), _DROP), "secret_key_details",
     "required"),
]


@pytest.mark.parametrize(("rule", "change", "field", "reason"), REJECTED, ids=[r[0] for r in REJECTED])
def test_each_pyvatti_rule_rejects_naming_the_field(rule, change, field, reason):
    body = copy.deepcopy(EXAMPLE)
    change(body)
    with pytest.raises(ValidationError) as err:
        JobRequest.model_validate(body)
    text = str(err.value)
    assert field in text and reason in text, f"{rule}: {text}"


# What pyvatti accepts is accepted too (its own doctests and the INTERVENE example).
ACCEPTED = [
    ("the INTERVENE example", lambda body: None),
    ("a blank score id is no score id", _set(("pipeline_param", "nxf_params_file"),
                                             {"pgs_id": "PGS001229,PGS000013", "pgp_id": None, "trait_efo": "",
                                              "target_build": "GRCh37"})),
    ("a numeric chromosome", _genome(chrom=22)),
    ("a numeric key version", _set(("secret_key_details", "secret_id_version"), 1)),
    ("zstd variants", _both(_genome(variants="hapnest.pvar.zst"),
                            _files("hapnest.pgen", "hapnest.pvar.zst", "hapnest.psam"))),
    ("bgzipped VCF", _both(_genome(format="vcf", geno="s.vcf.gz", pheno="s.vcf.gz", variants="s.vcf.gz"),
                           _files("s.vcf.gz"))),
    ("PLINK 1 with zstd variants", _both(_genome(format="bfile", geno="x.bed", pheno="x.fam", variants="x.bim.zst"),
                                         _files("x.bed", "x.fam", "x.bim.zst"))),
]


@pytest.mark.parametrize(("case", "change"), ACCEPTED, ids=[a[0] for a in ACCEPTED])
def test_what_pyvatti_accepts_is_accepted(case, change):
    body = copy.deepcopy(EXAMPLE)
    change(body)
    request = JobRequest.model_validate(body)
    if case == "a blank score id is no score id":
        assert request.pipeline_param.nxf_params_file.trait_efo is None
    if case == "a numeric chromosome":
        assert request.pipeline_param.target_genomes[0].chrom == "22"
