"""Where notices go: e-mail (SES or SMTP), a webhook, a Kafka topic; one :func:`dispatch`.

:func:`dispatch` reads the deployment's settings (the Airflow Variable
``hatchway_notify_config``; without it nothing is sent), asks the workspace's preference
whether it wants the notice at all (:func:`hatchway.domain.notify.wants`: ``always``,
``on_error``, ``never``, for every channel), then sends on each channel that has somewhere
to send it. A channel that fails is logged and skipped: a notice never fails the task that
sent it. Logs name a webhook by its origin only (``https://host``) and never a credential:
a webhook's path or query can be its secret.

A channel raises on failure and returns whether it sent anything; a new channel is one
more class with a ``name`` and a ``send``.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Protocol
from urllib.parse import urlsplit

from hatchway import metrics
from hatchway.domain.notify import (
    NOTIFY_VARIABLE,
    EmailSettings,
    KafkaSettings,
    Notice,
    NotifyPreference,
    NotifySettings,
    redact,
    wants,
)

log = logging.getLogger(__name__)

WEBHOOK_BACKOFF_BASE = 1.0
WEBHOOK_BACKOFF_CAP = 10.0


class WebhookError(RuntimeError):
    """The webhook refused the notice, or did not answer in its tries."""


class Channel(Protocol):
    """One way out for notices.

    ``send`` returns True when it sent the notice, False when ``preference`` gives it nowhere
    to send (no address, no URL, no topic); it raises when sending failed.
    """

    name: str

    def send(self, notice: Notice, preference: NotifyPreference) -> bool: ...


def describe(exc: BaseException) -> str:
    """An error for a log line: its type and its message, redacted, on one line."""
    message = redact(" ".join(str(exc).split()))[:300]
    return f"{type(exc).__name__}: {message}" if message else type(exc).__name__


def origin(url: str) -> str:
    """``scheme://host[:port]`` of a URL: how logs name a webhook."""
    parts = urlsplit(url)
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{parts.hostname}{port}"


class EmailChannel:
    """Mail to the preference's addresses, through the amazon provider's ``SesNotifier`` or the
    smtp provider's ``SmtpNotifier`` (``email.backend``). Retries and timeouts are the
    connection's (botocore's config; the SMTP extra's ``timeout`` and ``retry_limit``).

    :param settings: backend, sender and connection ids.
    """

    name = "email"

    def __init__(self, settings: EmailSettings):
        self.settings = settings

    def send(self, notice: Notice, preference: NotifyPreference) -> bool:
        if not preference.email:
            return False
        # notify() is called directly, not through __call__: the providers' notifiers render
        # their fields with Jinja there, and a log line with "{{" is text, not a template.
        if self.settings.backend == "smtp":
            from airflow.providers.smtp.notifications.smtp import SmtpNotifier

            SmtpNotifier(to=list(preference.email), from_email=self.settings.sender, subject=notice.subject(),
                         html_content=notice.body(html=True), smtp_conn_id=self.settings.smtp_conn_id).notify({})
        else:
            from airflow.providers.amazon.aws.notifications.ses import SesNotifier

            SesNotifier(aws_conn_id=self.settings.aws_conn_id, region_name=self.settings.region_name,
                        mail_from=self.settings.sender, to=list(preference.email), subject=notice.subject(),
                        html_content=notice.body(html=True)).notify({})
        log.info("notice %s: mailed to %d address(es) by %s", notice.key(), len(preference.email),
                 self.settings.backend)
        return True


