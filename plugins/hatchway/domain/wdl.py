"""A WDL workflow taken from git: where it may come from, what may be asked for, what was wrong.

Plain pydantic and the standard library: no network, no git. :class:`GitSourceSettings` is the
deployment's policy, :class:`WorkflowSourceRequest` what a researcher asks for (a repository,
a ref, the main WDL's path). :func:`check_repo_url` and :func:`check_resolved_addresses` are the
URL rules; the concern (``hatchway.wdl.source``) applies them before git runs and pins DNS to the
addresses they passed. Every refusal is a :class:`SourceRefused` whose reason a researcher can act
on; a workflow that does not typecheck is a :class:`WdlInvalid` listing ``file:line:column``.
"""

from __future__ import annotations

import ipaddress
import re
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

MiB = 1024 * 1024
DEFAULT_PORTS = {"https": 443, "http": 80}
# git's own ssh://, git:// and file:// transports (and its ext:: helpers) sidestep every host
# check here, and ssh needs keys Hatchway does not hold: http(s) is the whole offer.
SUPPORTED_SCHEMES = frozenset(DEFAULT_PORTS)
MAX_URL_LENGTH = 2048
MAX_REF_LENGTH = 255
COMMIT_SHA = re.compile(r"^[0-9a-f]{40}$")

_DNS_NAME = re.compile(r"^(?=.{1,253}$)[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$")
_HOST_ENTRY = re.compile(r"^(?:\*\.)?(?P<host>[a-z0-9.-]+|\[[0-9a-f:.]+\])(?::(?P<port>\d{1,5}))?$")
_CONTROL_OR_SPACE = re.compile(r"[\x00-\x20\x7f]")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
# git check-ref-format: characters no ref may hold anywhere.
_REF_FORBIDDEN = re.compile(r"[\x00-\x20\x7f~^:?*\[\\]")


class SourceRefused(ValueError):
    """A workflow source Hatchway will not fetch or submit, and why.

    :param reason: one sentence a researcher can act on; it never repeats credentials.
    """

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class WdlError:
    """One syntax or type error, at its place in the repository.

    :param file: the file's path inside the repository.
    :param line: 1-based line.
    :param column: 1-based column.
    :param message: what miniwdl found wrong there.
    """

    file: str
    line: int
    column: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}: {self.message}"


class WdlInvalid(SourceRefused):
    """The workflow does not parse or typecheck: every error miniwdl reported, in order.

    :param errors: the errors, one ``file:line:column: message`` line each in ``str()``.
    """

    def __init__(self, errors: list[WdlError]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(str(e) for e in self.errors))


# -- settings and request -------------------------------------------------------------------


def _host_entry(value: str, *, ports: bool) -> str:
    entry = value.strip().lower().rstrip(".")
    match = _HOST_ENTRY.match(entry)
    if not match:
        raise ValueError(f"{value!r} is not a host name: write 'host', '*.domain' or 'host:port'")
    if match.group("port") and not ports:
        raise ValueError(f"{value!r}: name the host without a port here")
    if match.group("port") and not 0 < int(match.group("port")) < 65536:
        raise ValueError(f"{value!r}: the port must be between 1 and 65535")
    return entry


