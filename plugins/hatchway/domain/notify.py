"""Notices of state changes, and who wants to hear them: one model for every channel.

A :class:`Notice` says how a container build or a run ended (or moved); the channels in
``hatchway.notifiers.channels`` carry it by e-mail, webhook or Kafka. Each workspace has a
:class:`NotifyPreference` like Wave's build-notification setting: ``always``, ``on_error``
(only notices that are not a success) or ``never``; :func:`wants` is that rule, once.

Secrets never leave through a notice: its details and log lines are redacted when the
notice is made (:func:`redact`), so the e-mail, the webhook's JSON and the Kafka message
carry the same, cleaned text. Plain pydantic: no Airflow, no cloud SDK.
"""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from enum import Enum
from html import escape
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

NOTIFY_VARIABLE = "hatchway_notify_config"
MAX_LOG_LINES = 50
MAX_LINE_CHARS = 500
MAX_SUBJECT_CHARS = 200
MAX_DETAIL_CHARS = 2000

NoticeKind = Literal["container_build", "job_run", "wes_run", "cromwell_run", "budget"]
KIND_LABELS: dict[str, str] = {"container_build": "Container build", "job_run": "Job run", "wes_run": "WES run",
                               "cromwell_run": "Cromwell run", "budget": "Budget"}

EMAIL = re.compile(r"^[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+$")
_HOST = re.compile(r"^[A-Za-z0-9.:-]+$")  # a name, IPv4 or IPv6 (urlsplit drops the brackets)

# What is cut from text before it leaves: URL credentials, query strings and fragments
# (pre-signed URLs, tokens in webhooks), bearer/basic credentials, key=value secrets, AWS key
# ids and JWTs. Details whose key names a secret lose their whole value. The URL and the
# secret's name start a word (the lookbehinds): each is tried once per word, not at every
# character of a long one, which would make a long line quadratic.
_URL = re.compile(r"(?<![A-Za-z0-9+.-])(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/\s@?#]+@)?"
                  r"(?P<rest>[^\s?#]*)(?P<query>\?[^\s#]*)?(?P<fragment>#\S*)?")
_AUTH_SCHEME = re.compile(r"(?i)\b(bearer|basic|token)\s+[A-Za-z0-9._~+/=-]{8,}")
_SECRET_NAME = (r"(?<![A-Za-z0-9_.-])[A-Za-z0-9_.-]*"
                r"(?:passw(?:or)?d|pwd|secret|token|api[_-]?key|access[_-]?key|private[_-]?key|authorization"
                r"|credentials?|signature)[A-Za-z0-9_.-]*")
