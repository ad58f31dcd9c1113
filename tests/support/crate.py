"""Check a Workflow Run RO-Crate against the profile's requirements
(``tests/contracts/workflow-run-crate-0.6.md``), reading it with ``rocrate``'s own reader."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

PROCESS_RUN = "https://w3id.org/ro/wfrun/process/0.6"
WORKFLOW_RUN = "https://w3id.org/ro/wfrun/workflow/0.6"
WORKFLOW_RO_CRATE = "https://w3id.org/workflowhub/workflow-ro-crate/1.1"
COMPLETED = "http://schema.org/CompletedActionStatus"
FAILED = "http://schema.org/FailedActionStatus"


def ids(value: Any) -> list[str]:
    """The ``@id``s a property refers to (one or many, entities or plain references)."""
    values = value if isinstance(value, list) else [value] if value is not None else []
    return [v.id if hasattr(v, "id") else v["@id"] if isinstance(v, dict) else v for v in values]


def _types(entity: Any) -> set[str]:
    kind = entity.type
    return set(kind if isinstance(kind, list) else [kind])


def read_checked(metadata: dict[str, Any]) -> tuple[Any, Any, Any]:
    """Read ``ro-crate-metadata.json`` with ``rocrate.ROCrate`` and check every requirement.

    :return: ``(crate, main workflow, CreateAction)``; raises AssertionError naming the rule broken.
    """
    from rocrate.rocrate import ROCrate

    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "ro-crate-metadata.json").write_text(json.dumps(metadata))
        crate = ROCrate(folder)
    root = crate.root_dataset
    profiles = set(ids(root.get("conformsTo")))
    assert WORKFLOW_RUN in profiles, f"root conformsTo {profiles} lacks Workflow Run Crate (MUST)"
    assert {PROCESS_RUN, WORKFLOW_RO_CRATE} <= profiles, f"root conformsTo {profiles} (SHOULD)"
    workflow = crate.mainEntity
    assert workflow is not None, "no mainEntity (MUST)"
    assert {"File", "SoftwareSourceCode", "ComputationalWorkflow"} <= _types(workflow), _types(workflow)
    language = workflow.get("programmingLanguage")
    assert language is not None and "ComputerLanguage" in _types(language), "programmingLanguage (MUST)"
    actions = [e for e in crate.get_entities() if "CreateAction" in _types(e)]
    assert len(actions) == 1, f"one CreateAction per run, got {len(actions)}"
    action = actions[0]
    assert ids(action.get("instrument")) == [workflow.id], "CreateAction instrument is the main workflow (MUST)"
    assert action.id in ids(root.get("mentions")), "root mentions the run (SHOULD)"
    assert action.get("name") and action.get("endTime"), "CreateAction name and endTime (SHOULD)"
    agent = action.get("agent")
    assert agent is not None and _types(agent) & {"Person", "Organization"}, "agent (SHOULD)"
    status = ids(action.get("actionStatus"))[0]
    assert status in (COMPLETED, FAILED)
    assert (action.get("error") is not None) == (status == FAILED), "error only with FailedActionStatus"
    for formal in (e for e in crate.get_entities() if "FormalParameter" in _types(e)):
        assert formal.get("additionalType") and formal.get("name"), f"FormalParameter {formal.id} (MUST/SHOULD)"
    for used in ids(action.get("object")) + ids(action.get("result")):
        entity = crate.get(used)
        assert entity is not None, f"{used} is referenced but not described"
    organize = [e for e in crate.get_entities() if "OrganizeAction" in _types(e)]
    assert len(organize) == 1 and ids(organize[0].get("result")) == [action.id]
    assert "SoftwareApplication" in _types(organize[0].get("instrument"))
    return crate, workflow, action


def properties(crate: Any, action: Any) -> dict[str, Any]:
    """The run's ``additionalProperty`` values by name."""
    return {p.get("name"): p.get("value") for p in (crate.get(i) for i in ids(action.get("additionalProperty")))}