class GitSourceSettings(BaseModel):
    """Where workflows may be fetched from, and how much of them.

    :param allowed_hosts: ``host`` (on the scheme's default port), ``host:port``, or ``*.domain``
        (any subdomain, not the domain itself).
    :param allowed_schemes: a subset of ``https`` and ``http``.
    :param private_hosts: hosts that may be, or resolve to, loopback, link-local, private or
        reserved addresses (an internal git server; ``127.0.0.1`` in tests). Host names or
        ``*.domain``, without ports.
    :param max_repo_bytes: the checkout's size limit, working tree and ``.git`` together.
    :param timeout_seconds: the limit on all git commands of one fetch together.
    :param ca_bundle: a PEM file of the certificate authorities git trusts for https (an internal
        git server with a private CA); default: the system's.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    allowed_hosts: list[str] = Field(default_factory=lambda: ["github.com", "gitlab.com", "bitbucket.org"])
    allowed_schemes: list[str] = Field(default_factory=lambda: ["https"])
    private_hosts: list[str] = Field(default_factory=list)
    max_repo_bytes: int = Field(default=50 * MiB, gt=0)
    timeout_seconds: float = Field(default=120.0, gt=0)
    ca_bundle: str | None = None

    @field_validator("allowed_hosts")
    @classmethod
    def _allowed_hosts(cls, value: list[str]) -> list[str]:
        return [_host_entry(v, ports=True) for v in value]

    @field_validator("private_hosts")
    @classmethod
    def _private_hosts(cls, value: list[str]) -> list[str]:
        return [_host_entry(v, ports=False) for v in value]

    @field_validator("allowed_schemes")
    @classmethod
    def _schemes(cls, value: list[str]) -> list[str]:
        schemes = [v.strip().lower() for v in value]
        unsupported = sorted(set(schemes) - SUPPORTED_SCHEMES)
        if unsupported:
            raise ValueError(f"scheme(s) {', '.join(unsupported)} cannot be allowed: only https and http are "
                             "supported (git's ssh, git and file transports bypass the host checks)")
        return schemes


def check_ref(ref: str) -> str:
    """A branch, a tag, a full ref name (``refs/heads/x``) or a full 40-hex commit, as git
    ``check-ref-format`` would accept it; a commit SHA comes back lower-case."""
    if not ref:
        raise ValueError("the ref is empty: name a branch, a tag or a 40-character commit SHA")
    if len(ref) > MAX_REF_LENGTH:
        raise ValueError(f"the ref is {len(ref)} characters long; git refs here are at most {MAX_REF_LENGTH}")
    if COMMIT_SHA.match(ref.lower()):
        return ref.lower()
    shown = ref.encode("unicode_escape").decode()
    if ref.startswith("-"):
        raise ValueError(f"ref {shown!r} starts with '-', which git would read as an option")
    bad = _REF_FORBIDDEN.search(ref)
    if bad:
        what = "a space or control character" if bad.group() <= " " or bad.group() == "\x7f" else repr(bad.group())
        raise ValueError(f"ref {shown!r} contains {what}, which git does not allow in a ref name")
    if ".." in ref:
        raise ValueError(f"ref {ref!r} contains '..', which git does not allow in a ref name")
    if "@{" in ref or ref == "@":
        raise ValueError(f"ref {ref!r} uses git's '@' revision syntax; name a branch, a tag or a commit SHA")
    if ref.startswith("/") or ref.endswith("/") or "//" in ref:
        raise ValueError(f"ref {ref!r} has an empty path component ('/' at an end, or '//')")
    if ref.endswith("."):
        raise ValueError(f"ref {ref!r} ends with '.', which git does not allow")
    for part in ref.split("/"):
        if part.startswith("."):
            raise ValueError(f"ref {ref!r} has a component starting with '.', which git does not allow")
        if part.endswith(".lock"):
            raise ValueError(f"ref {ref!r} has a component ending in '.lock', which git does not allow")
    return ref


def check_workflow_path(path: str) -> str:
    """The main WDL's path inside the repository: relative, within it, ending ``.wdl``."""
    shown = path.encode("unicode_escape").decode()
    if not path:
        raise ValueError("the workflow path is empty: name the main .wdl file inside the repository")
    if _CONTROL.search(path) or "\\" in path:
        raise ValueError(f"workflow path {shown!r} contains control characters or backslashes")
    if path.startswith("/"):
        raise ValueError(f"workflow path {path!r} is absolute: give it relative to the repository's root")
    parts = path.split("/")
    if ".." in parts:
        raise ValueError(f"workflow path {path!r} climbs out with '..': give it relative to the repository's root")
    parts = [p for p in parts if p != "."]
    if "" in parts:
        raise ValueError(f"workflow path {path!r} has an empty component ('//' or a trailing '/')")
    if ".git" in parts:
        raise ValueError(f"workflow path {path!r} points into git's own '.git' directory")
    if not path.endswith(".wdl"):
        raise ValueError(f"workflow path {path!r} does not end in '.wdl'")
    return "/".join(parts)


