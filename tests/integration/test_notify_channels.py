"""Notices sent for real: SES on its own moto server (read back from ``/moto-api/data.json``),
SMTP to a local receiver, webhooks to a local HTTP receiver, Kafka on the mock cluster.

The webhook retries 429/5xx answers, timeouts and connection errors (``webhook_attempts``
tries, jittered backoff); when the tries run out the failure is logged and :func:`dispatch`
returns without that channel, never raising. SES stays on a moto server of its own: once a
Batch job exists, ``data.json`` answers 500.
"""

from __future__ import annotations

import json
import logging
import time
import uuid

import boto3
import pytest
import requests

from hatchway.domain.notify import Notice, NotifySettings
from hatchway.notifiers.channels import dispatch
from hatchway.notifiers.notice import NoticeNotifier
from hatchway_dev.endpoints import MotoServer
from support.notify import SENDER, SmtpReceiver, WebhookReceiver, html_of, sent_mail

LAST_LINE = "ERROR: SCORE step ran out of memory (exit 137)"


def failure_notice(workspace: str = "alice", **fields) -> Notice:
    return Notice(**{"kind": "wes_run", "workspace": workspace, "run_id": f"run-{uuid.uuid4().hex[:8]}",
                     "state": "EXECUTOR_ERROR", "ok": False,
                     "details": {"image": "quay.io/hatchway/pgsc_calc:2.0", "duration": 95,
                                 "reason": "the workflow failed"},
                     "log_tail": [f"[task {i}] running" for i in range(30)] + [LAST_LINE], **fields})


def success_notice(workspace: str = "alice") -> Notice:
    return Notice(kind="wes_run", workspace=workspace, run_id=f"run-{uuid.uuid4().hex[:8]}", state="COMPLETE",
                  ok=True, details={"outputs": {"scores": "s3://bucket/alice/scores.txt"}})


def use_settings(monkeypatch, **config) -> dict:
    """The Airflow Variable ``hatchway_notify_config`` for this test."""
    monkeypatch.setenv("AIRFLOW_VAR_HATCHWAY_NOTIFY_CONFIG", json.dumps(config))
    return config


# -- SES on a moto server of its own -------------------------------------------------------------
@pytest.fixture(scope="module")
def ses_moto(tmp_path_factory):
    server = MotoServer()
    server.start(tmp_path_factory.mktemp("moto-ses"))
    yield server
    server.stop()


@pytest.fixture
def ses(ses_moto, monkeypatch):
    """A clean SES with the sender verified, and ``aws_default`` pointing at it."""
    requests.post(f"{ses_moto.url}/moto-api/reset", timeout=10).raise_for_status()
    for key, value in ses_moto.airflow_env().items():
        monkeypatch.setenv(key, value)
    client = boto3.client("ses", endpoint_url=ses_moto.url, region_name=ses_moto.region)
    client.verify_email_identity(EmailAddress=SENDER)
    assert SENDER in client.list_identities(IdentityType="EmailAddress")["Identities"]
    return ses_moto


@pytest.fixture
def webhook():
    receiver = WebhookReceiver()
    yield receiver
    receiver.close()


@pytest.fixture
def smtp(monkeypatch):
    """An SMTP receiver, and ``smtp_default`` pointing at it (plain SMTP: no SSL, no STARTTLS)."""
    receiver = SmtpReceiver()
    monkeypatch.setenv("AIRFLOW_CONN_SMTP_DEFAULT", json.dumps({
        "conn_type": "smtp", "host": "127.0.0.1", "port": receiver.port,
        "extra": {"disable_ssl": True, "disable_tls": True, "timeout": 5, "retry_limit": 0,
                  "from_email": "relay-default@notify.example.org"}}))
    yield receiver
    receiver.close()


# -- e-mail ----------------------------------------------------------------------------------------------
def test_failure_notice_is_mailed_by_ses_with_the_last_log_lines(ses, monkeypatch):
    use_settings(monkeypatch, email={"backend": "ses", "sender": SENDER},
                 workspaces={"alice": {"when": "on_error", "email": ["alice@example.org", "lab@example.org"]}})
    notice = failure_notice()

    assert dispatch(notice) == ["email"]

    [mail] = sent_mail(ses)
    assert mail["source"] == SENDER
    # moto adds the To header's addresses to the Destinations it was given: a set, then.
    assert set(mail["destinations"]) == {"alice@example.org", "lab@example.org"}
    assert mail["message"]["To"] == "alice@example.org, lab@example.org"
    assert mail["message"]["Subject"] == notice.subject()
    assert f"{notice.run_id} failed (EXECUTOR_ERROR)" in mail["message"]["Subject"]
    body = html_of(mail["message"])
    assert LAST_LINE in body and "[task 29] running" in body
    assert "quay.io/hatchway/pgsc_calc:2.0" in body and "1m 35s" in body