_SECRET_PAIR = re.compile(rf"""(?i)(?P<name>{_SECRET_NAME}["']?\s*[:=]\s*)(?P<value>"[^"]*"|'[^']*'|\S+)""")
_AWS_KEY_ID = re.compile(r"\b(?:AKIA|ASIA)[A-Z0-9]{16}\b")
_JWT = re.compile(r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\b")
_SECRET_KEY = re.compile(rf"(?i)^{_SECRET_NAME}$")
REDACTED = "***"


def redact_url(url: str) -> str:
    """``url`` without its credentials, query string and fragment (``https://host/path?***``)."""

    def _clean(m: re.Match) -> str:
        userinfo = f"{REDACTED}@" if m["userinfo"] else ""
        query = f"?{REDACTED}" if m["query"] else ""
        return f"{m['scheme']}{userinfo}{m['rest']}{query}"

    return _URL.sub(_clean, url)


def redact(text: str) -> str:
    """``text`` with what looks like a secret replaced by ``***`` (see the rules above)."""
    text = redact_url(text)
    text = _AUTH_SCHEME.sub(lambda m: f"{m[1]} {REDACTED}", text)
    text = _SECRET_PAIR.sub(lambda m: f"{m['name']}{REDACTED}", text)
    text = _AWS_KEY_ID.sub(REDACTED, text)
    return _JWT.sub(REDACTED, text)


def _redact_value(key: str, value: Any) -> Any:
    if _SECRET_KEY.match(key):
        return REDACTED
    if isinstance(value, str):
        return redact(value[:MAX_DETAIL_CHARS])
    if isinstance(value, dict):
        return {str(k): _redact_value(str(k), v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_redact_value("", v) for v in value]
    return value


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def format_duration(seconds: float) -> str:
    """``3723`` -> ``1h 2m 3s``."""
    total = int(round(seconds))
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours}h"] if hours else []
    if hours or minutes:
        parts.append(f"{minutes}m")
    parts.append(f"{secs}s")
    return " ".join(parts)


def _detail_lines(details: dict[str, Any]) -> list[tuple[str, str]]:
    """(label, text) rows of the details: durations readable, nested values one per row."""
    rows: list[tuple[str, str]] = []
    for key, value in details.items():
        if value is None or value == {} or value == []:
            continue
        if key == "duration" and isinstance(value, (int, float)) and not isinstance(value, bool):
            rows.append((key, format_duration(value)))
        elif isinstance(value, dict):
            rows += [(f"{key}.{k}", v if isinstance(v, str) else json.dumps(v, sort_keys=True))
                     for k, v in value.items()]
        elif isinstance(value, list):
            rows.append((key, ", ".join(v if isinstance(v, str) else json.dumps(v, sort_keys=True) for v in value)))
        else:
            rows.append((key, str(value)))
    return rows


class Notice(BaseModel):
    """A state change worth telling someone about.

    :param kind: ``container_build``, ``job_run``, ``wes_run``, ``cromwell_run`` or ``budget`` (a
        workspace's month past its soft limit or its budget).
    :param workspace: the workspace whose preference decides who hears it.
    :param run_id: the build or run id.
    :param state: the state reached, in the kind's own words (``COMPLETE``, ``EXECUTOR_ERROR``,
        ``Succeeded``, ``Failed``, ``DONE``, ``FAILED``...).
    :param ok: whether that state is a success (``on_error`` preferences hear only the others).
    :param details: summary fields (``image``, ``duration`` in seconds, ``outputs``, ``reason``...),
        redacted on the way in.
    :param log_tail: the last lines of the log (shown for failures), redacted, at most
        :data:`MAX_LOG_LINES` lines of :data:`MAX_LINE_CHARS` characters.
    :param at: when the state was reached (default: now, UTC).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: NoticeKind
    workspace: str = Field(min_length=1, max_length=128)
    run_id: str = Field(min_length=1, max_length=256)
    state: str = Field(min_length=1, max_length=64)
    ok: bool
    details: dict[str, Any] = Field(default_factory=dict)
    log_tail: list[str] = Field(default_factory=list)
    at: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))

    @field_validator("workspace", "run_id", "state")
    @classmethod
    def _single_line(cls, v: str) -> str:
        if _one_line(v) != v:
            raise ValueError("must be one line without leading, trailing or repeated spaces")
        return v

    @field_validator("details")
    @classmethod
    def _redact_details(cls, v: dict[str, Any]) -> dict[str, Any]:
        try:
            json.dumps(v)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"details must be JSON values: {exc}") from None
        return {str(k): _redact_value(str(k), value) for k, value in v.items()}

    @field_validator("log_tail", mode="before")
    @classmethod
    def _last_lines(cls, v: Any) -> list[str]:
        if v is None:
            return []
        if isinstance(v, str):
            v = [v]
        lines = [line for item in v for line in str(item).splitlines()]
        return [redact(line.rstrip()[:MAX_LINE_CHARS]) for line in lines[-MAX_LOG_LINES:]]

    @property
    def label(self) -> str:
        return KIND_LABELS[self.kind]

    @property
    def outcome(self) -> str:
        """``succeeded``, ``was canceled`` or ``failed`` (a budget: ``is spent`` or ``passed its soft limit``)."""
        if self.kind == "budget":
            return "is spent" if self.state == "BUDGET_SPENT" else "passed its soft limit"
        if self.ok:
            return "succeeded"
        return "was canceled" if self.state.upper().startswith(("CANCEL", "ABORT")) else "failed"

    def key(self) -> str:
        """The message key on Kafka: one per build or run of a kind."""
        return f"{self.kind}:{self.run_id}"

    def subject(self) -> str:
        """One line: ``[Hatchway] Job run r-1 failed (EXECUTOR_ERROR) in workspace alice``."""
        line = f"[Hatchway] {self.label} {self.run_id} {self.outcome} ({self.state}) in workspace {self.workspace}"
        return _one_line(line)[:MAX_SUBJECT_CHARS]

    def body(self, html: bool = False) -> str:
        """The message: what ended how, the details, and for a failure the last log lines.

        :param html: simple HTML (escaped) instead of plain text.
        """
        headline = f"{self.label} {self.run_id} in workspace {self.workspace} {self.outcome}: {self.state}."
        rows = [("at", self.at.strftime("%Y-%m-%d %H:%M:%S UTC")), *_detail_lines(self.details)]
        tail = self.log_tail if not self.ok else []
        if html:
            e = escape
            parts = [f"<p>{e(headline)}</p>", "<table>"]
            parts += [f'<tr><th align="left">{e(k)}</th><td>{e(v)}</td></tr>' for k, v in rows]
            parts.append("</table>")
            if tail:
                parts.append(f"<p>Last {len(tail)} log lines:</p>")
                parts.append("<pre>" + e("\n".join(tail)) + "</pre>")
            return "<html><body>\n" + "\n".join(parts) + "\n</body></html>\n"
        text = [headline, ""] + [f"{k}: {v}" for k, v in rows]
        if tail:
            text += ["", f"Last {len(tail)} log lines:", *(f"  {line}" for line in tail)]
        return "\n".join(text) + "\n"


class When(str, Enum):
    """When a workspace hears of its notices."""

    ALWAYS = "always"
    ON_ERROR = "on_error"
    NEVER = "never"


def _check_url(v: str | None) -> str | None:
    if v is None or v == "":
        return None
    if any(c.isspace() for c in v):
        raise ValueError("webhook URL must not contain whitespace")
    # The messages never repeat the URL: its path or query may be the webhook's secret.
    parts = urlsplit(v)
    if parts.scheme not in ("http", "https"):
        raise ValueError("webhook must be an http:// or https:// URL")
    if not parts.hostname or not _HOST.match(parts.hostname):
        raise ValueError("webhook URL has no valid host")
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number
    except ValueError:
        raise ValueError("webhook URL has an invalid port") from None
    return v


class NotifyPreference(BaseModel):
    """Who in a workspace hears of its notices, and when.

    :param when: ``always`` (default), ``on_error`` (only notices that are not a success) or ``never``.
    :param email: addresses to mail.
    :param webhook: an ``http(s)://`` URL the notice's JSON is POSTed to (kept out of reprs
        and logs: it may carry a token).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    when: When = When.ALWAYS
    email: list[str] = Field(default_factory=list)
    webhook: str | None = Field(default=None, repr=False)

    @field_validator("email", mode="before")
    @classmethod
    def _addresses(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = [v]
        if not isinstance(v, list):
            return v
        bad = [a for a in v if not isinstance(a, str) or not EMAIL.match(a.strip())]
        if bad:
            raise ValueError(f"not an e-mail address: {', '.join(map(repr, bad))}")
        return list(dict.fromkeys(a.strip() for a in v))

    @field_validator("webhook")
    @classmethod
    def _webhook(cls, v: str | None) -> str | None:
        return _check_url(v)


def wants(preference: NotifyPreference, notice: Notice) -> bool:
    """Whether a workspace with ``preference`` hears of ``notice`` at all."""
    if preference.when is When.NEVER:
        return False
    if preference.when is When.ON_ERROR:
        return not notice.ok
    return True


class EmailSettings(BaseModel):
    """How e-mail leaves.

    :param backend: ``ses`` (the amazon provider's SES notifier) or ``smtp`` (the smtp provider's).
    :param sender: the From address; SES needs it (a verified identity), SMTP falls back to
        the connection's ``from_email``.
    :param aws_conn_id: AWS connection for SES.
    :param region_name: SES region (default: the connection's).
    :param smtp_conn_id: SMTP connection (host, port, login; ``timeout`` and ``retry_limit`` in its extra).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: Literal["ses", "smtp"] = "ses"
    sender: str | None = None
    aws_conn_id: str = "aws_default"
    region_name: str | None = None
    smtp_conn_id: str = "smtp_default"

    @field_validator("sender")
    @classmethod
    def _sender(cls, v: str | None) -> str | None:
        if v in (None, ""):
            return None
        if not EMAIL.match(v):
            raise ValueError(f"email.sender {v!r} is not an e-mail address")
        return v


class KafkaSettings(BaseModel):
    """Notices on a Kafka topic (none: not sent there).

    :param topic: the topic; messages are keyed ``<kind>:<run id>``.
    :param kafka_conn_id: the apache-kafka connection.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    topic: str | None = Field(default=None, pattern=r"^[A-Za-z0-9._-]{1,249}$")
    kafka_conn_id: str = "kafka_default"


class NotifySettingsError(ValueError):
    """The notify settings are not valid (the message lists each problem, never an input value)."""


class NotifySettings(BaseModel):
    """The deployment's notify settings, from the Airflow Variable ``hatchway_notify_config``.

    A workspace listed under ``workspaces`` uses its own preference instead of ``default``
    (replaced, not merged: a workspace that lists no address hears nothing by e-mail).

    :param email: how e-mail leaves (:class:`EmailSettings`).
    :param kafka: the notice topic (:class:`KafkaSettings`).
    :param webhook_timeout: seconds per webhook try.
    :param webhook_attempts: tries per webhook (429 and 5xx answers, timeouts and connection
        errors are tried again, with backoff).
    :param default: the preference of workspaces not listed.
    :param workspaces: workspace name -> its preference.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    email: EmailSettings = Field(default_factory=EmailSettings)
    kafka: KafkaSettings = Field(default_factory=KafkaSettings)
    webhook_timeout: float = Field(default=10, gt=0, le=120)
    webhook_attempts: int = Field(default=3, ge=1, le=10)
    default: NotifyPreference = Field(default_factory=NotifyPreference)
    workspaces: dict[str, NotifyPreference] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _sender_for_ses(self) -> NotifySettings:
        mails = self.default.email or any(p.email for p in self.workspaces.values())
        if mails and self.email.backend == "ses" and not self.email.sender:
            raise ValueError("email.sender is required: preferences name e-mail recipients and SES sends "
                             "only from a verified sender")
        return self

    def preference_for(self, workspace: str) -> NotifyPreference:
        """The workspace's own preference, or the default."""
        return self.workspaces.get(workspace, self.default)

    @classmethod
    def from_json(cls, raw: str | bytes | dict) -> NotifySettings:
        """Parse and validate; errors name the field and the rule, never the value given
        (a webhook URL can hold a token).

        :raises NotifySettingsError: listing every problem.
        """
        try:
            return cls.model_validate(raw) if isinstance(raw, dict) else cls.model_validate_json(raw)
        except ValidationError as exc:
            problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'settings'}: {e['msg']}"
                                 for e in exc.errors(include_input=False, include_url=False))
            raise NotifySettingsError(f"invalid {NOTIFY_VARIABLE}: {problems}") from None
