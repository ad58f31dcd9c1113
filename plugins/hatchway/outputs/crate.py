"""A Workflow Run RO-Crate for every finished run: what ran, on what, with what, and what came out.

Built with the ``rocrate`` package (RO-Crate 1.3) to the Workflow Run Crate profile 0.6
(``tests/contracts/workflow-run-crate-0.6.md`` lists what a crate must and should hold):

- the root conforms to Process Run Crate 0.6, Workflow Run Crate 0.6 and Workflow RO-Crate 1.1,
  and ``mentions`` the run;
- its ``mainEntity`` is the workflow as deployed (``File``, ``SoftwareSourceCode``,
  ``ComputationalWorkflow``): the repository, the ref asked for and the commit that ran, or
  the pipeline and its revision, in its language (``ComputerLanguage``);
- one ``CreateAction`` for the run: ``instrument`` the workflow, ``object`` the inputs (files
  with size and sha256 where known) and the parameters (``PropertyValue``), ``result`` every
  output with size and sha256 (the STAC harvest's checksums), start and end, ``actionStatus``
  and, for a failed run, ``error``; the calling workspace as ``agent``; the executing and
  deploying workspaces, the end state and the usage as ``additionalProperty``;
- an ``OrganizeAction`` of the engine (``SoftwareApplication`` with its version) whose result is
  the run, as the Provenance Run Crate profile names the engine.

The crate is metadata only (``ro-crate-metadata.json``): outputs stay where they are and are
referenced by their ``s3://`` URLs.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

CRATE_FILE = "ro-crate-metadata.json"
PROCESS_RUN = "https://w3id.org/ro/wfrun/process/0.6"
WORKFLOW_RUN = "https://w3id.org/ro/wfrun/workflow/0.6"
WORKFLOW_RO_CRATE = "https://w3id.org/workflowhub/workflow-ro-crate/1.1"
PROFILES = {PROCESS_RUN: ("Process Run Crate", "0.6"), WORKFLOW_RUN: ("Workflow Run Crate", "0.6"),
            WORKFLOW_RO_CRATE: ("Workflow RO-Crate", "1.1")}
ENGINES = {"nextflow": ("https://www.nextflow.io/", "Nextflow"),
           "wdl": ("https://cromwell.readthedocs.io/", "Cromwell")}


@dataclass(frozen=True)
class CrateFile:
    """An input or output: its URL, size and sha256 (hex; None when not computed)."""

    url: str
    size: int | None = None
    sha256: str | None = None
    parameter: str | None = None  # the workflow parameter or output name it realizes
    media_type: str | None = None
    description: str | None = None  # where it came from, when that is not its URL


@dataclass
class RunFacts:
    """What is known of a finished run."""

    run_id: str
    workflow_name: str
    workflow_version: str
    engine: str  # "nextflow" or "wdl"
    engine_version: str | None
    source_url: str
    source_ref: str | None
    commit: str | None
    main_path: str | None
    executing: str
    calling: str | None
    deploying: str | None
    started: datetime | None
    ended: datetime
    state: str
    ok: bool
    error: str | None = None
    parameters: dict[str, Any] = field(default_factory=dict)
    inputs: list[CrateFile] = field(default_factory=list)
    outputs: list[CrateFile] = field(default_factory=list)
    usage: dict[str, Any] | None = None


def _iso(value: datetime | None) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value else None


def _value(value: Any) -> str | int | float | bool:
    return value if isinstance(value, (str, int, float, bool)) else json.dumps(value, sort_keys=True)


def build_crate(facts: RunFacts) -> dict[str, Any]:
    """The run's ``ro-crate-metadata.json`` as a dict (written and read back through ``rocrate``)."""
    from rocrate.model.contextentity import ContextEntity
    from rocrate.rocrate import ROCrate

    crate = ROCrate()
    crate.name = f"Run {facts.run_id} of {facts.workflow_name} {facts.workflow_version}"
    crate.description = (f"Workflow run {facts.run_id} executed by Hatchway in workspace {facts.executing}: "
                         f"{facts.state}.")
    crate.root_dataset["conformsTo"] = [{"@id": url} for url in PROFILES]
    for url, (name, version) in PROFILES.items():
        crate.add(ContextEntity(crate, url, properties={"@type": ["CreativeWork", "Profile"], "name": name,
                                                        "version": version}))

    workflow_id = facts.source_url.rstrip("/") + (f"/{facts.main_path}" if facts.main_path else "")
    workflow = crate.add_workflow(workflow_id, fetch_remote=False, main=True, lang=_language(crate, facts))
    workflow["name"] = facts.workflow_name
    workflow["version"] = facts.workflow_version
    workflow["codeRepository"] = facts.source_url
    workflow["description"] = (f"{facts.source_url}" + (f" at {facts.source_ref}" if facts.source_ref else "")
                               + (f", commit {facts.commit}" if facts.commit else ""))
    if facts.commit:
        workflow["identifier"] = facts.commit

    params, objects, results = [], [], []
    files = {item.parameter: item for item in facts.inputs if item.parameter}
    for name, value in sorted(facts.parameters.items()):
        formal = crate.add(ContextEntity(crate, f"#param-{name}", properties={
            "@type": "FormalParameter", "name": name, "additionalType": "File" if name in files else _data_type(value)}))
        params.append(formal)
        if name in files:  # realized by the file itself
            entity = _file(crate, files[name])
            entity["exampleOfWork"] = {"@id": formal.id}
        else:
            entity = crate.add(ContextEntity(crate, f"#pv-{name}", properties={
                "@type": "PropertyValue", "name": name, "value": _value(value), "exampleOfWork": {"@id": formal.id}}))
        objects.append(entity)
    workflow["input"] = params
    for item in facts.inputs:
        if item.parameter not in facts.parameters:
            objects.append(_file(crate, item))
    outputs_formal = []
    for item in facts.outputs:
        entity = _file(crate, item)
        if item.parameter:
            formal = crate.add(ContextEntity(crate, f"#output-{item.parameter}", properties={
                "@type": "FormalParameter", "name": item.parameter, "additionalType": "File"}))
            outputs_formal.append(formal)
            entity["exampleOfWork"] = {"@id": formal.id}
        results.append(entity)
    if outputs_formal:
        workflow["output"] = outputs_formal

    agent = crate.add(ContextEntity(crate, f"#workspace-{facts.calling or facts.executing}", properties={
        "@type": "Organization", "name": f"Hatchway workspace {facts.calling or facts.executing}"}))
    extra = [("executing_workspace", facts.executing), ("deploying_workspace", facts.deploying),
             ("calling_workspace", facts.calling), ("end_state", facts.state)]
    extra += [(f"usage.{key}", value) for key, value in sorted((facts.usage or {}).items())
              if value is not None and not isinstance(value, dict)]
    properties = [crate.add(ContextEntity(crate, f"#prop-{key}", properties={
        "@type": "PropertyValue", "name": key, "value": _value(value)})) for key, value in extra if value is not None]
    action_props: dict[str, Any] = {
        "name": f"Run {facts.run_id} of {facts.workflow_name} {facts.workflow_version}",
        "endTime": _iso(facts.ended), "agent": {"@id": agent.id},
        "actionStatus": {"@id": "http://schema.org/CompletedActionStatus" if facts.ok
                         else "http://schema.org/FailedActionStatus"},
        "additionalProperty": [{"@id": p.id} for p in properties],
    }
    if facts.started:
        action_props["startTime"] = _iso(facts.started)
    if not facts.ok:
        action_props["error"] = facts.error or f"the run ended {facts.state}"
    action = crate.add_action(workflow, identifier=f"#run-{facts.run_id}", object=objects, result=results,
                              properties=action_props)
    crate.root_dataset["mentions"] = [action]

    engine_url, engine_name = ENGINES[facts.engine]
    engine = crate.add(ContextEntity(crate, engine_url, properties={
        "@type": "SoftwareApplication", "name": engine_name, "url": engine_url,
        **({"softwareVersion": facts.engine_version} if facts.engine_version else {})}))
    crate.add(ContextEntity(crate, f"#engine-run-{facts.run_id}", properties={
        "@type": "OrganizeAction", "name": f"{engine_name} run of {facts.run_id}", "instrument": {"@id": engine.id},
        "result": {"@id": action.id}, "endTime": _iso(facts.ended)}))

    with tempfile.TemporaryDirectory(prefix="hatchway-crate-") as folder:
        crate.write(folder)
        with open(os.path.join(folder, CRATE_FILE)) as fh:
            return json.load(fh)


