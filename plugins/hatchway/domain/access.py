"""Who may run a deployed workflow, and on whose data: the workspace rules of the WES runner.

A workflow is deployed by one workspace and called by another (or the same). Its access
policy decides three things for every run, all in :func:`resolve`:

- which workspace *executes* it (whose compute, queue and credentials the steps get);
- whose data its *inputs* may come from, and whose data its *steps* may see;
- where its outputs are catalogued: always the calling workspace, which asked for them.

The calling workspace always comes from the caller's token (:func:`calling_workspace`),
never from a field of the request: a request field is the caller's claim, the token is
the identity provider's.

Plain Python: no Airflow, no SQLAlchemy, no cloud SDK.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Any
from urllib.parse import urlsplit

import referencing
from jsonschema import exceptions as schema_errors
from jsonschema import validators
from referencing.exceptions import Unresolvable
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from hatchway.domain import names

WORKFLOW_MIN, WORKFLOW_MAX = 3, 63
URL_MAX = 2048
SCOPE_PREFIX = "workspace:"
WORKFLOW_SCHEME = "hatchway"

# One message for "does not exist" and "exists but is private to someone else", so a
# caller cannot probe for other workspaces' private workflows: both become a 404.
NOT_FOUND_OR_NOT_YOURS = "workflow not found or not yours"

_VERSION = re.compile(r"^[A-Za-z0-9._-]{1,32}$")
# Branch, tag or commit: what `git check-ref-format` accepts, narrowed to plain characters.
_GIT_REF = re.compile(r"^[A-Za-z0-9._/-]{1,255}$")
# A Seqera pipeline ("nf-core/rnaseq", a launchpad name) or a chart ("oci://host/repo/chart:1.2").
_PIPELINE = re.compile(r"^[A-Za-z0-9._:/@+-]{1,512}$")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
_REF_KEYWORDS = ("$ref", "$dynamicRef", "$recursiveRef")


class AccessPolicy(str, Enum):
    """How a deployed workflow may be called.

    ``private``: only the deploying workspace may call it, and it runs there.
    ``public``: anyone may call it; it runs in the calling workspace, on the caller's data.
    ``user-service``: anyone may call it; it runs in the deploying workspace, takes inputs
    from the caller's and the deployer's data, but its steps see only the deployer's data.
    """

    PRIVATE = "private"
    PUBLIC = "public"
    USER_SERVICE = "user-service"


class Engine(str, Enum):
    NFL = "NFL"
    WDL = "WDL"


class AccessDenied(Exception):
    """The caller may not run this workflow. Callers answer 404: the message never says
    whether a private workflow exists."""


@dataclass(frozen=True)
class Resolution:
    """The workspaces one run involves.

    :param calling: the workspace of the token that asked for the run.
    :param deploying: the workspace that deployed the workflow.
    :param executing: the workspace whose compute and credentials run the steps.
    :param input_workspaces: workspaces whose data the run's inputs may come from.
    :param step_workspaces: workspaces whose data the steps may read.
    :param catalog_workspace: where the outputs are harvested; always ``calling``.
    """

    calling: str
    deploying: str
    executing: str
    input_workspaces: tuple[str, ...]
    step_workspaces: tuple[str, ...]
    catalog_workspace: str


def resolve(policy: AccessPolicy | str, deploying: str, calling: str) -> Resolution:
    """Decide where a run executes and whose data it may touch.

    :param policy: the workflow's access policy.
    :param deploying: the workspace that deployed the workflow.
    :param calling: the caller's workspace, taken from the token (:func:`calling_workspace`),
        never from a request field.
    :raises AccessDenied: when a private workflow is called from another workspace.
    :raises ValueError: on an unknown policy or a bad workspace name.
    """
    policy = AccessPolicy(policy)
    _workspace_name(deploying)
    _workspace_name(calling)
    if policy is AccessPolicy.PRIVATE:
        if calling != deploying:
            raise AccessDenied(NOT_FOUND_OR_NOT_YOURS)
        executing, inputs, steps = deploying, (deploying,), (deploying,)
    elif policy is AccessPolicy.PUBLIC:
        # The caller brings the data and pays for the compute: the deployer only lent the recipe.
        executing, inputs, steps = calling, (calling,), (calling,)
    else:
        # The deployer runs a service on its own data; the caller may hand it inputs, but
        # the steps never see the caller's workspace, so a service cannot browse its users.
        executing, steps = deploying, (deploying,)
        inputs = (calling,) if calling == deploying else (calling, deploying)
    return Resolution(
        calling=calling,
        deploying=deploying,
        executing=executing,
        input_workspaces=inputs,
        step_workspaces=steps,
        catalog_workspace=calling,
    )


def can_manage(deploying: str, caller: str) -> bool:
    """Only the deploying workspace may change, re-publish or remove a workflow."""
    return caller == deploying


class ScopeError(ValueError):
    """A token's scopes do not name exactly one valid workspace; ``reason`` is the short form."""

    reason = "bad workspace scope"


class NoWorkspaceScope(ScopeError):
    reason = "no workspace scope"


class ManyWorkspaceScopes(ScopeError):
    reason = "more than one workspace scope"


