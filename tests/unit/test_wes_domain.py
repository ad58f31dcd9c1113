"""The WES side of the domain: state mapping, the run form, the executing workspace's context."""

from __future__ import annotations

import json

import pytest

from hatchway.domain.wes import (
    MAX_PARAMS_BYTES,
    ExecutingContext,
    RunForm,
    WesState,
    executing_context,
    nextflow_config,
    with_cost_center,
    wes_state,
)

MAIN = ("prepare", "launch", "wait_for_workflow", "harvest_outputs")
ALL = (*MAIN, "stop_workflow", "clean_work")


def tis(*states: str | None) -> dict[str, str | None]:
    return dict(zip(ALL, states))


@pytest.mark.parametrize(("dag_run", "tasks", "cancel", "expected"), [
    (None, {}, False, WesState.QUEUED),
    ("queued", tis(None, None, None, None, None, None), False, WesState.QUEUED),
    ("running", tis("running", None, None, None, None, None), False, WesState.INITIALIZING),
    ("running", tis("success", "queued", None, None, None, None), False, WesState.INITIALIZING),
    ("running", tis("success", "success", "deferred", None, None, None), False, WesState.RUNNING),
    ("running", tis("success", "success", "up_for_retry", None, None, None), False, WesState.RUNNING),
    ("running", tis("success", "success", "success", "running", None, None), False, WesState.RUNNING),
    ("success", tis(*["success"] * 6), False, WesState.COMPLETE),
    # the workflow failed (Seqera FAILED, a timeout): the executor's error
    ("running", tis("success", "success", "failed", "upstream_failed", "running", None), False,
     WesState.EXECUTOR_ERROR),
    ("failed", tis("success", "success", "failed", "upstream_failed", "success", "success"), False,
     WesState.EXECUTOR_ERROR),
    # anything else failed: the system's
    ("failed", tis("success", "failed", "upstream_failed", "upstream_failed", "success", "success"), False,
     WesState.SYSTEM_ERROR),
    ("failed", tis("success", "success", "success", "failed", "success", "success"), False, WesState.SYSTEM_ERROR),
    ("success", tis("success", "success", "success", "skipped", "success", "success"), False, WesState.SYSTEM_ERROR),
    # a cancel: CANCELING until the run and its teardowns ended, then CANCELED, whatever Airflow says
    ("running", tis("success", "success", "failed", "skipped", "running", None), True, WesState.CANCELING),
    ("queued", tis("skipped", "skipped", "skipped", "skipped", None, None), True, WesState.CANCELING),
    ("success", tis("success", "success", "failed", "skipped", "success", "success"), True, WesState.CANCELED),
    ("failed", tis("success", "success", "failed", "skipped", "success", "failed"), True, WesState.CANCELED),
    ("success", tis(*["success"] * 6), True, WesState.CANCELED),
])
def test_wes_state(dag_run, tasks, cancel, expected):
    assert wes_state(dag_run_state=dag_run, tasks=tasks, cancel_requested=cancel) is expected


def test_terminal_states_are_the_four_final_ones():
    assert {s for s in WesState if s.terminal} == {WesState.COMPLETE, WesState.EXECUTOR_ERROR,
                                                   WesState.SYSTEM_ERROR, WesState.CANCELED}


def test_run_form_decodes_string_fields_as_clients_send_them():
    form = RunForm.from_form({"workflow_url": "hatchway://a/w", "workflow_type": "NFL",
                              "workflow_params": json.dumps({"n": 1}), "tags": json.dumps({"k": "v"}),
                              "workflow_engine_parameters": json.dumps({"-resume": True})})
    assert form.workflow_params == {"n": 1} and form.tags == {"k": "v"}
    assert form.workflow_engine_parameters == {"-resume": "true"}  # values reach the engine as strings


@pytest.mark.parametrize(("fields", "reason"), [
    ({"workflow_params": "x" * (MAX_PARAMS_BYTES + 1)}, "at most"),
    ({"workflow_params": "{broken"}, "not valid JSON"),
    ({"workflow_params": "[1, 2]"}, "JSON object"),
    ({"tags": json.dumps({"bad key!": "v"})}, "tag key"),
    ({"tags": json.dumps({f"k{i}": "v" for i in range(51)})}, "at most 50"),
])
def test_run_form_refuses_with_a_reason(fields, reason):
    with pytest.raises(ValueError, match=reason):
        RunForm.from_form({"workflow_url": "hatchway://a/w", "workflow_type": "NFL", **fields})


def test_executing_context_uses_the_workspace_lifecycles_names():
    own = executing_context(prefix="hw", queue_mode="per_user", cost_tag_key="cost", executing="alice",
                            owner="alice@example.org", run_id="r1", calling="bob")
    assert (own.namespace, own.job_role, own.job_queue, own.share_identifier) == (
        "hw-alice", "hw-alice-jobs", "hw-alice-queue", None)
    # No cost centre known: no cost tag, never the workspace's name.
    assert own.tags == {"hatchway:workspace": "alice", "hatchway:owner": "alice@example.org",
                        "hatchway:platform": "hw", "hatchway:wes-run": "r1", "hatchway:calling-workspace": "bob"}
    costed = executing_context(prefix="hw", queue_mode="per_user", cost_tag_key="cost", executing="alice",
                               owner="alice@example.org", run_id="r1", calling="bob", cost_center="cc-42")
    assert costed.tags["cost"] == "cc-42"
    shared = executing_context(prefix="hw", queue_mode="shared", cost_tag_key="cost", executing="alice",
                               owner="alice@example.org", run_id="r1", calling="alice")
    assert shared.job_queue == "hw-shared-queue" and shared.share_identifier.startswith("alice")


def test_the_cost_tag_is_the_provisioned_cost_centre_or_absent():
    context = ExecutingContext(namespace="hw-a", job_role="hw-a-jobs", job_queue="hw-a-queue",
                               tags={"hatchway:workspace": "alice", "cost": "alice"})
    assert with_cost_center(context, "cost", "cc-42").tags == {"hatchway:workspace": "alice", "cost": "cc-42"}
    assert with_cost_center(context, "cost", None).tags == {"hatchway:workspace": "alice"}
    assert context.tags["cost"] == "alice"  # the original is not changed


def test_nextflow_config_pins_role_queue_namespace_and_labels_with_quotes_escaped():
    context = ExecutingContext(namespace="hw-a", job_role="hw-a-jobs", job_queue="hw-a-queue",
                               share_identifier="a1234", tags={"hatchway:workspace": "a", "note": "it's"})
    text = nextflow_config(context, "arn:aws:iam::123456789012:role/hatchway/hw-a-jobs")
    assert "aws.batch.jobRole = 'arn:aws:iam::123456789012:role/hatchway/hw-a-jobs'" in text
    assert "process.queue = 'hw-a-queue'" in text and "k8s.namespace = 'hw-a'" in text
    assert "process.resourceLabels = ['hatchway:workspace': 'a', 'note': 'it\\'s']" in text
    assert "aws.batch.shareIdentifier = 'a1234'" in text