class WorkflowSourceRequest(BaseModel):
    """A workflow to fetch: which repository, at which ref, which file.

    :param repo: the repository's http(s) URL; checked against the settings by
        :func:`check_repo_url`.
    :param ref: a branch, a tag, ``refs/heads/x`` / ``refs/tags/x``, or a full 40-hex commit.
    :param path: the main WDL inside the repository, e.g. ``workflows/main.wdl``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    repo: str = Field(min_length=1, max_length=MAX_URL_LENGTH)
    ref: str
    path: str

    @field_validator("ref")
    @classmethod
    def _ref(cls, value: str) -> str:
        return check_ref(value)

    @field_validator("path")
    @classmethod
    def _path(cls, value: str) -> str:
        return check_workflow_path(value)


# -- URL rules ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ParsedUrl:
    """A repository URL that passed :func:`check_repo_url`.

    :param url: the normalised URL, the only form handed to git.
    :param scheme: ``https`` or ``http``.
    :param host: lower-case host name, or the IP address without brackets.
    :param port: the port git will connect to (the scheme's default when the URL has none).
    :param path: the URL's path.
    :param ip: the host as an address when the URL names one, else None.
    """

    url: str
    scheme: str
    host: str
    port: int
    path: str
    ip: str | None = None


IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def address_kind(address: IpAddress) -> str | None:
    """Why an address is off limits (``"loopback"``, ``"link-local"``, ...), or None if public."""
    if isinstance(address, ipaddress.IPv6Address):
        # ::ffff:a.b.c.d and friends reach the IPv4 address; judge that one.
        embedded = address.ipv4_mapped or address.sixtofour or (address.teredo or (None, None))[1]
        if embedded is not None:
            kind = address_kind(embedded)
            if kind:
                return kind
    checks = (("unspecified", address.is_unspecified), ("loopback", address.is_loopback),
              ("link-local", address.is_link_local), ("multicast", address.is_multicast),
              ("reserved", address.is_reserved), ("private", address.is_private))
    for kind, hit in checks:
        if hit:
            return kind
    return None if address.is_global else "non-public"


_KIND_NOTE = {"link-local": " (where cloud metadata services answer)"}


def _matches(entry: str, host: str, port: int | None, default_port: int | None) -> bool:
    """An allow-list entry against a host; ``port=None`` ignores ports (private_hosts)."""
    name, _, entry_port = entry.rpartition(":") if re.search(r":\d+$", entry) else (entry, "", "")
    name = name.strip("[]")
    if port is not None and int(entry_port or default_port or 0) != port:
        return False
    if name.startswith("*."):
        return host.endswith(name[1:]) and len(host) > len(name) - 1
    return host == name


def _literal_ip(host: str) -> tuple[IpAddress, bool] | None:
    """The address a host names, as git's resolver would read it, and whether it is written in
    canonical form; None for a host name. ``2852039166``, ``0xa9fea9fe`` and ``0251.0376.0251.0376``
    all are 169.254.169.254 to ``inet_aton``, so they are addresses here too."""
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0] if ":" in host else host)
        return address, True
    except ValueError:
        pass
    if ":" in host or not re.fullmatch(r"[0-9a-fx.]+", host):
        return None
    try:
        packed = socket.inet_aton(host)  # parses the string, touches no network
    except OSError:
        return None
    return ipaddress.IPv4Address(packed), False


def _refuse_address(address: IpAddress, host: str, what: str, settings: GitSourceSettings) -> None:
    kind = address_kind(address)
    if kind and not any(_matches(e, host, None, None) for e in settings.private_hosts):
        raise SourceRefused(f"{what} is a {kind} address{_KIND_NOTE.get(kind, '')}; Hatchway fetches "
                            f"workflows only from public hosts (private_hosts lists the exceptions)")


def check_repo_url(url: str, settings: GitSourceSettings) -> ParsedUrl:
    """Refuse a repository URL git must not be pointed at; return it normalised.

    Refused, in this order: local paths and scp-like or ``transport::`` addresses, schemes not
    in ``allowed_schemes``, whitespace, control characters and backslashes, credentials
    (``user:pass@``), queries and fragments, addresses that are loopback, link-local, private,
    multicast, reserved or unspecified (unless the host is in ``private_hosts``), numbers
    written other than dotted decimal, and hosts not in ``allowed_hosts``.

    :raises SourceRefused: with the reason; credentials are never repeated in it.
    """
    if not isinstance(url, str) or not url:
        raise SourceRefused("the repository URL is empty")
    if len(url) > MAX_URL_LENGTH:
        raise SourceRefused(f"the repository URL is longer than {MAX_URL_LENGTH} characters")
    scheme_match = _SCHEME.match(url)
    if re.match(r"^[A-Za-z][A-Za-z0-9+.-]*::", url):
        raise SourceRefused(f"'{url.split('::', 1)[0]}::' names a git remote helper, which can run programs; "
                            "give the repository's https:// URL")
    if not scheme_match or "://" not in url:
        if re.match(r"^[^/:\s]+@[^/:\s]+:", url) or re.match(r"^[^/:\s]+:[^/]", url):
            raise SourceRefused("scp-like ssh addresses (user@host:path) are not allowed; give the "
                                "repository's https:// URL")
        raise SourceRefused("the repository is not a URL (a local path?): give the repository's https:// URL")
    scheme = scheme_match.group(1).lower()
    allowed = settings.allowed_schemes
    if scheme not in allowed:
        raise SourceRefused(f"scheme '{scheme}://' is not allowed; allowed: "
                            f"{', '.join(s + '://' for s in allowed)}")
    if _CONTROL_OR_SPACE.search(url) or "\\" in url:
        raise SourceRefused("the repository URL contains whitespace, control characters or backslashes")
    parts = urlsplit(url)
    if "@" in parts.netloc:
        raise SourceRefused("the repository URL carries credentials (user@ or user:password@); remove them: "
                            "Hatchway fetches public repositories and never sends credentials")
    if parts.query or parts.fragment or url.endswith(("?", "#")):
        raise SourceRefused("the repository URL has a query or a fragment ('?' or '#'); give the plain "
                            "repository URL")
    host = (parts.hostname or "").rstrip(".")
    if not host:
        raise SourceRefused("the repository URL names no host")
    try:
        explicit_port = parts.port
    except ValueError:
        raise SourceRefused("the repository URL's port is not a number between 0 and 65535") from None
    port = explicit_port or DEFAULT_PORTS[scheme]

    literal = _literal_ip(host)
    if literal:
        address, canonical = literal
        shown = f"'{host}'" if canonical else f"'{host}' ({address})"
        _refuse_address(address, host, f"host {shown}", settings)
        if not canonical:
            raise SourceRefused(f"host '{host}' is the IPv4 address {address} written in an unusual form; "
                                "write addresses in dotted decimal")
        host = str(address)
    elif not _DNS_NAME.match(host):
        raise SourceRefused(f"host {host!r} is not a valid DNS name")

    if not any(_matches(entry, host, port, DEFAULT_PORTS[scheme]) for entry in settings.allowed_hosts):
        where = host if explicit_port is None else f"{host}:{port}"
        raise SourceRefused(f"host '{where}' is not an allowed git host; allowed: "
                            f"{', '.join(settings.allowed_hosts) or '(none)'}")
    netloc = f"[{host}]" if ":" in host else host
    if explicit_port is not None and explicit_port != DEFAULT_PORTS[scheme]:
        netloc += f":{explicit_port}"
    return ParsedUrl(url=f"{scheme}://{netloc}{parts.path}", scheme=scheme, host=host, port=port,
                     path=parts.path, ip=str(literal[0]) if literal else None)


def check_resolved_addresses(parsed: ParsedUrl, addresses: list[str], settings: GitSourceSettings) -> None:
    """Refuse a host whose DNS answer holds any loopback, link-local, private or reserved address
    (unless the host is in ``private_hosts``): a public name must not lead git inside.

    :raises SourceRefused: naming the host and the address.
    """
    if not addresses:
        raise SourceRefused(f"host '{parsed.host}' has no addresses")
    for text in addresses:
        address = ipaddress.ip_address(text.split("%", 1)[0])
        _refuse_address(address, parsed.host, f"host '{parsed.host}' resolves to {address}, which", settings)


def shown_url(url: str) -> str:
    """A repository URL as messages may show it: any ``user:password@`` replaced by ``***@``."""
    try:
        parts = urlsplit(str(url))
    except ValueError:
        return "(an unparsable URL)"
    if "@" not in parts.netloc:
        return str(url)
    return urlunsplit(parts._replace(netloc="***@" + parts.netloc.rsplit("@", 1)[1]))
