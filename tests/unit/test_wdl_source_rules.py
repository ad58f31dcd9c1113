"""Where a WDL workflow may come from: the URL, ref and path rules, without a network."""

from __future__ import annotations

import pydantic
import pytest

from hatchway.domain.wdl import (
    GitSourceSettings,
    SourceRefused,
    WdlError,
    WdlInvalid,
    WorkflowSourceRequest,
    check_repo_url,
    check_resolved_addresses,
)

DEFAULTS = GitSourceSettings()
# http allowed and the metadata address allow-listed: the address rules must hold on their own.
LAX = GitSourceSettings(allowed_schemes=["https", "http"],
                        allowed_hosts=["github.com", "*.example.org", "169.254.169.254", "10.0.0.5", "git.lab:8443"])


def refusal(url: str, settings: GitSourceSettings = DEFAULTS) -> str:
    with pytest.raises(SourceRefused) as caught:
        check_repo_url(url, settings)
    return caught.value.reason


@pytest.mark.parametrize(("url", "named"), [
    ("file:///tmp/x", "'file://'"),
    ("ssh://git@github.com/org/repo.git", "'ssh://'"),
    ("git://github.com/org/repo.git", "'git://'"),
    ("ftp://github.com/org/repo.git", "'ftp://'"),
    ("http://github.com/org/repo.git", "'http://'"),
])
def test_schemes_outside_the_allowed_ones_are_refused_by_name(url, named):
    reason = refusal(url)
    assert f"scheme {named} is not allowed" in reason
    assert "allowed: https://" in reason


def test_remote_helpers_scp_addresses_and_local_paths_are_refused():
    assert "remote helper" in refusal("ext::sh -c touch% /tmp/pwned")
    assert "'ext::'" in refusal("ext::sh -c touch% /tmp/pwned")
    assert "scp-like ssh" in refusal("git@github.com:org/repo.git")
    assert "not a URL" in refusal("/srv/git/repo.git")


def test_credentials_in_the_url_are_refused_without_repeating_them():
    reason = refusal("https://alice:s3cr3t-token@github.com/org/repo.git")
    assert "credentials" in reason
    assert "s3cr3t" not in reason and "alice" not in reason
    assert "credentials" in refusal("https://ghp_token@github.com/org/repo.git")
    assert "s3cr3t" not in refusal("ssh://alice:s3cr3t@github.com/x")


@pytest.mark.parametrize("url", ["https://evil.example.com/org/repo.git", "https://github.com.evil.io/x",
                                 "https://localhost/x", "https://github.com:8443/org/repo.git"])
def test_hosts_not_allowed_are_refused_naming_the_host_and_the_list(url):
    reason = refusal(url)
    assert "is not an allowed git host" in reason
    assert "allowed: github.com, gitlab.com, bitbucket.org" in reason


def test_allowed_hosts_match_case_default_ports_and_wildcards():
    parsed = check_repo_url("HTTPS://GitHub.com:443/Org/Repo.git", DEFAULTS)
    assert (parsed.url, parsed.host, parsed.port) == ("https://github.com/Org/Repo.git", "github.com", 443)
    assert check_repo_url("https://a.b.example.org/x.git", LAX).host == "a.b.example.org"
    assert "not an allowed git host" in refusal("https://example.org/x.git", LAX)  # *.x is subdomains only
    assert "not an allowed git host" in refusal("https://notexample.org/x.git", LAX)
    assert check_repo_url("https://git.lab:8443/x.git", LAX).url == "https://git.lab:8443/x.git"
    assert "'git.lab'" in refusal("https://git.lab/x.git", LAX)  # listed with a port: only that port


@pytest.mark.parametrize(("host", "kind"), [
    ("169.254.169.254", "link-local"),
    ("2852039166", "link-local"),  # decimal
    ("0xa9fea9fe", "link-local"),  # hex
    ("0251.0376.0251.0376", "link-local"),  # octal
    ("169.254.43518", "link-local"),  # a.b.c with a 16-bit tail
    ("[::ffff:169.254.169.254]", "link-local"),  # IPv4-mapped IPv6
    ("[fe80::1%25eth0]", "link-local"),
    ("127.0.0.1", "loopback"),
    ("127.1", "loopback"),
    ("[::1]", "loopback"),
    ("10.0.0.5", "private"),
    ("0.0.0.0", "unspecified"),
    ("[::]", "unspecified"),
    ("224.0.0.1", "multicast"),
    ("240.0.0.1", "reserved"),
])
def test_addresses_inside_are_refused_in_every_notation_even_when_allow_listed(host, kind):
    reason = refusal(f"http://{host}/latest/meta-data/", LAX)
    assert f"is a {kind} address" in reason
    assert "private_hosts" in reason


def test_the_metadata_address_is_refused_as_such():
    assert "cloud metadata" in refusal("https://169.254.169.254/", LAX)
    assert "(169.254.169.254)" in refusal("https://2852039166/", LAX)


def test_public_addresses_in_unusual_notation_are_refused():
    assert "written in an unusual form" in refusal("https://134744072/x.git", LAX)