def _language(crate: Any, facts: RunFacts) -> Any:
    """``nextflow`` (rocrate knows it) or a ``ComputerLanguage`` entity for WDL (it does not)."""
    if facts.engine == "nextflow":
        return "nextflow"
    from rocrate.model.computerlanguage import ComputerLanguage

    return crate.add(ComputerLanguage(crate, "https://openwdl.org/", properties={
        "name": "Workflow Description Language", "alternateName": "WDL",
        "identifier": {"@id": "https://openwdl.org/"}, "url": {"@id": "https://openwdl.org/"}}))


def _data_type(value: Any) -> str:
    if isinstance(value, bool):
        return "Boolean"
    if isinstance(value, int):
        return "Integer"
    if isinstance(value, float):
        return "Float"
    if isinstance(value, str):
        return "Text"
    return "PropertyValue"


def _file(crate: Any, item: CrateFile) -> Any:
    from rocrate.model.file import File

    properties: dict[str, Any] = {"name": item.url.rsplit("/", 1)[-1] or item.url}
    if item.size is not None:
        properties["contentSize"] = str(item.size)
    if item.sha256:
        properties["sha256"] = item.sha256
    if item.media_type:
        properties["encodingFormat"] = item.media_type
    if item.description:
        properties["description"] = item.description
    return crate.add(File(crate, item.url, fetch_remote=False, properties=properties))