def test_a_workspace_without_its_own_preference_gets_the_default(ses, monkeypatch):
    use_settings(monkeypatch, email={"sender": SENDER}, default={"email": ["ops@example.org"]},
                 workspaces={"alice": {"when": "never"}})

    assert dispatch(failure_notice(workspace="alice")) == []
    assert dispatch(failure_notice(workspace="bob")) == ["email"]
    assert [set(m["destinations"]) for m in sent_mail(ses)] == [{"ops@example.org"}]


def test_an_unverified_sender_is_logged_and_does_not_raise(ses, monkeypatch, webhook):
    use_settings(monkeypatch, email={"sender": "nobody@unverified.example.org"},
                 default={"email": ["ops@example.org"], "webhook": f"{webhook.url}/hook"})

    assert dispatch(failure_notice()) == ["webhook"]  # SES refused; the webhook still went
    assert sent_mail(ses) == []
    assert len(webhook.received) == 1


def test_smtp_backend_mails_through_the_smtp_connection(smtp, monkeypatch):
    use_settings(monkeypatch, email={"backend": "smtp", "sender": SENDER},
                 default={"email": ["alice@example.org"]})
    notice = failure_notice()

    assert dispatch(notice) == ["email"]

    [mail] = smtp.mails
    assert mail["mail_from"] == SENDER and mail["rcpt_to"] == ["alice@example.org"]
    assert mail["message"]["Subject"] == notice.subject()
    assert LAST_LINE in html_of(mail["message"])


def test_smtp_without_a_sender_uses_the_connections_from_email(smtp, monkeypatch):
    use_settings(monkeypatch, email={"backend": "smtp"}, default={"email": ["alice@example.org"]})

    assert dispatch(failure_notice()) == ["email"]
    assert [m["mail_from"] for m in smtp.mails] == ["relay-default@notify.example.org"]


# -- preferences -----------------------------------------------------------------------------------------
def test_on_error_sends_nothing_for_a_success(ses, webhook, monkeypatch):
    use_settings(monkeypatch, email={"sender": SENDER},
                 default={"when": "on_error", "email": ["alice@example.org"], "webhook": f"{webhook.url}/hook"})

    assert dispatch(success_notice()) == []
    assert sent_mail(ses) == [] and webhook.received == []

    assert dispatch(failure_notice()) == ["email", "webhook"]
    assert len(sent_mail(ses)) == 1 and len(webhook.received) == 1


def test_never_sends_nothing(ses, webhook, monkeypatch):
    use_settings(monkeypatch, email={"sender": SENDER},
                 default={"when": "never", "email": ["alice@example.org"], "webhook": f"{webhook.url}/hook"})

    assert dispatch(failure_notice()) == []
    assert dispatch(success_notice()) == []
    assert sent_mail(ses) == [] and webhook.received == []


def test_without_the_variable_nothing_is_sent(ses, monkeypatch):
    monkeypatch.delenv("AIRFLOW_VAR_HATCHWAY_NOTIFY_CONFIG", raising=False)

    assert dispatch(failure_notice()) == []
    assert sent_mail(ses) == []


def test_an_invalid_variable_is_logged_and_does_not_raise(monkeypatch, webhook, caplog):
    monkeypatch.setenv("AIRFLOW_VAR_HATCHWAY_NOTIFY_CONFIG", json.dumps(
        {"default": {"when": "sometimes", "webhook": f"{webhook.url}/hook?token=hooktoken42"}}))
    caplog.set_level(logging.INFO, logger="hatchway.notifiers.channels")

    assert dispatch(failure_notice()) == []
    assert webhook.received == []
    assert "hooktoken42" not in caplog.text


# -- webhooks ---------------------------------------------------------------------------------------------
def test_webhook_receives_the_json_notice(webhook, monkeypatch):
    use_settings(monkeypatch, default={"webhook": f"{webhook.url}/hooks/hatchway?token=hooktoken42"})
    notice = failure_notice()

    assert dispatch(notice) == ["webhook"]

    [post] = webhook.received
    assert post["path"] == "/hooks/hatchway?token=hooktoken42"
    assert post["headers"]["Content-Type"] == "application/json"
    assert Notice.model_validate_json(post["body"]) == notice
    assert json.loads(post["body"])["log_tail"][-1] == LAST_LINE


def test_webhook_answering_500_then_200_gets_the_notice_on_retry(webhook, monkeypatch):
    webhook.script = [500]
    use_settings(monkeypatch, default={"webhook": f"{webhook.url}/hook"}, webhook_attempts=3)
    notice = failure_notice()

    assert dispatch(notice) == ["webhook"]

    first, second = webhook.received
    assert first["body"] == second["body"] and Notice.model_validate_json(second["body"]) == notice
    assert first["headers"]["Idempotency-Key"] == second["headers"]["Idempotency-Key"]