def test_private_hosts_lift_the_address_rule_only():
    settings = GitSourceSettings(allowed_schemes=["http"], allowed_hosts=["127.0.0.1:8080"],
                                 private_hosts=["127.0.0.1"])
    parsed = check_repo_url("http://127.0.0.1:8080/repo.git", settings)
    assert (parsed.ip, parsed.port, parsed.url) == ("127.0.0.1", 8080, "http://127.0.0.1:8080/repo.git")
    assert "not an allowed git host" in refusal("http://127.0.0.1:9090/repo.git", settings)
    assert "loopback" in refusal("http://[::1]:8080/repo.git", settings)


@pytest.mark.parametrize("url", ["https://github.com/org/repo.git?x=1", "https://github.com/org/repo.git#main",
                                 "https://github.com/org/re po.git", "https://github.com/org\\@evil/x",
                                 "https://github.com/org/\x00repo"])
def test_queries_fragments_whitespace_and_backslashes_are_refused(url):
    assert refusal(url)


def test_a_dns_answer_with_an_inside_address_is_refused_unless_the_host_is_private():
    parsed = check_repo_url("https://github.com/org/repo.git", DEFAULTS)
    check_resolved_addresses(parsed, ["140.82.121.3"], DEFAULTS)
    with pytest.raises(SourceRefused, match=r"'github.com' resolves to 10.1.2.3, which is a private address"):
        check_resolved_addresses(parsed, ["140.82.121.3", "10.1.2.3"], DEFAULTS)
    with pytest.raises(SourceRefused, match="link-local"):
        check_resolved_addresses(parsed, ["::ffff:169.254.169.254"], DEFAULTS)
    inside = GitSourceSettings(private_hosts=["github.com"])
    check_resolved_addresses(parsed, ["10.1.2.3"], inside)


def test_settings_refuse_transports_that_bypass_the_host_checks():
    with pytest.raises(pydantic.ValidationError, match="only https and http"):
        GitSourceSettings(allowed_schemes=["https", "ssh"])
    with pytest.raises(pydantic.ValidationError, match="without a port"):
        GitSourceSettings(private_hosts=["127.0.0.1:8080"])
    with pytest.raises(pydantic.ValidationError, match="not a host name"):
        GitSourceSettings(allowed_hosts=["https://github.com"])
    assert GitSourceSettings().max_repo_bytes == 50 * 1024 * 1024


def request(**changes) -> WorkflowSourceRequest:
    return WorkflowSourceRequest(**{"repo": "https://github.com/org/repo.git", "ref": "main",
                                    "path": "main.wdl", **changes})


@pytest.mark.parametrize("ref", ["main", "v1.2.0", "feature/align-bwa", "refs/heads/main", "refs/tags/v1", "HEAD"])
def test_branches_tags_and_full_refs_are_accepted(ref):
    assert request(ref=ref).ref == ref


def test_a_full_commit_sha_is_accepted_in_lower_case():
    assert request(ref="A" * 40).ref == "a" * 40


@pytest.mark.parametrize(("ref", "why"), [
    ("", "empty"), ("-upload-pack=touch", "starts with '-'"), ("main..other", "'..'"),
    ("my branch", "space or control"), ("main\n", "space or control"), ("a\x7fb", "space or control"),
    ("a~1", "'~'"), ("a^", "'^'"), ("a:b", "':'"), ("a?", "'?'"), ("a*", "'*'"), ("a[1]", "'['"),
    ("a\\b", "'\\\\'"), ("main.lock", ".lock"), (".hidden", "starting with '.'"), ("a/.b", "starting with '.'"),
    ("a/", "empty path component"), ("a//b", "empty path component"), ("main.", "ends with '.'"),
    ("HEAD@{1}", "'@'"), ("@", "'@'"), ("x" * 300, "at most 255"),
])
def test_refs_git_check_ref_format_rejects_are_refused(ref, why):
    with pytest.raises(pydantic.ValidationError) as caught:
        request(ref=ref)
    assert why in str(caught.value)


@pytest.mark.parametrize(("path", "expected"), [("main.wdl", "main.wdl"), ("workflows/align.wdl", "workflows/align.wdl"),
                                                ("./workflows/align.wdl", "workflows/align.wdl")])
def test_workflow_paths_inside_the_repository_are_accepted(path, expected):
    assert request(path=path).path == expected


@pytest.mark.parametrize(("path", "why"), [
    ("/etc/main.wdl", "absolute"), ("../main.wdl", "'..'"), ("workflows/../../main.wdl", "'..'"),
    ("main.py", "does not end in '.wdl'"), ("main.WDL", "does not end in '.wdl'"), ("a//main.wdl", "empty component"),
    (".git/hooks/x.wdl", "'.git'"), ("a\\main.wdl", "backslashes"), ("a\nmain.wdl", "control characters"), ("", "empty"),
])
def test_workflow_paths_leaving_the_repository_or_not_wdl_are_refused(path, why):
    with pytest.raises(pydantic.ValidationError) as caught:
        request(path=path)
    assert why in str(caught.value)


def test_wdl_errors_read_as_file_line_column_message():
    invalid = WdlInvalid([WdlError("tasks/align.wdl", 12, 5, "Expected Int instead of String"),
                          WdlError("main.wdl", 3, 1, "No such task/workflow: nope")])
    assert str(invalid) == ("tasks/align.wdl:12:5: Expected Int instead of String\n"
                            "main.wdl:3:1: No such task/workflow: nope")
    assert isinstance(invalid, SourceRefused) and isinstance(invalid, ValueError)
    assert invalid.reason == str(invalid)
