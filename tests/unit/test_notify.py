"""Notices and notify preferences: who hears what, which settings are refused, what a notice
says, and that nothing secret leaves in it. Plain domain: no Airflow, no endpoint."""

from __future__ import annotations

import json

import pytest

from hatchway.domain.notify import (
    MAX_LOG_LINES,
    Notice,
    NotifyPreference,
    NotifySettings,
    NotifySettingsError,
    When,
    format_duration,
    redact,
    wants,
)

SECRETS = ("X-Amz-Signature=feedface", "s3cr3t-pw", "ghp_abcdefghijklmnop1234", "AKIAABCDEFGHIJKLMNOP",
           "wJalrXUtnFEMIK7MDENGbPxRfiCY", "hooktoken42")


def notice(ok: bool = False, state: str = "EXECUTOR_ERROR", **fields) -> Notice:
    return Notice(**{"kind": "job_run", "workspace": "alice", "run_id": "run-42", "state": state, "ok": ok,
                     "details": {"image": "quay.io/hatchway/pgsc_calc:2.0", "duration": 3723,
                                 "reason": "process exited with status 1"},
                     "log_tail": [f"step {i}" for i in range(1, 81)] + ["ERROR: out of memory in SCORE"],
                     **fields})


# -- who hears what ---------------------------------------------------------------------------------
@pytest.mark.parametrize(("when", "ok", "expected"), [
    ("always", True, True), ("always", False, True),
    ("on_error", True, False), ("on_error", False, True),
    ("never", True, False), ("never", False, False),
])
def test_preference_decides_whether_a_notice_is_wanted(when, ok, expected):
    assert wants(NotifyPreference(when=when), notice(ok=ok, state="COMPLETE" if ok else "SYSTEM_ERROR")) is expected


def test_a_canceled_run_is_an_error_for_on_error():
    assert wants(NotifyPreference(when="on_error"), notice(ok=False, state="CANCELED"))


def test_preference_defaults_to_always_with_no_recipient():
    preference = NotifyPreference()
    assert (preference.when, preference.email, preference.webhook) == (When.ALWAYS, [], None)


def test_a_listed_workspace_uses_its_own_preference_and_others_the_default():
    settings = NotifySettings.from_json(json.dumps({
        "email": {"sender": "hatchway@example.org"},
        "default": {"when": "on_error", "email": ["ops@example.org"]},
        "workspaces": {"alice": {"when": "always", "webhook": "https://hooks.example.org/alice"}}}))
    alice, bob = settings.preference_for("alice"), settings.preference_for("bob")
    assert (alice.when, alice.email, alice.webhook) == (When.ALWAYS, [], "https://hooks.example.org/alice")
    assert (bob.when, bob.email) == (When.ON_ERROR, ["ops@example.org"])


def test_settings_read_the_whole_variable_shape():
    settings = NotifySettings.from_json({
        "email": {"backend": "smtp", "sender": "hatchway@example.org", "aws_conn_id": "aws_ses",
                  "region_name": "eu-west-1", "smtp_conn_id": "smtp_relay"},
        "kafka": {"topic": "hatchway-notices", "kafka_conn_id": "kafka_notices"},
        "webhook_timeout": 5, "webhook_attempts": 2,
        "default": {"when": "never"}, "workspaces": {}})
    assert settings.email.backend == "smtp" and settings.email.smtp_conn_id == "smtp_relay"
    assert settings.kafka.topic == "hatchway-notices" and settings.webhook_timeout == 5
    assert settings.default.when is When.NEVER


# -- settings refused ----------------------------------------------------------------------------------
@pytest.mark.parametrize(("config", "problem"), [
    ({"default": {"when": "sometimes"}}, "default.when"),
    ({"default": {"email": ["not-an-address"]}, "email": {"sender": "a@example.org"}}, "not an e-mail address"),
    ({"workspaces": {"alice": {"email": "alice@example"}}, "email": {"sender": "a@example.org"}},
     "workspaces.alice.email"),
    ({"email": {"sender": "hatchway"}}, "email.sender"),
    ({"email": {"backend": "sendmail"}}, "email.backend"),
    ({"default": {"email": ["ops@example.org"]}}, "email.sender is required"),
    ({"default": {"webhook": "ftp://hooks.example.org/x"}}, "http:// or https://"),
    ({"default": {"webhook": "https:///no-host"}}, "no valid host"),
    ({"default": {"webhook": "https://hooks.example.org:http/x"}}, "invalid port"),
    ({"default": {"webhook": "https://hooks.example.org/a b"}}, "whitespace"),
    ({"webhook_timeout": 0}, "webhook_timeout"),
    ({"kafka": {"topic": "no spaces allowed"}}, "kafka.topic"),
    ({"defaults": {}}, "defaults"),
])
def test_invalid_settings_are_refused_with_the_field_named(config, problem):
    with pytest.raises(NotifySettingsError, match=problem):
        NotifySettings.from_json(json.dumps(config))


def test_a_refused_webhook_url_is_not_repeated_in_the_error():
    with pytest.raises(NotifySettingsError) as refused:
        NotifySettings.from_json({"default": {"webhook": "ftp://user:s3cr3t-pw@hooks.example.org/x?token=hooktoken42"}})
    assert "s3cr3t-pw" not in str(refused.value) and "hooktoken42" not in str(refused.value)