class WebhookChannel:
    """POST the notice's JSON to the preference's URL.

    429, 5xx, timeouts and connection errors are tried again with jittered exponential
    backoff (``hooks/rest.py``); any other non-2xx answer is a refusal, not retried. The
    ``Idempotency-Key`` header is the same on every try of one notice, for receivers that dedup.

    :param timeout: seconds per try.
    :param attempts: tries in all.
    """

    name = "webhook"

    def __init__(self, timeout: float = 10.0, attempts: int = 3):
        from hatchway.hooks.rest import Backoff

        self.timeout = timeout
        self.backoff = Backoff(max_attempts=attempts, base=WEBHOOK_BACKOFF_BASE, cap=WEBHOOK_BACKOFF_CAP)

    # -- hatchway.hooks.rest.Caller: the loop reports through these; ``path`` is the origin
    def note_retry(self, method: str, path: str, attempt: int, reason: str, delay: float) -> None:
        log.warning("webhook %s: %s on try %d, again in %.1fs", path, reason, attempt, delay)

    def give_up(self, method: str, path: str, attempts: int, reason: str) -> Exception:
        return WebhookError(f"webhook {path}: {reason} after {attempts} tries")

    def send(self, notice: Notice, preference: NotifyPreference) -> bool:
        if not preference.webhook:
            return False
        import httpx

        from hatchway.hooks.rest import call, raise_for_retry

        url, where = preference.webhook, origin(preference.webhook)
        body = notice.model_dump_json().encode()
        headers = {"Content-Type": "application/json", "User-Agent": "hatchway-notify",
                   "Idempotency-Key": hashlib.sha256(body).hexdigest()[:32]}

        def answer(resp: httpx.Response) -> int:
            raise_for_retry(resp)
            if not resp.is_success:
                raise WebhookError(f"webhook {where} refused the notice: HTTP {resp.status_code}")
            return resp.status_code

        with httpx.Client(timeout=self.timeout, follow_redirects=False) as client:
            status = call(self, self.backoff, "POST", where, lambda: client.post(url, content=body, headers=headers),
                          answer)
        log.info("notice %s: posted to webhook %s (HTTP %d)", notice.key(), where, status)
        return True


class KafkaChannel:
    """The notice's JSON on a Kafka topic, keyed ``<kind>:<run id>``, with the helpers of
    ``hatchway.jobs.status`` (idempotent producer, flushed, acknowledged or an error).

    :param settings: the topic (none: nothing sent) and the apache-kafka connection.
    """

    name = "kafka"

    def __init__(self, settings: KafkaSettings):
        self.settings = settings

    def send(self, notice: Notice, preference: NotifyPreference) -> bool:
        if not self.settings.topic:
            return False
        from hatchway.jobs.status import make_producer, produce_and_flush

        producer = make_producer(self.settings.kafka_conn_id)
        produce_and_flush(producer, self.settings.topic, notice.key().encode(), notice.model_dump_json().encode(),
                          headers=[("kind", notice.kind.encode())])
        log.info("notice %s: on topic %s", notice.key(), self.settings.topic)
        return True


def channels_for(settings: NotifySettings) -> list[Channel]:
    """Every channel of the deployment, in sending order."""
    return [EmailChannel(settings.email),
            WebhookChannel(timeout=settings.webhook_timeout, attempts=settings.webhook_attempts),
            KafkaChannel(settings.kafka)]


def load_notify_settings(variable: str = NOTIFY_VARIABLE) -> NotifySettings | None:
    """The settings in the Airflow Variable, or None when it is not set.

    :raises NotifySettingsError: when it is set and not valid.
    """
    from airflow.sdk import Variable

    raw = Variable.get(variable, default=None)
    return NotifySettings.from_json(raw) if raw else None


def dispatch(notice: Notice, settings: NotifySettings | None = None,
             channels: list[Channel] | None = None) -> list[str]:
    """Send ``notice`` on every channel its workspace's preference wants; never raises.

    :param notice: what happened.
    :param settings: default: :func:`load_notify_settings` (none set: nothing is sent).
    :param channels: default: :func:`channels_for` the settings.
    :return: the names of the channels that sent it (``["email", "webhook"]``), for the log.
    """
    if settings is None:
        try:
            settings = load_notify_settings()
        except Exception as exc:  # noqa: BLE001 - a bad setting is logged; it never fails the task
            log.error("notice %s not sent: %s", notice.key(), describe(exc))
            return []
        if settings is None:
            log.info("notice %s not sent: the Variable %s is not set", notice.key(), NOTIFY_VARIABLE)
            return []
    preference = settings.preference_for(notice.workspace)
    if not wants(preference, notice):
        log.info("notice %s (%s) not sent: workspace %s is notified %s", notice.key(), notice.state,
                 notice.workspace, preference.when.value)
        return []
    sent = []
    for channel in channels if channels is not None else channels_for(settings):
        try:
            if channel.send(notice, preference):
                sent.append(channel.name)
                metrics.incr("notices.sent", channel=channel.name)
        except Exception as exc:  # noqa: BLE001 - a failed channel is logged; the others still send
            log.warning("notice %s: not sent by %s: %s", notice.key(), channel.name, describe(exc))
            metrics.incr("notices.failed", channel=channel.name)
    log.info("notice %s (%s): sent by %s", notice.key(), notice.state, ", ".join(sent) or "no channel")
    return sent
