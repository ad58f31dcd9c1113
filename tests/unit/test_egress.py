"""The egress settings: Squid allows only the configured domains; Batch instances use the proxy."""

from __future__ import annotations

import email

import pytest
from pydantic import ValidationError

from hatchway.domain.workspace import DEFAULT_PROXY_DOMAINS, PlatformConfig
from hatchway.workspace.egress import batch_user_data, squid_config, squid_user_data

CIDR = "192.168.0.0/16"


def _directives(conf: str) -> list[list[str]]:
    return [line.split() for line in conf.splitlines() if line.strip() and not line.startswith("#")]


def test_squid_allows_only_the_vpc_towards_the_allowed_domains():
    conf = _directives(squid_config([".example.org", "ghcr.io"], CIDR))
    assert ["acl", "localnet", "src", CIDR] in conf
    assert ["acl", "allowed_domains", "dstdomain", ".example.org", "ghcr.io"] in conf
    access = [d for d in conf if d[0] == "http_access"]
    assert access[-2:] == [["http_access", "allow", "localnet", "allowed_domains"], ["http_access", "deny", "all"]]
    assert ["http_access", "allow", "localnet"] not in access  # the old rule: anywhere


def test_squid_user_data_writes_that_config():
    script = squid_user_data(["ghcr.io"], CIDR)
    assert script.startswith("#!/bin/bash")
    body = script.split("<<'HATCHWAY_SQUID'\n", 1)[1].split("\nHATCHWAY_SQUID\n", 1)[0]
    assert body + "\n" == squid_config(["ghcr.io"], CIDR)


def test_proxy_domains_default_and_are_checked():
    config = PlatformConfig(bucket="hatchway-data")
    assert config.proxy_allowed_domains == list(DEFAULT_PROXY_DOMAINS) and ".amazonaws.com" in DEFAULT_PROXY_DOMAINS
    assert PlatformConfig(bucket="hatchway-data", proxy_allowed_domains=[".example.org"]).proxy_allowed_domains
    for bad in (["example.org\nhttp_access allow all"], ["a b.org"], ["*"], []):
        with pytest.raises(ValidationError):
            PlatformConfig(bucket="hatchway-data", proxy_allowed_domains=bad)


def test_batch_user_data_is_mime_multipart_pointing_agent_docker_and_jobs_at_squid():
    raw = batch_user_data("192.168.255.10", CIDR)
    message = email.message_from_string(raw)
    assert message.is_multipart() and message.get_content_type() == "multipart/mixed"
    parts = [p for p in message.walk() if not p.is_multipart()]
    assert [p.get_content_type() for p in parts] == ["text/x-shellscript"]
    script = parts[0].get_payload(decode=True).decode()
    proxy = "http://192.168.255.10:3128"
    assert f"echo 'HTTP_PROXY={proxy}' >> /etc/ecs/ecs.config" in script
    no_proxy_line = next(line for line in script.splitlines() if line.startswith("echo 'NO_PROXY="))
    skipped = no_proxy_line.split("=", 1)[1].split("'")[0].split(",")
    for host in ("169.254.169.254", "169.254.170.2", "localhost", ".amazonaws.com", CIDR):
        assert host in skipped
    assert "/etc/systemd/system/docker.service.d/http-proxy.conf" in script
    assert f'Environment="HTTP_PROXY={proxy}"' in script
    assert f"https_proxy={proxy}" in script and "/etc/environment" in script