def calling_workspace(scopes: str | Iterable[str]) -> str:
    """The caller's workspace, from the token's OAuth scopes.

    :param scopes: the ``scope`` claim (space-separated) or a list of scopes.
    :return: the name in the token's one ``workspace:<name>`` scope.
    :raises ValueError: when there is no such scope, more than one, or a bad name.
    """
    items = scopes.split() if isinstance(scopes, str) else [s for s in scopes]
    claimed = sorted({s[len(SCOPE_PREFIX):] for s in items if s.startswith(SCOPE_PREFIX)})
    if not claimed:
        raise NoWorkspaceScope(f"the token has no '{SCOPE_PREFIX}<name>' scope: it names no workspace to act for")
    if len(claimed) > 1:
        # Picking one would let a token act for a workspace its holder did not choose.
        listed = ", ".join(SCOPE_PREFIX + c for c in claimed)
        raise ManyWorkspaceScopes(f"the token has {len(claimed)} workspace scopes ({listed}); exactly one is required")
    try:
        return _workspace_name(claimed[0])
    except ValueError as err:
        raise ScopeError(f"scope '{SCOPE_PREFIX}{claimed[0]}': {err}") from None


def _no_blanks(value: str, what: str) -> str:
    # The names.py patterns end in '$', which also matches before a trailing newline:
    # "lab-a\n" would pass them. Tokens and URLs come from outside, so refuse blanks first.
    if any(c.isspace() or not c.isprintable() for c in value):
        raise ValueError(f"{what} may not contain whitespace or control characters")
    return value


def _workspace_name(value: str) -> str:
    return names.check_workspace_name(_no_blanks(value, "workspace name"))


def check_workflow_name(value: str) -> str:
    """Workflow names: 3-63 lowercase letters, digits and single '-', starting with a letter
    (a DNS-1123 label, as they end up in Kubernetes release and job names)."""
    return names._dns_style(_no_blanks(value, "workflow name"), "workflow name", WORKFLOW_MIN, WORKFLOW_MAX)


def check_version(value: str) -> str:
    """Workflow versions: 1-32 letters, digits, '.', '_' or '-', no '..'."""
    if not _VERSION.fullmatch(value):
        raise ValueError(f"version {value!r} must be 1-32 letters, digits, '.', '_' or '-'")
    if ".." in value:
        raise ValueError(f"version {value!r} may not contain '..'")
    return value


def _no_dot_dot(value: str, what: str) -> None:
    if ".." in value:
        raise ValueError(f"{what} may not contain '..'")


def check_git_url(value: str) -> str:
    """An https URL of a git repository, without credentials, whitespace or '..'."""
    _no_dot_dot(value, "git URL")
    _no_blanks(value, "git URL")
    if len(value) > URL_MAX:
        raise ValueError(f"git URL must be at most {URL_MAX} characters")
    parts = urlsplit(value)
    if parts.scheme != "https":
        # ssh, git:// and file:// would reach hosts or paths the platform does not allow.
        raise ValueError(f"git URL must use https, not {parts.scheme or 'no scheme'!r}")
    if not parts.hostname:
        raise ValueError("git URL has no host")
    if parts.username or parts.password:
        # The URL is stored and shown to callers of a public workflow: no secrets in it.
        raise ValueError("git URL may not carry credentials")
    return value


def check_git_ref(value: str) -> str:
    """A branch, tag or commit: letters, digits and . _ / -, not starting with '-' or '/'."""
    _no_dot_dot(value, "git ref")
    if not _GIT_REF.fullmatch(value):
        raise ValueError("git ref must be 1-255 letters, digits, '.', '_', '/' or '-'")
    if value[0] in "-/" or value.endswith(("/", ".", ".lock")) or "//" in value:
        # A leading '-' would be read by git as an option.
        raise ValueError(f"git ref {value!r} is not a valid branch, tag or commit")
    return value


def check_pipeline(value: str) -> str:
    """A Seqera pipeline or chart reference: no whitespace, no '..', not starting with '-'."""
    _no_dot_dot(value, "pipeline")
    if not _PIPELINE.fullmatch(value):
        raise ValueError("pipeline must be 1-512 letters, digits or . _ : / @ + -, without whitespace")
    if value[0] == "-":
        raise ValueError("pipeline may not start with '-'")
    return value


