"""Bearer-token authentication of the WES front door.

The door's routes live in Airflow's api-server but not behind Airflow's auth, so every request
proves itself with a JWT carrying exactly one ``workspace:<name>`` scope: the workspace it acts
for. The Airflow connection (default ``hatchway_api``) says which tokens to trust:

- ``extra.jwks_url`` (production): the OIDC provider (Keycloak, Azure AD) signs with RS256,
  ES256 or PS256, and its public keys come from the JWKS URL, picked by the token's ``kid``;
- ``password`` (local): an HS256 key shared with ``python -m hatchway.api.tokens``, which
  issues demo tokens.

Exactly one of the two is set. A verifier that took both HMAC and public-key algorithms would
accept an HS256 token whose secret is the provider's *public* key (key confusion), so the
algorithms allowed follow from the kind of key, never from the token's header.

``extra`` also holds ``audience`` (default ``hatchway``), ``issuer`` (checked when set) and
``leeway_seconds`` (clock skew allowed, default 30).

A refused token raises :class:`Unauthorized` with a short public reason. No message, repr or log
line carries the token or any key material.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any
from urllib.parse import urlparse

import jwt
from jwt.exceptions import InvalidSubjectError

from hatchway.domain.access import SCOPE_PREFIX as WORKSPACE_SCOPE_PREFIX
from hatchway.domain.access import ManyWorkspaceScopes, NoWorkspaceScope, ScopeError, calling_workspace
from hatchway.domain.names import check_workspace_name

log = logging.getLogger(__name__)

API_CONN_ID = "hatchway_api"
HMAC_ALGORITHMS = ("HS256",)
PUBLIC_KEY_ALGORITHMS = ("RS256", "ES256", "PS256")
REQUIRED_CLAIMS = ("exp", "aud", "sub")
MIN_HS256_KEY_BYTES = 32  # RFC 7518 section 3.2: an HS256 key is at least as long as its hash
MAX_LEEWAY_SECONDS = 300
JWKS_CACHE_SECONDS = 300
JWKS_TIMEOUT_SECONDS = 10  # a request waits on the fetch: PyJWT's default of 30 s is too long
_EXTRA_KEYS = ("audience", "issuer", "jwks_url", "leeway_seconds")


class AuthConfigError(ValueError):
    """The connection cannot configure token checks; the message names it, never its password."""


class Unauthorized(Exception):
    """A request's credentials are refused (HTTP 401).

    :param reason: short and public: safe to return to the caller, never quotes the token.
    """

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class AuthSettings:
    """How the front door trusts a bearer token; ``repr`` leaves the HS256 key out.

    :param audience: the ``aud`` every token must name.
    :param issuer: the ``iss`` every token must carry; None: not checked.
    :param hs256_key: shared HMAC key, for local use; excludes ``jwks_url``.
    :param jwks_url: the OIDC provider's JWKS URL, for production; excludes ``hs256_key``.
    :param leeway_seconds: clock skew allowed on ``exp``, ``nbf`` and ``iat``.
    """

    audience: str = "hatchway"
    issuer: str | None = None
    hs256_key: str | None = field(default=None, repr=False)
    jwks_url: str | None = None
    leeway_seconds: int = 30

    def __post_init__(self) -> None:
        if not isinstance(self.audience, str) or not self.audience:
            raise ValueError("audience must be a non-empty string")
        if self.issuer is not None and (not isinstance(self.issuer, str) or not self.issuer):
            raise ValueError("issuer must be a non-empty string when set")
        if bool(self.hs256_key) == bool(self.jwks_url):
            raise ValueError("set exactly one of an HS256 key (local tokens) or a JWKS URL (an OIDC provider)")
        if self.hs256_key and len(self.hs256_key.encode()) < MIN_HS256_KEY_BYTES:
            raise ValueError(f"the HS256 key must be at least {MIN_HS256_KEY_BYTES} bytes long")
        if self.jwks_url:
            url = urlparse(self.jwks_url)
            if url.scheme not in ("http", "https") or not url.netloc:
                raise ValueError(f"jwks_url must be an http(s) URL (got {self.jwks_url!r})")
        if (isinstance(self.leeway_seconds, bool) or not isinstance(self.leeway_seconds, int)
                or not 0 <= self.leeway_seconds <= MAX_LEEWAY_SECONDS):
            raise ValueError(f"leeway_seconds must be an integer from 0 to {MAX_LEEWAY_SECONDS}")

    @property
    def algorithms(self) -> tuple[str, ...]:
        return HMAC_ALGORITHMS if self.hs256_key else PUBLIC_KEY_ALGORITHMS

    @property
    def required_claims(self) -> tuple[str, ...]:
        return REQUIRED_CLAIMS + (("iss",) if self.issuer else ())


def load_settings(conn_id: str = API_CONN_ID) -> AuthSettings:
    """Read :class:`AuthSettings` from an Airflow connection (env ``AIRFLOW_CONN_<ID>``, a secrets
    backend or the metadata DB): ``password`` is the HS256 key, ``extra`` holds ``audience``,
    ``issuer``, ``jwks_url`` and ``leeway_seconds``.

    :raises AuthConfigError: the connection is missing or does not make valid settings.
    """
    from airflow.exceptions import AirflowNotFoundException
    from airflow.models.connection import Connection

    try:
        conn = Connection.get_connection_from_secrets(conn_id)
    except AirflowNotFoundException:
        raise AuthConfigError(
            f"connection {conn_id!r} is not defined: set its password to an HS256 key "
            "or its extra 'jwks_url' to the OIDC provider's JWKS URL") from None
    # extra_dejson would log and swallow a JSON error, leaving silent defaults: parse it here.
    try:
        extra: Any = json.loads(conn.extra) if conn.extra else {}
    except json.JSONDecodeError:
        raise AuthConfigError(f"connection {conn_id!r}: extra is not valid JSON") from None
    if not isinstance(extra, dict):
        raise AuthConfigError(f"connection {conn_id!r}: extra must be a JSON object")
    unknown = sorted(set(extra) - set(_EXTRA_KEYS))
    if unknown:  # a misspelt 'jwks_uri' must not fall back to another way of trusting tokens
        raise AuthConfigError(
            f"connection {conn_id!r}: unknown extra keys {', '.join(unknown)} (known: {', '.join(_EXTRA_KEYS)})")
    try:
        return AuthSettings(
            audience=extra.get("audience", AuthSettings.audience),
            issuer=extra.get("issuer") or None,
            hs256_key=conn.password or None,
            jwks_url=extra.get("jwks_url") or None,
            leeway_seconds=extra.get("leeway_seconds", AuthSettings.leeway_seconds),
        )
    except ValueError as exc:
        raise AuthConfigError(f"connection {conn_id!r}: {exc}") from None


@dataclass(frozen=True)
class Caller:
    """Who a verified token speaks for.

    :param subject: the token's ``sub``: the person or service calling.
    :param workspace: the one workspace named by its ``workspace:<name>`` scope.
    :param scopes: every scope of the token, in order, without duplicates.
    """

    subject: str
    workspace: str
    scopes: tuple[str, ...]


def bearer_token(authorization_header: str | None) -> str:
    """The token of an ``Authorization: Bearer <token>`` header (the scheme is case-insensitive).

    :raises Unauthorized: the header is missing or is not a bearer credential.
    """
    parts = (authorization_header or "").split()
    if len(parts) != 2 or parts[0].lower() != "bearer":
        raise Unauthorized("missing bearer token")
    return parts[1]


class TokenVerifier:
    """Checks bearer tokens against one :class:`AuthSettings`.

    Keep one per process: it caches the provider's key set for five minutes. The JWKS fetch is
    blocking, so call :meth:`verify` from a thread (a plain ``def`` FastAPI dependency), not
    from the event loop.

    :param settings: what to trust.
    """

    def __init__(self, settings: AuthSettings):
        self.settings = settings
        # Only the key set is cached, for a bounded time: PyJWKClient's per-kid cache
        # (cache_keys=True) never expires, so a key the provider withdrew would stay trusted
        # until a restart. An unknown kid forces at most one refetch per cooldown (30 s).
        self._jwks = (jwt.PyJWKClient(settings.jwks_url, cache_keys=False, lifespan=JWKS_CACHE_SECONDS,
                                      timeout=JWKS_TIMEOUT_SECONDS)
                      if settings.jwks_url else None)

    def verify(self, token: str) -> Caller:
        """The :class:`Caller` a token speaks for.

        :raises Unauthorized: the token is malformed, unsigned, signed with an algorithm or key
            not trusted, expired or not yet valid, for another audience or issuer, or lacks a
            subject or exactly one valid ``workspace:<name>`` scope.
        """
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise Unauthorized("malformed token") from None
        alg = header.get("alg")
        if not isinstance(alg, str) or alg.lower() == "none":
            raise Unauthorized("unsigned token")
        if alg not in self.settings.algorithms:
            raise Unauthorized("algorithm not allowed")
        key = self._key(header)
        try:
            claims = jwt.decode(
                token, key,
                algorithms=list(self.settings.algorithms),
                audience=self.settings.audience,
                issuer=self.settings.issuer,
                leeway=self.settings.leeway_seconds,
                options={"require": list(self.settings.required_claims)},
            )
        except jwt.PyJWTError as exc:
            raise Unauthorized(_reason(exc)) from None
        subject = claims["sub"]
        if not subject.strip():
            raise Unauthorized("missing sub claim")
        scopes = _scopes(claims)
        return Caller(subject=subject, workspace=_workspace_from_scopes(scopes), scopes=scopes)

    def _key(self, header: dict[str, Any]) -> str | jwt.PyJWK:
        if self._jwks is None:
            return self.settings.hs256_key
        kid = header.get("kid")
        if not isinstance(kid, str) or not kid:
            raise Unauthorized("token has no key id")
        try:
            self._jwks.get_signing_keys()  # a key set we cannot read is our failure, not the caller's
        except (jwt.PyJWKClientError, jwt.PyJWKSetError, ValueError) as exc:
            log.warning("cannot use the JWKS at %s: %s", self.settings.jwks_url, exc)
            raise Unauthorized("cannot verify token") from None
        try:
            signing_key = self._jwks.get_signing_key(kid)
        except jwt.PyJWKClientConnectionError as exc:
            log.warning("cannot use the JWKS at %s: %s", self.settings.jwks_url, exc)
            raise Unauthorized("cannot verify token") from None
        except (jwt.PyJWKClientError, jwt.PyJWKSetError, ValueError):
            raise Unauthorized("unknown signing key") from None
        # The key's own algorithm is the one that verifies: PyJWT refuses a token header naming
        # another, and an unexpected key type (an 'oct' key in the set) is refused here.
        if signing_key.algorithm_name not in self.settings.algorithms:
            raise Unauthorized("algorithm not allowed")
        return signing_key


def issue_token(settings: AuthSettings, *, workspace: str, subject: str, ttl_seconds: int = 3600,
                extra_scopes: Iterable[str] = (), now: datetime | None = None) -> str:
    """An HS256 token for ``workspace``, for local use and the demo.

    :param settings: must hold an HS256 key (with a JWKS URL, the provider issues tokens).
    :param workspace: the workspace the token acts for; checked against the name rule.
    :param subject: the ``sub`` claim.
    :param ttl_seconds: lifetime from ``now``.
    :param extra_scopes: more scopes, after ``workspace:<name>``; no other workspace scope.
    :param now: issue time (default: the current time), for tests.
    :raises ValueError: no HS256 key, or a bad workspace, subject, lifetime or scope.
    """
    if not settings.hs256_key:
        raise ValueError("issuing tokens needs an HS256 key; with a JWKS URL the OIDC provider issues them")
    check_workspace_name(workspace)
    if not isinstance(subject, str) or not subject.strip():
        raise ValueError("subject must be a non-empty string")
    if isinstance(ttl_seconds, bool) or not isinstance(ttl_seconds, int) or ttl_seconds <= 0:
        raise ValueError("ttl_seconds must be a positive integer")
    scopes = [f"{WORKSPACE_SCOPE_PREFIX}{workspace}"]
    for scope in extra_scopes:
        if not scope or scope.split() != [scope]:
            raise ValueError(f"scope {scope!r} must be one word")
        if scope.startswith(WORKSPACE_SCOPE_PREFIX):
            raise ValueError("a token names one workspace: pass it as workspace, not in extra_scopes")
        scopes.append(scope)
    issued = now or datetime.now(timezone.utc)
    claims: dict[str, Any] = {
        "sub": subject,
        "aud": settings.audience,
        "iat": issued,
        "nbf": issued,
        "exp": issued + timedelta(seconds=ttl_seconds),
        "scope": " ".join(scopes),
    }
    if settings.issuer:
        claims["iss"] = settings.issuer
    return jwt.encode(claims, settings.hs256_key, algorithm="HS256")


def _scopes(claims: dict[str, Any]) -> tuple[str, ...]:
    """Scopes of ``scope`` (OAuth: one space-separated string) and ``scp`` (Azure AD: a list, or
    a string like ``scope``)."""
    scopes: list[str] = []
    for name in ("scope", "scp"):
        value = claims.get(name)
        if value is None:
            continue
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
            raise Unauthorized(f"malformed {name} claim")
        scopes.extend(word for item in value for word in item.split())
    return tuple(dict.fromkeys(scopes))


def _workspace_from_scopes(scopes: Iterable[str]) -> str:
    """The one workspace a token's ``workspace:<name>`` scope names (rules: :func:`calling_workspace`)."""
    try:
        return calling_workspace(list(scopes))
    except (NoWorkspaceScope, ManyWorkspaceScopes) as exc:
        raise Unauthorized(exc.reason) from None
    except ScopeError as exc:
        raise Unauthorized(f"bad workspace scope: {str(exc).split(': ', 1)[-1]}") from None


_REASONS: tuple[tuple[type[Exception], str], ...] = (
    (jwt.ExpiredSignatureError, "token expired"),
    (jwt.ImmatureSignatureError, "token not yet valid"),
    (jwt.InvalidAudienceError, "wrong audience"),
    (jwt.InvalidIssuerError, "wrong issuer"),
    (jwt.InvalidAlgorithmError, "algorithm not allowed"),
    (jwt.InvalidSignatureError, "bad signature"),
    (jwt.InvalidIssuedAtError, "bad iat claim"),
    (InvalidSubjectError, "bad sub claim"),
    (jwt.DecodeError, "malformed token"),
)


def _reason(exc: jwt.PyJWTError) -> str:
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return f"missing {exc.claim} claim"
    return next((reason for kind, reason in _REASONS if isinstance(exc, kind)), "invalid token")
