"""Pure rules of the Seqera pieces: a run's scripted course, endpoint parsing, backoff, picking
the newest run of a name, error-report first lines, and trigger serialisation. No network."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hatchway.hooks.seqera import SeqeraAuthError, SeqeraEndpoint, SeqeraError, newest_by_name
from hatchway.triggers.seqera import SeqeraRunTrigger, first_line
from include.simulators.seqera.state import DEFAULT_ERROR_REPORT, Course

# The real Seqera answer, copied from shared/examples into the repository.
EXAMPLE = Path(__file__).resolve().parents[2] / "include" / "examples" / "seqera-workflow-list-succeeded.json"


class _Conn:
    def __init__(self, host, password="tok-abcdef", schema=None, port=None, extra=None, conn_id="seqera_default"):
        self.host, self.password, self.schema, self.port = host, password, schema, port
        self.extra_dejson, self.conn_id = extra or {}, conn_id


@pytest.mark.parametrize(("course", "expected"), [
    (Course("succeed", after=2), ["RUNNING", "RUNNING", "SUCCEEDED", "SUCCEEDED"]),
    (Course("succeed", after=0), ["SUCCEEDED"]),
    (Course("fail", after=1, submitted_polls=1), ["SUBMITTED", "FAILED"]),
    (Course("cancel", after=1), ["RUNNING", "CANCELLED"]),
    (Course("unknown", after=0), ["UNKNOWN"]),
    (Course("running", after=0), ["RUNNING"] * 5),
    (Course("not_started"), [None] * 3),
])
def test_course_gives_the_status_of_each_poll(course, expected):
    assert [course.status_at(i) for i in range(1, len(expected) + 1)] == expected


def test_course_rejects_unknown_kind():
    with pytest.raises(ValueError, match="unknown course kind"):
        Course("explode")


def test_endpoint_reads_connection_and_hides_token():
    ep = SeqeraEndpoint.from_connection(_Conn("http://127.0.0.1:8000/", extra={
        "workspace_id": "42", "compute_env_id": "ce1", "verify": False, "max_attempts": 3}))
    assert (ep.base_url, ep.workspace_id, ep.compute_env_id, ep.verify, ep.max_attempts) == \
        ("http://127.0.0.1:8000", 42, "ce1", False, 3)
    assert "tok-abcdef" not in repr(ep)
    assert "tok-abcdef" not in "".join(ep.identity)


def test_endpoint_builds_url_from_bare_host():
    ep = SeqeraEndpoint.from_connection(_Conn("seqera.example.org", schema="https", port=8443))
    assert ep.base_url == "https://seqera.example.org:8443"
    assert ep.workspace_id is None


def test_endpoint_without_token_or_host_names_the_connection():
    with pytest.raises(SeqeraAuthError, match="'my_seqera' has no password"):
        SeqeraEndpoint.from_connection(_Conn("http://x", password=None, conn_id="my_seqera"))
    with pytest.raises(SeqeraError, match="'my_seqera' has no host"):
        SeqeraEndpoint.from_connection(_Conn("", conn_id="my_seqera"))


def test_two_tokens_on_one_endpoint_never_share_a_poller_key():
    a = SeqeraEndpoint("c", "http://h", "token-a")
    b = SeqeraEndpoint("c", "http://h", "token-b")
    assert a.identity != b.identity


def test_backoff_grows_is_jittered_capped_and_honours_retry_after():
    ep = SeqeraEndpoint("c", "http://h", "t", backoff_base=1.0, backoff_max=8.0)
    for attempt, ceiling in [(1, 1), (2, 2), (3, 4), (4, 8), (9, 8)]:
        delays = {ep.backoff(attempt) for _ in range(50)}
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert len(delays) > 1  # jittered
    assert ep.backoff(1, retry_after=5) >= 5
    assert ep.backoff(1, retry_after=500) <= 8


def test_real_seqera_answer_with_nulls_is_read():
    answer = json.loads(EXAMPLE.read_text())
    found = newest_by_name(answer["workflows"], {"intervene-dev-intp00000000044"})
    assert found["intervene-dev-intp00000000044"]["status"] == "SUCCEEDED"
    assert newest_by_name(answer["workflows"], {"intervene-dev-intp0000000004"}) == {}


def test_newest_run_of_a_relaunched_name_wins():
    old = {"workflow": {"id": "a", "runName": "n", "status": "FAILED", "dateCreated": "2025-01-01T00:00:00Z"}}
    new = {"workflow": {"id": "b", "runName": "n", "status": "RUNNING", "dateCreated": "2025-01-02T00:00:00Z"}}
    assert newest_by_name([old, new], {"n"})["n"]["id"] == "b"
    assert newest_by_name([new, old], None)["n"]["id"] == "b"


def test_trace_name_is_first_line_of_error_report():
    assert first_line(DEFAULT_ERROR_REPORT) == "Error executing process > 'PGSC_CALC:PGSC_CALC_APPLY:PLINK2_SCORE (1)'"
    assert first_line("\n\n  boom  \nmore") == "boom"
    assert first_line(None) is None


def test_trigger_serialize_round_trips():
    trigger = SeqeraRunTrigger("ns-intp1", workspace_id=7, seqera_conn_id="s", poll_interval=5,
                               timeout_seconds=10, deployed_timeout_seconds=20, started_at=1700000000.5,
                               search_prefix="ns-", page_size=50)
    path, kwargs = trigger.serialize()
    assert path == "hatchway.triggers.seqera.SeqeraRunTrigger"
    json.dumps(kwargs)  # plain values only
    module, _, name = path.rpartition(".")
    cls = getattr(__import__(module, fromlist=[name]), name)
    again = cls(**kwargs)
    assert again.serialize() == (path, kwargs)
    assert kwargs["started_at"] == 1700000000.5


def test_trigger_keeps_clock_when_rebuilt_without_started_at_argument():
    path, kwargs = SeqeraRunTrigger("ns-intp1").serialize()
    assert isinstance(kwargs["started_at"], float)
    assert SeqeraRunTrigger(**kwargs).started_at == kwargs["started_at"]


def test_trigger_rejects_prefix_that_does_not_prefix_the_name():
    with pytest.raises(ValueError, match="not a prefix"):
        SeqeraRunTrigger("ns-intp1", search_prefix="other-")


def test_poll_page_size_holds_every_waiting_run_within_bounds():
    from hatchway.hooks.seqera_settings import ADAPTIVE_PAGE_MAX, DEFAULT_PAGE_SIZE, poll_page_size

    assert poll_page_size(1) == DEFAULT_PAGE_SIZE  # never below the configured size
    assert poll_page_size(400) >= 400 and poll_page_size(400, 50) == poll_page_size(400)
    assert poll_page_size(10_000) == ADAPTIVE_PAGE_MAX  # bounded: beyond it, pages are followed
    assert poll_page_size(10, 2000) == 2000  # an explicit larger size is kept