# -- facts from the buckets
def stac_outputs(s3: Any, bucket: str, catalog_prefix: str) -> list[CrateFile]:
    """Every output of a harvested catalog, with the size and sha256 its STAC Item records."""
    from hatchway.outputs.stac import CATALOG_FILE, SHA256_MULTIHASH

    found: list[CrateFile] = []
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=catalog_prefix)
    for obj in (o for page in pages for o in page.get("Contents", [])):
        key = obj["Key"]
        if not key.endswith(".json") or key.endswith(CATALOG_FILE) or key.endswith(CRATE_FILE):
            continue
        item = json.loads(s3.get_object(Bucket=bucket, Key=key)["Body"].read())
        if item.get("type") != "Feature":
            continue
        base = key.rsplit("/", 1)[0]
        for asset in (item.get("assets") or {}).values():
            href = asset.get("href", "")
            url = href if "://" in href else f"s3://{bucket}/{os.path.normpath(f'{base}/{href}')}"
            checksum = asset.get("file:checksum") or ""
            found.append(CrateFile(url=url, size=asset.get("file:size"), media_type=asset.get("type"),
                                   sha256=checksum[len(SHA256_MULTIHASH):] if checksum.startswith(
                                       SHA256_MULTIHASH) else None))
    return sorted(found, key=lambda f: f.url)


HASH_LIMIT = 64 << 20  # larger files get their size only: a teardown does not read gigabytes


def sha256_of(chunks: Any) -> str:
    """The hex sha256 of a stream of byte chunks."""
    import hashlib

    sha = hashlib.sha256()
    for chunk in chunks:
        sha.update(chunk)
    return sha.hexdigest()


def s3_inputs(s3: Any, parameters: dict[str, Any], *, hash_limit: int = HASH_LIMIT) -> list[CrateFile]:
    """Parameters naming ``s3://`` objects, as inputs: size, and sha256 read from the object when
    it is at most ``hash_limit`` bytes (larger inputs get their size only). Unreadable: URL only."""
    from botocore.exceptions import ClientError

    found = []
    for name, value in sorted(parameters.items()):
        if not isinstance(value, str) or not value.startswith("s3://") or value.endswith("/"):
            continue
        bucket, _, key = value[len("s3://"):].partition("/")
        try:
            head = s3.head_object(Bucket=bucket, Key=key)
        except ClientError:
            found.append(CrateFile(url=value, parameter=name))
            continue
        size = head["ContentLength"]
        digest = (sha256_of(s3.get_object(Bucket=bucket, Key=key)["Body"].iter_chunks(1 << 20))
                  if size <= hash_limit else None)
        found.append(CrateFile(url=value, size=size, sha256=digest, parameter=name))
    return found


def write_crate(s3: Any, bucket: str, prefix: str, crate: dict[str, Any]) -> str:
    """Write the crate at ``s3://bucket/<prefix>ro-crate-metadata.json`` and link it from the STAC
    catalog there, if the harvest wrote one (``rel: describedby``). :return: the crate's URL."""
    from botocore.exceptions import ClientError

    from hatchway.outputs.stac import CATALOG_FILE

    key = f"{prefix}{CRATE_FILE}"
    s3.put_object(Bucket=bucket, Key=key, Body=json.dumps(crate, indent=2).encode(),
                  ContentType="application/ld+json")
    try:
        catalog = json.loads(s3.get_object(Bucket=bucket, Key=f"{prefix}{CATALOG_FILE}")["Body"].read())
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") not in ("NoSuchKey", "404"):
            raise
        return f"s3://{bucket}/{key}"
    link = {"rel": "describedby", "href": f"./{CRATE_FILE}", "type": "application/ld+json",
            "title": "Workflow Run RO-Crate of this run"}
    links = catalog.setdefault("links", [])
    if not any(existing.get("rel") == "describedby" and existing.get("href") == link["href"] for existing in links):
        links.append(link)
        s3.put_object(Bucket=bucket, Key=f"{prefix}{CATALOG_FILE}", Body=json.dumps(catalog, indent=2).encode(),
                      ContentType="application/json")
    return f"s3://{bucket}/{key}"


def keep_crate(dag_id: str, dag_run_id: str, run_id: str, location: str, crate: dict[str, Any]) -> None:
    """Keep the crate in Hatchway's store too, for the door's ``GET /runs/{id}/ro-crate``."""
    from hatchway.store import Store

    with Store.migrated_from_env() as store:
        store.save_crate(dag_id, dag_run_id, run_id, location, crate)
