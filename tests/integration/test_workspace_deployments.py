"""Two deployments of Hatchway in one AWS account, each with a workspace ``alice``: a purge and an
orphan sweep in one never touch the other's resources or data."""

from __future__ import annotations

from conftest import TEST_CONFIG
from hatchway.workspace.inventory import inventory
from support import run_dag, task_states

OTHER = {"bucket": "other-deployment-data", "prefix": "other"}


def _provision_alice(config: dict, set_config) -> None:
    set_config(**config)
    for dag_id, conf in (("platform_bootstrap", {}), ("workspace_provision", {"workspace": "alice",
                                                                              "owner": "alice@example.org"})):
        run = run_dag(dag_id, **conf)
        assert run.state == "success", (dag_id, task_states(run))


def _objects(aws, bucket: str) -> list[str]:
    return sorted(o["Key"] for o in aws.s3.list_objects_v2(Bucket=bucket).get("Contents", []))


def test_purge_and_orphan_sweep_leave_the_other_deployment_alone(aws, airflow_db, set_config):
    _provision_alice(OTHER, set_config)
    aws.s3.put_object(Bucket=OTHER["bucket"], Key="alice/results.txt", Body=b"the other deployment's data")
    other_resources = inventory(aws, "alice", platform="other")
    other_objects = _objects(aws, OTHER["bucket"])
    assert {r.kind for r in other_resources} >= {"vpc", "iam_user", "job_queue", "secret"}

    _provision_alice({}, set_config)
    assert inventory(aws, "alice", platform=TEST_CONFIG["prefix"])

    # In this deployment the other's alice has no record: before scoping, it was an orphan.
    sweep = run_dag("workspace_reaper", delete_orphans=True)
    assert sweep.state == "success", task_states(sweep)
    purge = run_dag("workspace_teardown", workspace="alice", purge=True)
    assert purge.state == "success", task_states(purge)

    assert inventory(aws, "alice", platform=TEST_CONFIG["prefix"]) == []
    assert inventory(aws, "alice", platform="other") == other_resources
    assert _objects(aws, OTHER["bucket"]) == other_objects