def test_webhook_that_keeps_failing_is_logged_without_its_secret_and_does_not_raise(webhook, monkeypatch, caplog):
    webhook.script = [503, 503, 503]
    use_settings(monkeypatch, default={"webhook": f"{webhook.url}/hook/hooktoken42?key=hooktoken42"},
                 webhook_attempts=2)
    caplog.set_level(logging.INFO, logger="hatchway.notifiers.channels")

    assert dispatch(failure_notice()) == []

    assert len(webhook.received) == 2
    assert webhook.url in caplog.text  # the origin names it
    assert "hooktoken42" not in caplog.text


def test_webhook_refusal_is_not_retried(webhook, monkeypatch):
    webhook.script = [404]
    use_settings(monkeypatch, default={"webhook": f"{webhook.url}/gone"}, webhook_attempts=3)

    assert dispatch(failure_notice()) == []
    assert len(webhook.received) == 1


def test_unreachable_webhook_times_out_and_mail_still_goes(ses, monkeypatch):
    import socket

    # A listening socket that never accepts: the POST waits for an answer that never comes.
    silent = socket.socket()
    silent.bind(("127.0.0.1", 0))
    silent.listen(0)
    try:
        use_settings(monkeypatch, email={"sender": SENDER}, webhook_timeout=0.5, webhook_attempts=1,
                     default={"email": ["alice@example.org"],
                              "webhook": f"http://127.0.0.1:{silent.getsockname()[1]}/hook"})
        started = time.monotonic()
        assert dispatch(failure_notice()) == ["email"]
        assert time.monotonic() - started < 10
    finally:
        silent.close()
    assert len(sent_mail(ses)) == 1


# -- Kafka ------------------------------------------------------------------------------------------------
def test_kafka_channel_puts_the_notice_on_its_topic(kafka_cluster, monkeypatch):
    from confluent_kafka import Consumer

    for key, value in kafka_cluster.airflow_env().items():
        monkeypatch.setenv(key, value)
    topic = f"notices-{uuid.uuid4().hex[:8]}"
    use_settings(monkeypatch, kafka={"topic": topic})
    notice = failure_notice()

    assert dispatch(notice) == ["kafka"]

    consumer = Consumer({"bootstrap.servers": kafka_cluster.bootstrap, "group.id": f"reader-{uuid.uuid4().hex}",
                         "auto.offset.reset": "earliest", "enable.auto.commit": False})
    try:
        consumer.subscribe([topic])
        messages, deadline = [], time.monotonic() + 20
        while not messages and time.monotonic() < deadline:
            messages = [m for m in consumer.consume(10, timeout=0.5) if not m.error()]
    finally:
        consumer.close()
    [message] = messages
    assert message.key() == f"wes_run:{notice.run_id}".encode()
    assert Notice.model_validate_json(message.value()) == notice


# -- the callback -----------------------------------------------------------------------------------------
def notice_from_context(context) -> Notice | None:
    """A builder as a DAG would write one: the run's conf and the failure's exception."""
    conf = context["dag_run"]["conf"]
    if "run_id" not in conf:
        return None
    return Notice(kind="job_run", workspace=conf["workspace"], run_id=conf["run_id"], state="Failed", ok=False,
                  details={"reason": str(context["exception"])}, log_tail=[LAST_LINE])


def test_notice_notifier_builds_the_notice_from_the_context_and_dispatches_it(webhook, monkeypatch):
    use_settings(monkeypatch, default={"when": "on_error", "webhook": f"{webhook.url}/hook"})
    context = {"dag_run": {"conf": {"run_id": "INTP123", "workspace": "alice"}},
               "exception": RuntimeError("helm release failed")}

    notifier = NoticeNotifier(f"{__name__}.notice_from_context")
    notifier(context)  # as Airflow calls a task callback

    [post] = webhook.received
    sent = Notice.model_validate_json(post["body"])
    assert (sent.run_id, sent.workspace, sent.details["reason"]) == ("INTP123", "alice", "helm release failed")
    assert NoticeNotifier(notice_from_context).notify(context) == ["webhook"]


def test_notice_notifier_without_a_notice_or_with_a_broken_builder_sends_nothing_and_does_not_raise(
        webhook, monkeypatch):
    use_settings(monkeypatch, default={"webhook": f"{webhook.url}/hook"})

    assert NoticeNotifier(notice_from_context).notify({"dag_run": {"conf": {}}}) == []
    assert NoticeNotifier(notice_from_context).notify({}) == []  # KeyError in the builder: logged
    assert NoticeNotifier("no_such_module.build").notify({}) == []
    assert webhook.received == []


def test_settings_given_to_dispatch_need_no_variable(webhook, monkeypatch):
    monkeypatch.delenv("AIRFLOW_VAR_HATCHWAY_NOTIFY_CONFIG", raising=False)
    settings = NotifySettings(default={"webhook": f"{webhook.url}/hook"})

    assert dispatch(failure_notice(), settings) == ["webhook"]
    assert len(webhook.received) == 1
