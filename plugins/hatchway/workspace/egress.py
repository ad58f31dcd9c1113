"""How jobs reach the internet: the Squid configuration and the Batch instances' proxy settings.

Pure rendering, no AWS call. Private subnets route only to Squid, so everything on a
Batch instance that talks out must be told about the proxy: the ECS agent
(``/etc/ecs/ecs.config``), Docker (a systemd drop-in, for image pulls) and the jobs
(``/etc/environment`` and the agent's container environment). Instance metadata, the ECS
task-credential endpoint and AWS endpoints (S3 has a gateway endpoint) stay direct.
"""

from __future__ import annotations

from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText

SQUID_PORT = 3128
# 169.254.169.254: instance metadata (credentials of the instance role); 169.254.170.2:
# the ECS task-role credential endpoint; .amazonaws.com: AWS APIs, S3 through its endpoint.
NO_PROXY = ("169.254.169.254", "169.254.170.2", "localhost", "127.0.0.1", "/var/run/docker.sock",
            ".amazonaws.com", ".internal")


def squid_config(allowed_domains: list[str], vpc_cidr: str) -> str:
    """squid.conf: only the VPC may use the proxy, and only towards ``allowed_domains``."""
    domains = " ".join(allowed_domains)
    return "\n".join([
        f"http_port {SQUID_PORT}",
        f"acl localnet src {vpc_cidr}",
        "acl SSL_ports port 443",
        "acl Safe_ports port 80 443",
        "acl CONNECT method CONNECT",
        f"acl allowed_domains dstdomain {domains}",
        "http_access deny !Safe_ports",
        "http_access deny CONNECT !SSL_ports",
        "http_access allow localnet allowed_domains",
        "http_access deny all",
        "cache deny all",
        "",
    ])


def squid_user_data(allowed_domains: list[str], vpc_cidr: str) -> str:
    """The proxy instance's boot script: install Squid with :func:`squid_config`."""
    return "\n".join([
        "#!/bin/bash",
        "set -euo pipefail",
        "yum install -y squid",
        "cat > /etc/squid/squid.conf <<'HATCHWAY_SQUID'",
        squid_config(allowed_domains, vpc_cidr).rstrip("\n"),
        "HATCHWAY_SQUID",
        "systemctl enable --now squid",
        "",
    ])


def no_proxy(vpc_cidr: str) -> str:
    return ",".join((*NO_PROXY, vpc_cidr))


def batch_user_data(proxy_host: str, vpc_cidr: str) -> str:
    """MIME multi-part user data (what Batch launch templates require) pointing everything at Squid."""
    proxy = f"http://{proxy_host}:{SQUID_PORT}"
    skip = no_proxy(vpc_cidr)
    script = "\n".join([
        "#!/bin/bash",
        "set -euo pipefail",
        "# ECS agent: registers with ECS and pulls through the proxy.",
        "mkdir -p /etc/ecs",
        f"echo 'HTTP_PROXY={proxy}' >> /etc/ecs/ecs.config",
        f"echo 'HTTPS_PROXY={proxy}' >> /etc/ecs/ecs.config",
        f"echo 'NO_PROXY={skip}' >> /etc/ecs/ecs.config",
        "# Processes on the instance (containers get theirs from the job definition).",
        "cat >> /etc/environment <<'HATCHWAY_ENV'",
        f"http_proxy={proxy}", f"https_proxy={proxy}", f"no_proxy={skip}",
        f"HTTP_PROXY={proxy}", f"HTTPS_PROXY={proxy}", f"NO_PROXY={skip}",
        "HATCHWAY_ENV",
        "# Docker: image pulls.",
        "mkdir -p /etc/systemd/system/docker.service.d",
        "cat > /etc/systemd/system/docker.service.d/http-proxy.conf <<'HATCHWAY_DOCKER'",
        "[Service]",
        f'Environment="HTTP_PROXY={proxy}" "HTTPS_PROXY={proxy}" "NO_PROXY={skip}"',
        "HATCHWAY_DOCKER",
        "systemctl daemon-reload",
        "systemctl restart docker --no-block || true",
        "",
    ])
    message = MIMEMultipart(boundary="==HATCHWAY==")
    message.attach(MIMEText(script, "x-shellscript"))
    return message.as_string()