def _remote_refs(node: Any) -> Iterable[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key in _REF_KEYWORDS and isinstance(value, str) and not value.startswith("#"):
                yield value
            else:
                yield from _remote_refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _remote_refs(item)


def check_parameter_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """:raises ValueError: naming the problem, when ``schema`` is not a valid JSON Schema
        or refers to anything outside itself."""
    try:
        validators.validator_for(schema).check_schema(schema)
    except schema_errors.SchemaError as err:
        where = err.json_path if err.absolute_path else "the schema"
        raise ValueError(f"parameter_schema is not a valid JSON Schema: {where}: {err.message}") from None
    for ref in _remote_refs(schema):
        # jsonschema would fetch it with urlopen when validating params: a caller could make
        # the API server request any URL (cloud metadata endpoints included).
        raise ValueError(f"parameter_schema may only use local references ('#/...'), not {ref!r}")
    return schema


class WorkflowDeploy(BaseModel):
    """A request to deploy (or redeploy) a workflow in the caller's workspace.

    The source is either a git repository (``git_url`` and ``git_ref``) or a ``pipeline``
    reference known to the engine (a Seqera pipeline or a chart), never both.

    :param name: workflow name, unique in the deploying workspace.
    :param engine: the workflow language (``NFL`` for Nextflow, ``WDL``).
    :param version: the version callers may pin (``name@version``).
    :param git_url: https URL of the repository holding the workflow.
    :param git_ref: branch, tag or commit of ``git_url``.
    :param pipeline: a Seqera pipeline or chart reference.
    :param parameter_schema: JSON Schema the run parameters must satisfy.
    :param policy: who may call it (:class:`AccessPolicy`).
    :param description: free text, at most 2000 characters.
    """

    model_config = ConfigDict(extra="forbid")

    name: str
    engine: Engine
    version: str = "1"
    git_url: str | None = None
    git_ref: str | None = None
    pipeline: str | None = None
    parameter_schema: dict[str, Any] = Field(default_factory=dict)
    policy: AccessPolicy = AccessPolicy.PRIVATE
    description: str = Field("", max_length=2000)

    _name_rule = field_validator("name")(lambda cls, v: check_workflow_name(v))
    _version_rule = field_validator("version")(lambda cls, v: check_version(v))
    _git_url_rule = field_validator("git_url")(lambda cls, v: None if v is None else check_git_url(v))
    _git_ref_rule = field_validator("git_ref")(lambda cls, v: None if v is None else check_git_ref(v))
    _pipeline_rule = field_validator("pipeline")(lambda cls, v: None if v is None else check_pipeline(v))
    _schema_rule = field_validator("parameter_schema")(lambda cls, v: check_parameter_schema(v))

    @model_validator(mode="after")
    def _one_source(self) -> WorkflowDeploy:
        git = self.git_url is not None or self.git_ref is not None
        if git and self.pipeline is not None:
            raise ValueError("give either git_url and git_ref, or pipeline, not both")
        if not git and self.pipeline is None:
            raise ValueError("a source is required: git_url and git_ref, or pipeline")
        if git and (self.git_url is None or self.git_ref is None):
            raise ValueError("a git source needs both git_url and git_ref")
        return self

    def check_params(self, params: dict[str, Any]) -> None:
        """Validate run parameters against ``parameter_schema``.

        :raises ValueError: with the path and message of the first error.
        """
        cls = validators.validator_for(self.parameter_schema)
        # An empty registry: references resolve within the schema or not at all, never over
        # the network (jsonschema's default still fetches remote ones).
        validator = cls(self.parameter_schema, format_checker=cls.FORMAT_CHECKER, registry=referencing.Registry())
        try:
            # Sorted by path, so the same bad params always give the same message.
            errors = sorted(validator.iter_errors(params), key=lambda e: [str(p) for p in e.absolute_path])
        except Unresolvable as err:
            raise ValueError(f"parameter_schema has an unresolvable reference: {err}") from None
        if errors:
            raise ValueError(f"params {errors[0].json_path}: {errors[0].message}")


def parse_workflow_url(url: str) -> tuple[str, str, str | None]:
    """Read a WES ``workflow_url`` that names a deployed workflow.

    Accepted: ``hatchway://<deploying-workspace>/<workflow-name>[@<version>]`` or the
    relative ``<deploying-workspace>/<workflow-name>[@<version>]``. Nothing else: the
    runner never fetches a workflow from a URL the caller chose.

    :return: (deploying workspace, workflow name, version or None).
    :raises ValueError: saying why the URL is refused.
    """
    if len(url) > URL_MAX:
        raise ValueError(f"workflow_url is longer than {URL_MAX} characters")
    if ".." in url:
        raise ValueError("workflow_url may not contain '..'")
    _no_blanks(url, "workflow_url")
    scheme = _SCHEME.match(url)
    if scheme:
        if scheme.group(1).lower() != WORKFLOW_SCHEME:
            raise ValueError(f"workflow_url scheme {scheme.group(1)!r} is not allowed: "
                             f"use {WORKFLOW_SCHEME}://<workspace>/<workflow>[@version]")
        rest = url[scheme.end():]
        if not rest.startswith("//"):
            raise ValueError(f"workflow_url must be {WORKFLOW_SCHEME}://<workspace>/<workflow>[@version]")
        rest = rest[2:]
    else:
        rest = url
    parts = rest.split("/")
    if len(parts) > 2:
        raise ValueError("workflow_url has extra path segments: expected <workspace>/<workflow>[@version]")
    if len(parts) < 2 or not all(parts):
        raise ValueError("workflow_url has an empty part: expected <workspace>/<workflow>[@version]")
    workspace, name = parts
    version = None
    if "@" in name:
        name, version = name.split("@", 1)
        if not name or not version:
            raise ValueError("workflow_url has an empty workflow name or version around '@'")
        check_version(version)
    return _workspace_name(workspace), check_workflow_name(name), version