def test_smtp_needs_no_sender_in_the_settings():
    """The smtp connection's ``from_email`` is the sender then."""
    settings = NotifySettings.from_json({"email": {"backend": "smtp"}, "default": {"email": ["ops@example.org"]}})
    assert settings.email.sender is None


def test_the_webhook_url_stays_out_of_reprs():
    preference = NotifyPreference(webhook="https://hooks.example.org/x?token=hooktoken42")
    assert "hooktoken42" not in repr(preference)
    assert "hooktoken42" not in repr(NotifySettings(default=preference))


# -- what a notice says ----------------------------------------------------------------------------------
def test_subject_says_what_ended_how_and_where():
    assert notice().subject() == "[Hatchway] Job run run-42 failed (EXECUTOR_ERROR) in workspace alice"
    assert notice(ok=True, state="COMPLETE").subject() == \
        "[Hatchway] Job run run-42 succeeded (COMPLETE) in workspace alice"
    assert "was canceled (CANCELED)" in notice(state="CANCELED").subject()
    assert Notice(kind="container_build", workspace="w", run_id="bd-1", state="FAILED", ok=False).subject() \
        .startswith("[Hatchway] Container build bd-1 failed")


@pytest.mark.parametrize("html", [False, True])
def test_failure_body_has_image_duration_and_the_last_log_lines(html):
    body = notice().body(html=html)
    assert "quay.io/hatchway/pgsc_calc:2.0" in body
    assert "1h 2m 3s" in body
    assert "process exited with status 1" in body
    assert "ERROR: out of memory in SCORE" in body
    assert "step 80" in body and "step 32" in body and "step 31" not in body
    assert f"Last {MAX_LOG_LINES} log lines" in body


def test_log_tail_keeps_only_the_last_lines():
    tail = notice().log_tail
    assert len(tail) == MAX_LOG_LINES
    assert tail[0] == "step 32" and tail[-1] == "ERROR: out of memory in SCORE"


def test_success_body_has_no_log_lines():
    body = notice(ok=True, state="COMPLETE").body()
    assert "quay.io/hatchway/pgsc_calc:2.0" in body and "log lines" not in body and "step 80" not in body


def test_html_body_escapes_what_it_quotes():
    body = notice(log_tail=["<script>alert(1)</script> & {{ var }}"]).body(html=True)
    assert "<script>" not in body and "&lt;script&gt;" in body and "{{ var }}" in body


def test_nested_outputs_are_listed_one_per_line():
    body = notice(ok=True, state="COMPLETE", details={"outputs": {"scores": "s3://b/alice/scores.txt",
                                                                    "report": "s3://b/alice/report.html"}}).body()
    assert "outputs.scores: s3://b/alice/scores.txt\n" in body and "outputs.report: s3://b/alice/report.html\n" in body


@pytest.mark.parametrize(("seconds", "text"), [(0, "0s"), (59.6, "1m 0s"), (61, "1m 1s"), (7200, "2h 0m 0s")])
def test_durations_read_as_hours_minutes_seconds(seconds, text):
    assert format_duration(seconds) == text


def test_a_subject_is_one_line_whatever_the_fields():
    with pytest.raises(ValueError, match="one line"):
        notice(run_id="run-42\nBcc: everyone@example.org")


def test_details_must_be_json():
    with pytest.raises(ValueError, match="JSON"):
        notice(details={"started": object()})


# -- nothing secret ----------------------------------------------------------------------------------
def secret_notice() -> Notice:
    return notice(details={
        "image": "https://robot:s3cr3t-pw@registry.example.org/hatchway/tool:1",
        "outputs": {"report": "https://b.s3.amazonaws.com/alice/report.html?X-Amz-Signature=feedface"},
        "registry_token": "ghp_abcdefghijklmnop1234", "duration": 12},
        log_tail=["export AWS_ACCESS_KEY_ID=AKIAABCDEFGHIJKLMNOP",
                  "export AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMIK7MDENGbPxRfiCY",
                  "curl -H 'Authorization: token ghp_abcdefghijklmnop1234' https://hooks.example.org/x?k=hooktoken42",
                  "ERROR: task failed"])


@pytest.mark.parametrize("rendering", ["subject", "text", "html", "json"])
def test_no_secret_reaches_any_rendering(rendering):
    n = secret_notice()
    out = {"subject": n.subject, "text": n.body, "html": lambda: n.body(html=True),
           "json": n.model_dump_json}[rendering]()
    assert not [s for s in SECRETS if s in out], out


def test_redaction_keeps_what_is_not_secret():
    body = secret_notice().body()
    assert "registry.example.org/hatchway/tool:1" in body
    assert "https://b.s3.amazonaws.com/alice/report.html?***" in body
    assert "ERROR: task failed" in body and "duration: 12s" in body


@pytest.mark.parametrize(("text", "expected"), [
    ("password=hunter2 and more", "password=*** and more"),
    ('{"api_key": "k-1", "n": 1}', '{"api_key": ***, "n": 1}'),
    ("Bearer abcdefghijklmnop", "Bearer ***"),
    ("s3://bucket/key.txt", "s3://bucket/key.txt"),
    ("token expired", "token expired"),
])
def test_redact(text, expected):
    assert redact(text) == expected


def test_redaction_of_a_long_line_is_quick():
    import time

    started = time.monotonic()
    redact("x" * 200_000 + " https://h/p?q=1")
    assert time.monotonic() - started < 1.0
