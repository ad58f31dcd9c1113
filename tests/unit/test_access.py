"""Workspace rules of the WES runner: who may call a workflow, where it runs, on whose data."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from hatchway.domain.access import (
    NOT_FOUND_OR_NOT_YOURS,
    AccessDenied,
    AccessPolicy,
    Engine,
    WorkflowDeploy,
    calling_workspace,
    can_manage,
    parse_workflow_url,
    resolve,
)

DEPLOYER, OTHER = "lab-a", "lab-b"

# (policy, caller) -> executing, input workspaces, step workspaces; None = denied.
# The catalog workspace is always the caller: outputs go to whoever asked for them.
RESOLUTIONS = [
    (AccessPolicy.PRIVATE, DEPLOYER, (DEPLOYER, (DEPLOYER,), (DEPLOYER,))),
    (AccessPolicy.PRIVATE, OTHER, None),
    (AccessPolicy.PUBLIC, DEPLOYER, (DEPLOYER, (DEPLOYER,), (DEPLOYER,))),
    (AccessPolicy.PUBLIC, OTHER, (OTHER, (OTHER,), (OTHER,))),
    (AccessPolicy.USER_SERVICE, DEPLOYER, (DEPLOYER, (DEPLOYER,), (DEPLOYER,))),
    (AccessPolicy.USER_SERVICE, OTHER, (DEPLOYER, (OTHER, DEPLOYER), (DEPLOYER,))),
]


@pytest.mark.parametrize(("policy", "caller", "expected"), RESOLUTIONS,
                         ids=[f"{p.value}-{'deployer' if c == DEPLOYER else 'other'}" for p, c, _ in RESOLUTIONS])
def test_resolve_decides_executing_input_step_and_catalog_workspaces(policy, caller, expected):
    if expected is None:
        with pytest.raises(AccessDenied) as err:
            resolve(policy, DEPLOYER, caller)
        # The same words as for a missing workflow: a caller cannot probe for private ones.
        assert str(err.value) == NOT_FOUND_OR_NOT_YOURS
        return
    executing, inputs, steps = expected
    got = resolve(policy, DEPLOYER, caller)
    assert (got.calling, got.deploying) == (caller, DEPLOYER)
    assert got.executing == executing
    assert got.input_workspaces == inputs
    assert got.step_workspaces == steps
    assert got.catalog_workspace == caller


def test_every_policy_and_caller_pair_is_in_the_table():
    assert {(p, c) for p, c, _ in RESOLUTIONS} == {(p, c) for p in AccessPolicy for c in (DEPLOYER, OTHER)}


def test_resolve_takes_policy_strings_and_refuses_unknown_ones_and_bad_names():
    assert resolve("user-service", DEPLOYER, OTHER).executing == DEPLOYER
    with pytest.raises(ValueError):
        resolve("everyone", DEPLOYER, OTHER)
    with pytest.raises(ValueError, match="must be lowercase"):
        resolve(AccessPolicy.PUBLIC, DEPLOYER, "Lab-B")


def test_only_the_deploying_workspace_may_manage_a_workflow():
    assert can_manage(DEPLOYER, DEPLOYER)
    assert not can_manage(DEPLOYER, OTHER)


# -- calling workspace from the token


def test_calling_workspace_is_the_one_workspace_scope_among_others():
    assert calling_workspace("openid profile workspace:lab-a wes:run") == "lab-a"
    assert calling_workspace(["wes:read", "workspace:lab-b"]) == "lab-b"


@pytest.mark.parametrize(("scopes", "reason"), [
    ("openid profile", "no 'workspace:<name>' scope"),
    ("", "no 'workspace:<name>' scope"),
    ([], "no 'workspace:<name>' scope"),
    ("workspace:lab-a workspace:lab-b", "2 workspace scopes (workspace:lab-a, workspace:lab-b); exactly one"),
    ("workspace:", "scope 'workspace:': workspace name must be 3-32 characters"),
    ("workspace:Lab-A", "scope 'workspace:Lab-A': workspace name must be lowercase"),
    ("workspace:lab_a", "only lowercase letters, digits and '-'"),
    ("workspace:../root", "scope 'workspace:../root'"),
    (["workspace:lab-a\n"], "may not contain whitespace or control characters"),
])
def test_calling_workspace_refuses_tokens_without_exactly_one_good_scope(scopes, reason):
    with pytest.raises(ValueError) as err:
        calling_workspace(scopes)
    assert reason in str(err.value)


# -- deploy requests

GIT = {"git_url": "https://github.com/nf-core/rnaseq.git", "git_ref": "3.14.0"}
SCHEMA = {
    "type": "object",
    "properties": {"reads": {"type": "string"}, "samples": {"type": "array", "items": {"type": "integer"}}},
    "required": ["reads"],
    "additionalProperties": False,
}


def deploy(**changes) -> WorkflowDeploy:
    return WorkflowDeploy(**{"name": "rnaseq", "engine": "NFL", **GIT, **changes})


def test_deploy_defaults_to_private_version_1():
    spec = deploy()
    assert (spec.policy, spec.version, spec.engine, spec.parameter_schema) == (
        AccessPolicy.PRIVATE, "1", Engine.NFL, {})
    assert WorkflowDeploy(name="mapper", engine="WDL", pipeline="oci://ghcr.io/lab/charts/mapper:1.2").pipeline


@pytest.mark.parametrize(("changes", "reason"), [
    ({"name": "rn"}, "workflow name must be 3-63 characters"),
    ({"name": "r" * 64}, "workflow name must be 3-63 characters"),
    ({"name": "RNAseq"}, "workflow name must be lowercase"),
    ({"name": "9seq"}, "workflow name must start with a letter"),
    ({"name": "rna_seq"}, "only lowercase letters, digits and '-'"),
    ({"engine": "CWL"}, "Input should be 'NFL' or 'WDL'"),
    ({"version": ""}, "must be 1-32 letters"),
    ({"version": "v" * 33}, "must be 1-32 letters"),
    ({"version": "1.0..2"}, "may not contain '..'"),
    ({"version": "1 0"}, "must be 1-32 letters"),
    ({"version": "1\n"}, "must be 1-32 letters"),
    ({"name": "rnaseq\n"}, "workflow name may not contain whitespace"),
    ({"git_url": "http://github.com/x/y.git"}, "must use https, not 'http'"),
    ({"git_url": "git@github.com:x/y.git"}, "must use https"),
    ({"git_url": "file:///etc/passwd"}, "must use https, not 'file'"),
    ({"git_url": "https://github.com/x/../y.git"}, "may not contain '..'"),
    ({"git_url": "https://github.com/x/ y.git"}, "may not contain whitespace"),
    ({"git_url": "https://github.com/" + "x" * 2048}, "at most 2048 characters"),
    ({"git_url": "https://user:token@github.com/x/y.git"}, "may not carry credentials"),
    ({"git_url": "https:///x/y.git"}, "has no host"),
    ({"git_ref": "--upload-pack"}, "is not a valid branch, tag or commit"),
    ({"git_ref": "main..dev"}, "may not contain '..'"),
    ({"git_ref": "main branch"}, "git ref must be 1-255"),
    ({"git_url": None}, "a git source needs both git_url and git_ref"),
    ({"pipeline": "nf-core/rnaseq"}, "not both"),
    ({"parameter_schema": {"type": "strnig"}}, "parameter_schema is not a valid JSON Schema: $.type:"),
    ({"parameter_schema": {"properties": {"a": {"minLength": -1}}}}, "$.properties.a.minLength"),
    ({"parameter_schema": {"properties": {"a": {"$ref": "http://169.254.169.254/latest/"}}}},
     "may only use local references ('#/...'), not 'http://169.254.169.254/latest/'"),
    ({"parameter_schema": {"$ref": "file:///etc/passwd"}}, "may only use local references"),
    ({"policy": "everyone"}, "'private', 'public' or 'user-service'"),
    ({"description": "x" * 2001}, "at most 2000 characters"),
    ({"owner": "lab-b"}, "Extra inputs are not permitted"),
])
def test_bad_deploy_requests_are_refused_naming_the_rule(changes, reason):
    with pytest.raises(ValidationError) as err:
        deploy(**changes)
    assert reason in str(err.value)


@pytest.mark.parametrize(("pipeline", "reason"), [
    ("nf-core/../rnaseq", "may not contain '..'"),
    ("nf core", "without whitespace"),
    ("-rf", "may not start with '-'"),
    ("", "must be 1-512"),
])
def test_bad_pipeline_references_are_refused(pipeline, reason):
    with pytest.raises(ValidationError) as err:
        WorkflowDeploy(name="rnaseq", engine="NFL", pipeline=pipeline)
    assert reason in str(err.value)


def test_a_deploy_needs_a_source():
    with pytest.raises(ValidationError, match="a source is required"):
        WorkflowDeploy(name="rnaseq", engine="NFL")


def test_check_params_accepts_valid_params_and_names_the_first_bad_path():
    spec = deploy(parameter_schema=SCHEMA)
    spec.check_params({"reads": "s3://lab-a/reads/", "samples": [1, 2]})
    with pytest.raises(ValueError, match=r"params \$.samples\[1\]: 'two' is not of type 'integer'"):
        spec.check_params({"reads": "x", "samples": [1, "two"]})
    with pytest.raises(ValueError, match=r"params \$: 'reads' is a required property"):
        spec.check_params({})
    with pytest.raises(ValueError, match="Additional properties are not allowed"):
        spec.check_params({"reads": "x", "executor": "local"})


def test_check_params_follows_local_references_and_never_fetches_others():
    local = {"$defs": {"path": {"type": "string", "pattern": "^s3://"}},
             "properties": {"reads": {"$ref": "#/$defs/path"}}}
    spec = deploy(parameter_schema=local)
    spec.check_params({"reads": "s3://lab-a/reads/"})
    with pytest.raises(ValueError, match=r"params \$.reads: 'http://x' does not match"):
        spec.check_params({"reads": "http://x"})
    # Past the deploy-time check (model_construct skips it): still no fetch, a clear refusal.
    remote = WorkflowDeploy.model_construct(parameter_schema={"properties": {"a": {"$ref": "http://127.0.0.1:9/s"}}})
    with pytest.raises(ValueError, match="unresolvable reference"):
        remote.check_params({"a": 1})


def test_an_empty_schema_accepts_any_params():
    deploy().check_params({"anything": [1, {"goes": True}]})


# -- workflow_url


@pytest.mark.parametrize(("url", "expected"), [
    ("hatchway://lab-a/rnaseq", ("lab-a", "rnaseq", None)),
    ("hatchway://lab-a/rnaseq@3.14.0", ("lab-a", "rnaseq", "3.14.0")),
    ("HATCHWAY://lab-a/rnaseq@v2", ("lab-a", "rnaseq", "v2")),
    ("lab-a/rnaseq", ("lab-a", "rnaseq", None)),
    ("lab-a/rnaseq@1", ("lab-a", "rnaseq", "1")),
])
def test_workflow_urls_name_a_deployed_workflow(url, expected):
    assert parse_workflow_url(url) == expected


@pytest.mark.parametrize(("url", "reason"), [
    ("hatchway://lab-a/../lab-b/rnaseq", "may not contain '..'"),
    ("lab-a/rnaseq@1..2", "may not contain '..'"),
    ("https://github.com/nf-core/rnaseq", "scheme 'https' is not allowed"),
    ("http://lab-a/rnaseq", "scheme 'http' is not allowed"),
    ("file:///etc/passwd", "scheme 'file' is not allowed"),
    ("ftp://lab-a/rnaseq", "scheme 'ftp' is not allowed"),
    ("s3://lab-a/rnaseq", "scheme 's3' is not allowed"),
    ("hatchway:lab-a/rnaseq", "must be hatchway://"),
    ("hatchway://lab-a/rnaseq/main.nf", "extra path segments"),
    ("lab-a/rnaseq/", "extra path segments"),
    ("/lab-a/rnaseq", "extra path segments"),
    ("hatchway:///rnaseq", "empty part"),
    ("hatchway://lab-a/", "empty part"),
    ("rnaseq", "empty part"),
    ("", "empty part"),
    ("lab-a/rnaseq@", "empty workflow name or version"),
    ("lab-a/@1", "empty workflow name or version"),
    ("lab-a/rnaseq@1@2", "must be 1-32 letters"),
    ("Lab-A/rnaseq", "workspace name must be lowercase"),
    ("lab-a/rna_seq", "workflow name may contain only"),
    ("lab-a/rnaseq?ref=main", "workflow name may contain only"),
    ("lab-a/%2e%2e", "workflow name may contain only"),
    ("lab-a/rnaseq@1\n", "may not contain whitespace or control characters"),
    ("lab-a\n/rnaseq", "may not contain whitespace or control characters"),
    ("lab-a/rna seq", "may not contain whitespace or control characters"),
    ("lab-a/" + "r" * 2100, "longer than 2048"),
])
def test_other_workflow_urls_are_refused_with_a_reason(url, reason):
    with pytest.raises(ValueError) as err:
        parse_workflow_url(url)
    assert reason in str(err.value)
