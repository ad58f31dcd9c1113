"""Cromwell tenancy rules and run conf: plain Python, no server."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from hatchway.domain.cromwell import (
    RUN_LABEL,
    WORKSPACE_LABEL,
    CromwellRunConf,
    TenancyError,
    first_failure,
    owned_by,
    submission_labels,
    submission_options,
    tenant_query,
    workflow_id,
)
from hatchway.wdl.runs import file_outputs

SOURCE = {"repo": "https://github.com/example/wdl", "ref": "v1", "path": "main.wdl"}


def test_a_submission_carries_the_reserved_workspace_label_and_the_run():
    labels = submission_labels("alice-lab", {"project": "gwas"}, run_id="r1", commit="a" * 40)
    assert labels == {"project": "gwas", WORKSPACE_LABEL: "alice-lab", RUN_LABEL: "r1", "hatchway-commit": "a" * 40}


@pytest.mark.parametrize("key", [WORKSPACE_LABEL, RUN_LABEL, "hatchway-commit"])
def test_a_caller_may_not_set_a_reserved_label(key):
    with pytest.raises(TenancyError, match=f"may not contain the key '{key}'"):
        submission_labels("alice-lab", {key: "bob-lab"})


@pytest.mark.parametrize("labels, rule", [({"Project": "x"}, "lowercase"), ({"p": ""}, "value of 1-255"),
                                          ({"p": "x" * 256}, "value of 1-255"), ({"": "x"}, "label key")])
def test_labels_follow_cromwells_rules(labels, rule):
    with pytest.raises(TenancyError, match=rule):
        submission_labels("alice-lab", labels)


def test_hog_group_is_the_workspace_and_owned_options_are_refused():
    assert submission_options("alice-lab", {"write_to_cache": False}, {"read_from_cache": True}) == {
        "write_to_cache": False, "read_from_cache": True, "hogGroup": "alice-lab"}
    for owned in ("hogGroup", "final_workflow_outputs_dir", "backend"):
        with pytest.raises(TenancyError, match=owned):
            submission_options("alice-lab", {owned: "x"})


def test_every_query_is_narrowed_to_the_workspace_and_may_not_widen():
    assert tenant_query("alice-lab", [("status", "Running"), ("label", "project:gwas")]) == [
        ("status", "Running"), ("label", "project:gwas"), ("label", f"{WORKSPACE_LABEL}:alice-lab")]
    for key in ("labelor", "excludeLabelOr", "excludeLabelAnd"):
        with pytest.raises(TenancyError, match="widen"):
            tenant_query("alice-lab", [(key, f"{WORKSPACE_LABEL}:bob-lab")])
    with pytest.raises(TenancyError, match="reserved"):
        tenant_query("alice-lab", [("label", f"{WORKSPACE_LABEL}:bob-lab")])


def test_ownership_reads_the_reserved_label_only():
    assert owned_by({WORKSPACE_LABEL: "alice-lab"}, "alice-lab")
    assert not owned_by({WORKSPACE_LABEL: "bob-lab", "owner": "alice-lab"}, "alice-lab")
    assert not owned_by({}, "alice-lab")


def test_workflow_ids_are_uuids_fixed_by_run_and_attempt():
    first = workflow_id("run-1")
    assert first == workflow_id("run-1", 1) != workflow_id("run-1", 2) != workflow_id("run-2")
    assert len(first) == 36 and first.count("-") == 4


def test_first_failure_names_the_innermost_cause():
    failures = [{"message": "Workflow failed", "causedBy": [{"message": "Job hello.say:NA:1 exited with return "
                                                             "code 3", "causedBy": []}]},
                {"message": "second", "causedBy": []}]
    assert first_failure(failures) == "Workflow failed: Job hello.say:NA:1 exited with return code 3"
    assert first_failure([]) is None


def test_the_conf_refuses_reserved_labels_owned_options_and_bad_names():
    conf = CromwellRunConf(run_id="r-1", workspace="alice-lab", source=SOURCE)
    assert conf.destination_url("data") == "s3://data/alice-lab/cromwell/r-1/"
    for bad in ({"labels": {WORKSPACE_LABEL: "bob-lab"}}, {"options": {"hogGroup": "x"}}, {"workspace": "Alice"},
                {"run_id": "../x"}, {"destination": "file:///etc"}, {"unknown": 1}):
        with pytest.raises(ValidationError):
            CromwellRunConf(**{"run_id": "r-1", "workspace": "alice-lab", "source": SOURCE, **bad})


def test_file_outputs_are_found_in_arrays_and_maps():
    outputs = {"wf.report": "s3://b/x/report.html", "wf.count": 3, "wf.shards": ["s3://b/x/a", "s3://b/x/b"],
               "wf.pair": {"left": "s3://b/x/l", "right": "text"}}
    assert sorted(file_outputs(outputs)) == [("wf.pair.left", "s3://b/x/l"), ("wf.report", "s3://b/x/report.html"),
                                             ("wf.shards[0]", "s3://b/x/a"), ("wf.shards[1]", "s3://b/x/b")]


def test_urls_in_messages_never_show_credentials():
    from hatchway.domain.wdl import shown_url

    assert shown_url("https://bob:s3cret-token@github.com/x/y.git") == "https://***@github.com/x/y.git"
    assert "s3cret" not in shown_url("https://s3cret@github.com/x")
    assert shown_url("https://github.com/x/y.git") == "https://github.com/x/y.git"


def _tasks(**states):
    names = ("fetch_source", "submit", "wait", "place_outputs", "abort", "finish")
    return {name: states.get(name) for name in names}


@pytest.mark.parametrize("dag, tasks, cromwell, expected", [
    (None, {}, None, "UNKNOWN"),
    ("queued", _tasks(), None, "QUEUED"),
    ("running", _tasks(fetch_source="success", submit="success"), "Submitted", "QUEUED"),
    ("running", _tasks(fetch_source="success", submit="success"), "Running", "RUNNING"),
    ("running", _tasks(wait="success"), "Succeeded", "RUNNING"),  # outputs being placed
    ("success", _tasks(wait="success", place_outputs="success"), "Succeeded", "COMPLETE"),
    ("failed", _tasks(wait="success", place_outputs="failed"), "Succeeded", "SYSTEM_ERROR"),
    ("failed", _tasks(wait="failed"), "Failed", "EXECUTOR_ERROR"),
    ("failed", _tasks(fetch_source="failed"), None, "EXECUTOR_ERROR"),  # the source was refused
    ("failed", _tasks(fetch_source="success", submit="failed"), None, "SYSTEM_ERROR"),
    # Cancels: marked failed, the rest skipped; the teardowns then abort the workflow.
    ("queued", _tasks(fetch_source="skipped", submit="skipped"), None, "CANCELING"),
    ("failed", _tasks(fetch_source="skipped", submit="skipped", abort="success"), None, "CANCELED"),
    ("running", _tasks(wait="failed", place_outputs="skipped"), "Running", "CANCELING"),
    ("running", _tasks(wait="failed", place_outputs="skipped"), "Aborting", "CANCELING"),
    ("success", _tasks(wait="failed", place_outputs="skipped", finish="success"), "Aborted", "CANCELED"),
    ("success", _tasks(wait="success", place_outputs="skipped", finish="success"), "Succeeded", "CANCELED"),
])
def test_a_run_reads_one_state_and_a_cancelled_run_never_reads_complete(dag, tasks, cromwell, expected):
    from hatchway.domain.cromwell_state import run_state

    assert run_state(dag_run_state=dag, tasks=tasks, cromwell_status=cromwell).value == expected
