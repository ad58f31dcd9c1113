"""The access key's secret reaches Secrets Manager and nothing else: no XCom, no log line."""

from __future__ import annotations

import json
import logging

from support import all_log_text, all_xcom_text, run_dag, task_states


def test_access_key_secret_is_in_no_xcom_and_no_log(aws, airflow_db, caplog, capfd):
    caplog.set_level(logging.INFO)
    assert run_dag("platform_bootstrap").state == "success"
    run = run_dag("workspace_provision", workspace="alice", owner="alice@example.org")
    assert run.state == "success", task_states(run)
    stored = json.loads(aws.secrets.get_secret_value(
        SecretId="hatchway/workspaces/alice/aws-access-key")["SecretString"])
    secret = stored["aws_secret_access_key"]
    assert len(secret) >= 30

    assert all_xcom_text(), "no XCom rows were read: the check would pass vacuously"
    assert secret not in all_xcom_text()
    out, err = capfd.readouterr()
    assert "ensure_access_key" in out + err + caplog.text, "task output was not captured"
    for text in (out, err, caplog.text, all_log_text(airflow_db)):
        assert secret not in text
