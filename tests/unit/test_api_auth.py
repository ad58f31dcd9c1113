"""Bearer tokens of the WES front door: real tokens signed and checked by PyJWT, a real JWKS
document served over local HTTP, and the token command run as a process."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import socket
import subprocess
import sys
import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import SimpleNamespace

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from hatchway.api.auth import (
    AuthConfigError,
    AuthSettings,
    Caller,
    TokenVerifier,
    Unauthorized,
    bearer_token,
    issue_token,
    load_settings,
)
from hatchway.domain.names import NameError_

REPO = Path(__file__).resolve().parents[2]
KEY = "local-hs256-key-for-tests-0123456789abcdef"
ISSUER = "https://login.example.org/realms/hatchway"
SETTINGS = AuthSettings(hs256_key=KEY, issuer=ISSUER)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _claims(**changes) -> dict:
    """A valid claim set for workspace alice; a change to None drops that claim."""
    now = datetime.now(timezone.utc)
    claims = {"sub": "alice@example.org", "aud": "hatchway", "iss": ISSUER, "iat": now, "nbf": now,
              "exp": now + timedelta(minutes=5), "scope": "workspace:alice wes:read"}
    claims.update(changes)
    return {name: value for name, value in claims.items() if value is not None}


def _hs256(claims: dict, key: str = KEY) -> str:
    return jwt.encode(claims, key, algorithm="HS256")


def _refusal(token: str, verifier: TokenVerifier | None = None) -> str:
    """The public reason a token is refused for; the message never carries the token or a key."""
    with pytest.raises(Unauthorized) as refused:
        (verifier or TokenVerifier(SETTINGS)).verify(token)
    for text in (str(refused.value), repr(refused.value)):
        assert KEY not in text
        assert not token or token not in text
    return refused.value.reason


# --- HS256: the local key -------------------------------------------------------------------

def test_valid_token_gives_the_caller_and_its_workspace():
    caller = TokenVerifier(SETTINGS).verify(_hs256(_claims()))
    assert caller == Caller(subject="alice@example.org", workspace="alice", scopes=("workspace:alice", "wes:read"))


def test_issued_token_verifies_with_extra_scopes():
    token = issue_token(SETTINGS, workspace="team-7", subject="bob@example.org", extra_scopes=("wes:write",))
    caller = TokenVerifier(SETTINGS).verify(token)
    assert (caller.workspace, caller.subject, caller.scopes) == ("team-7", "bob@example.org",
                                                               ("workspace:team-7", "wes:write"))


def test_clock_skew_within_leeway_is_accepted():
    now = datetime.now(timezone.utc)
    token = _hs256(_claims(iat=now - timedelta(minutes=5), exp=now - timedelta(seconds=10)))
    assert TokenVerifier(SETTINGS).verify(token).workspace == "alice"


def test_expired_token_is_refused():
    issued = datetime.now(timezone.utc) - timedelta(hours=2)
    assert _refusal(issue_token(SETTINGS, workspace="alice", subject="a", now=issued)) == "token expired"


def test_token_not_yet_valid_is_refused():
    later = datetime.now(timezone.utc) + timedelta(minutes=10)
    assert _refusal(_hs256(_claims(nbf=later, iat=None))) == "token not yet valid"
    assert _refusal(issue_token(SETTINGS, workspace="alice", subject="a", now=later)) == "token not yet valid"


@pytest.mark.parametrize(("changes", "reason"), [
    ({"aud": "another-service"}, "wrong audience"),
    ({"aud": ["another-service", "grafana"]}, "wrong audience"),
    ({"iss": "https://evil.example.org"}, "wrong issuer"),
    ({"iss": None}, "missing iss claim"),
    ({"exp": None}, "missing exp claim"),
    ({"sub": None}, "missing sub claim"),
    ({"sub": "  "}, "missing sub claim"),
    ({"sub": 42}, "bad sub claim"),
    ({"aud": None}, "missing aud claim"),
    ({"scope": None}, "no workspace scope"),
    ({"scope": "wes:read workspaces:alice"}, "no workspace scope"),
    ({"scope": "workspace:alice workspace:bob"}, "more than one workspace scope"),
    ({"scope": "workspace:alice", "scp": ["workspace:bob"]}, "more than one workspace scope"),
    ({"scope": 7}, "malformed scope claim"),
    ({"scope": None, "scp": ["workspace:alice", 7]}, "malformed scp claim"),
], ids=lambda value: json.dumps(value) if isinstance(value, dict) else value)
def test_bad_claims_are_refused(changes, reason):
    assert _refusal(_hs256(_claims(**changes))) == reason


@pytest.mark.parametrize(("scope", "rule"), [
    ("workspace:Alice", "lowercase"),
    ("workspace:", "3-32 characters"),
    ("workspace:../admin", "may not contain '.'"),
    ("workspace:al_ice", "only lowercase letters, digits and '-'"),
    ("workspace:1abc", "start with a letter"),
])
def test_bad_workspace_name_in_scope_is_refused_with_the_rule(scope, rule):
    reason = _refusal(_hs256(_claims(scope=scope)))
    assert reason.startswith("bad workspace scope: ") and rule in reason


def test_repeated_identical_workspace_scope_is_one_workspace():
    caller = TokenVerifier(SETTINGS).verify(_hs256(_claims(scope="workspace:alice workspace:alice")))
    assert caller.workspace == "alice" and caller.scopes == ("workspace:alice",)


def test_azure_style_scp_list_gives_the_workspace():
    caller = TokenVerifier(SETTINGS).verify(_hs256(_claims(scope=None, scp=["workspace:alice", "wes.read"])))
    assert (caller.workspace, caller.scopes) == ("alice", ("workspace:alice", "wes.read"))


def test_azure_style_scp_string_gives_the_workspace():
    assert TokenVerifier(SETTINGS).verify(_hs256(_claims(scope=None, scp="wes.read workspace:bob"))).workspace == "bob"


def test_unsigned_token_is_refused():
    payload = json.dumps(_claims(iat=None, nbf=None, exp=int(datetime.now(timezone.utc).timestamp()) + 300))
    for alg in ("none", "None", "NONE"):
        token = f"{_b64(json.dumps({'alg': alg, 'typ': 'JWT'}).encode())}.{_b64(payload.encode())}."
        assert _refusal(token) == "unsigned token"
    no_alg = f"{_b64(b'{}')}.{_b64(payload.encode())}."
    assert _refusal(no_alg) == "unsigned token"


def test_tampered_payload_is_refused():
    header, _, signature = _hs256(_claims(scope="workspace:alice")).split(".")
    _, forged_payload, _ = _hs256(_claims(scope="workspace:bob"), key="x" * 40).split(".")
    assert _refusal(f"{header}.{forged_payload}.{signature}") == "bad signature"


def test_tampered_signature_is_refused():
    header, payload, signature = _hs256(_claims()).split(".")
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    assert _refusal(f"{header}.{payload}.{flipped}") == "bad signature"


def test_token_signed_with_another_key_is_refused():
    assert _refusal(_hs256(_claims(), key="another-key-of-the-same-length-0123456789")) == "bad signature"


@pytest.mark.parametrize("token", ["", "not-a-token", "a.b", "a.b.c", "....", "é.é.é"])
def test_malformed_token_is_refused(token):
    assert _refusal(token) == "malformed token"


def test_rs256_token_is_refused_when_only_hs256_is_trusted():
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    assert _refusal(jwt.encode(_claims(), private, algorithm="RS256")) == "algorithm not allowed"


# --- JWKS: an OIDC provider's public keys ---------------------------------------------------

class _JwksHandler(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        self.server.requests.append(self.path)
        body = json.dumps(self.server.document).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture(scope="module")
def keys():
    return SimpleNamespace(rsa=rsa.generate_private_key(public_exponent=65537, key_size=2048),
                           ec=ec.generate_private_key(ec.SECP256R1()),
                           other_rsa=rsa.generate_private_key(public_exponent=65537, key_size=2048))


@pytest.fixture
def provider(keys):
    """A JWKS endpoint on 127.0.0.1 with an RS256 key (kid rsa-1) and an ES256 key (kid ec-1)."""
    rsa_jwk = jwt.algorithms.RSAAlgorithm.to_jwk(keys.rsa.public_key(), as_dict=True)
    ec_jwk = jwt.algorithms.ECAlgorithm.to_jwk(keys.ec.public_key(), as_dict=True)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _JwksHandler)
    server.requests = []
    server.document = {"keys": [{**rsa_jwk, "kid": "rsa-1", "alg": "RS256", "use": "sig"},
                                {**ec_jwk, "kid": "ec-1", "alg": "ES256", "use": "sig"}]}
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{server.server_address[1]}/realms/hatchway/protocol/openid-connect/certs"
    yield SimpleNamespace(server=server, verifier=TokenVerifier(AuthSettings(jwks_url=url, issuer=ISSUER)))
    server.shutdown()
    server.server_close()
    thread.join()


def test_rs256_token_with_the_providers_kid_gives_the_caller(provider, keys):
    token = jwt.encode(_claims(), keys.rsa, algorithm="RS256", headers={"kid": "rsa-1"})
    assert provider.verifier.verify(token) == Caller("alice@example.org", "alice", ("workspace:alice", "wes:read"))


def test_es256_token_with_the_providers_kid_gives_the_caller(provider, keys):
    token = jwt.encode(_claims(scope="workspace:bob"), keys.ec, algorithm="ES256", headers={"kid": "ec-1"})
    assert provider.verifier.verify(token).workspace == "bob"


def test_key_set_is_fetched_once_for_many_tokens(provider, keys):
    for workspace in ("alice", "bob", "carol"):
        token = jwt.encode(_claims(scope=f"workspace:{workspace}"), keys.rsa, algorithm="RS256",
                           headers={"kid": "rsa-1"})
        assert provider.verifier.verify(token).workspace == workspace
    assert len(provider.server.requests) == 1


def test_hs256_token_signed_with_the_public_key_is_refused(provider, keys):
    # Key confusion: a verifier that let the header pick HMAC would check this signature with
    # the public key (which anyone can fetch) as the secret, and accept it.
    public_pem = keys.rsa.public_key().public_bytes(serialization.Encoding.PEM,
                                                    serialization.PublicFormat.SubjectPublicKeyInfo)
    signing_input = (f"{_b64(json.dumps({'alg': 'HS256', 'typ': 'JWT', 'kid': 'rsa-1'}).encode())}."
                     f"{_b64(json.dumps(_claims(iat=None, nbf=None, exp=2_000_000_000)).encode())}")
    signature = hmac.new(public_pem, signing_input.encode(), hashlib.sha256).digest()
    assert _refusal(f"{signing_input}.{_b64(signature)}", provider.verifier) == "algorithm not allowed"
    assert provider.server.requests == []  # refused before any key is fetched


def test_token_whose_header_names_another_algorithm_than_its_key_is_refused(provider, keys):
    token = jwt.encode(_claims(), keys.rsa, algorithm="PS256", headers={"kid": "rsa-1"})
    assert _refusal(token, provider.verifier) == "algorithm not allowed"


def test_token_signed_by_another_key_under_the_providers_kid_is_refused(provider, keys):
    token = jwt.encode(_claims(), keys.other_rsa, algorithm="RS256", headers={"kid": "rsa-1"})
    assert _refusal(token, provider.verifier) == "bad signature"


def test_unknown_or_missing_kid_is_refused(provider, keys):
    assert _refusal(jwt.encode(_claims(), keys.other_rsa, algorithm="RS256", headers={"kid": "rsa-9"}),
                    provider.verifier) == "unknown signing key"
    assert _refusal(jwt.encode(_claims(), keys.rsa, algorithm="RS256"), provider.verifier) == "token has no key id"


def test_unsigned_token_is_refused_by_the_jwks_verifier(provider):
    header = _b64(json.dumps({"alg": "none", "kid": "rsa-1"}).encode())
    payload = _b64(json.dumps(_claims(iat=None, nbf=None, exp=2_000_000_000)).encode())
    token = f"{header}.{payload}."
    assert _refusal(token, provider.verifier) == "unsigned token"


def test_wrong_audience_is_refused_by_the_jwks_verifier(provider, keys):
    token = jwt.encode(_claims(aud="api://another-app"), keys.rsa, algorithm="RS256", headers={"kid": "rsa-1"})
    assert _refusal(token, provider.verifier) == "wrong audience"


def test_unreachable_jwks_refuses_the_token_without_logging_it(keys, caplog):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    verifier = TokenVerifier(AuthSettings(jwks_url=f"http://127.0.0.1:{port}/certs"))
    token = jwt.encode(_claims(), keys.rsa, algorithm="RS256", headers={"kid": "rsa-1"})
    with caplog.at_level(logging.WARNING, logger="hatchway.api.auth"):
        assert _refusal(token, verifier) == "cannot verify token"
    assert f"127.0.0.1:{port}" in caplog.text and token not in caplog.text


def test_unusable_jwks_document_refuses_the_token(provider, keys):
    provider.server.document = {"keys": []}
    token = jwt.encode(_claims(), keys.rsa, algorithm="RS256", headers={"kid": "rsa-1"})
    assert _refusal(token, provider.verifier) == "cannot verify token"


# --- settings, issuing, the Authorization header --------------------------------------------

def test_settings_need_exactly_one_way_to_trust_tokens():
    with pytest.raises(ValueError, match="exactly one"):
        AuthSettings()
    with pytest.raises(ValueError, match="exactly one"):
        AuthSettings(hs256_key=KEY, jwks_url="https://login.example.org/certs")
    assert AuthSettings(hs256_key=KEY).algorithms == ("HS256",)
    assert AuthSettings(jwks_url="https://login.example.org/certs").algorithms == ("RS256", "ES256", "PS256")
    assert AuthSettings(hs256_key=KEY, issuer=ISSUER).required_claims == ("exp", "aud", "sub", "iss")


def test_settings_refuse_a_short_key_or_a_non_http_jwks_url():
    with pytest.raises(ValueError, match="at least 32 bytes") as short:
        AuthSettings(hs256_key="short-secret")
    assert "short-secret" not in str(short.value)
    with pytest.raises(ValueError, match="http"):
        AuthSettings(jwks_url="file:///etc/passwd")


def test_settings_repr_leaves_the_key_out():
    assert KEY not in repr(SETTINGS) and KEY not in str(SETTINGS)
    assert "hatchway" in repr(SETTINGS)


def test_issue_token_needs_an_hs256_key_and_one_workspace():
    with pytest.raises(ValueError, match="HS256 key"):
        issue_token(AuthSettings(jwks_url="https://login.example.org/certs"), workspace="alice", subject="a")
    with pytest.raises(ValueError, match="one workspace"):
        issue_token(SETTINGS, workspace="alice", subject="a", extra_scopes=("workspace:bob",))
    with pytest.raises(NameError_, match="lowercase"):
        issue_token(SETTINGS, workspace="Alice", subject="a")


@pytest.mark.parametrize(("header", "token"), [("Bearer abc.def.ghi", "abc.def.ghi"),
                                               ("bearer  abc.def.ghi ", "abc.def.ghi")])
def test_bearer_token_is_read_from_the_header(header, token):
    assert bearer_token(header) == token


@pytest.mark.parametrize("header", [None, "", "Bearer", "Bearer ", "Basic dXNlcjpwYXNz", "Bearer a b", "abc.def.ghi"])
def test_missing_or_other_credentials_are_refused(header):
    with pytest.raises(Unauthorized) as refused:
        bearer_token(header)
    assert refused.value.reason == "missing bearer token"


# --- the Airflow connection -----------------------------------------------------------------

def _connection(monkeypatch, password=None, conn_id="HATCHWAY_API", **extra):
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id}",
                       json.dumps({"conn_type": "generic", "password": password, "extra": extra}))


def test_load_settings_reads_the_key_and_extra_of_the_connection(monkeypatch):
    _connection(monkeypatch, password=KEY, audience="wes", issuer=ISSUER, leeway_seconds=5)
    settings = load_settings()
    assert settings == AuthSettings(audience="wes", issuer=ISSUER, hs256_key=KEY, leeway_seconds=5)
    caller = TokenVerifier(settings).verify(issue_token(settings, workspace="alice", subject="a"))
    assert caller.workspace == "alice"


def test_load_settings_reads_a_jwks_connection(monkeypatch):
    _connection(monkeypatch, conn_id="HATCHWAY_OIDC", jwks_url="https://login.example.org/certs", issuer=ISSUER)
    settings = load_settings("hatchway_oidc")
    assert (settings.jwks_url, settings.hs256_key, settings.algorithms) == (
        "https://login.example.org/certs", None, ("RS256", "ES256", "PS256"))


def test_load_settings_names_a_missing_connection(monkeypatch):
    monkeypatch.delenv("AIRFLOW_CONN_HATCHWAY_ABSENT", raising=False)
    with pytest.raises(AuthConfigError, match="'hatchway_absent' is not defined"):
        load_settings("hatchway_absent")


@pytest.mark.parametrize(("password", "extra", "message"), [
    (KEY, {"jwks_url": "https://login.example.org/certs"}, "exactly one"),
    (None, {}, "exactly one"),
    ("too-short-but-secret", {}, "at least 32 bytes"),
    (KEY, {"jwks_uri": "https://login.example.org/certs"}, "unknown extra keys jwks_uri"),
    (KEY, {"leeway_seconds": 3600}, "leeway_seconds"),
])
def test_load_settings_refuses_a_bad_connection_without_showing_the_password(monkeypatch, password, extra, message):
    _connection(monkeypatch, password=password, **extra)
    with pytest.raises(AuthConfigError, match=message) as refused:
        load_settings()
    assert "'hatchway_api'" in str(refused.value)
    if password:
        assert password not in str(refused.value) and password not in repr(refused.value)


# --- the token command ----------------------------------------------------------------------

def _tokens_command(*args: str, conn_id: str = "HATCHWAY_API") -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(["plugins", "."]),
           f"AIRFLOW_CONN_{conn_id}": json.dumps({"conn_type": "generic", "password": KEY,
                                                  "extra": {"issuer": ISSUER}})}
    return subprocess.run([sys.executable, "-m", "hatchway.api.tokens", *args], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)


def test_tokens_command_prints_only_a_token_that_verifies():
    done = _tokens_command("--workspace", "alice", "--subject", "alice@example.org", "--ttl", "600",
                           "--conn-id", "hatchway_demo", conn_id="HATCHWAY_DEMO")
    assert done.returncode == 0, done.stderr
    token = done.stdout.strip()
    assert done.stdout == f"{token}\n"
    caller = TokenVerifier(SETTINGS).verify(token)
    assert (caller.subject, caller.workspace) == ("alice@example.org", "alice")
    lifetime = jwt.decode(token, options={"verify_signature": False})
    assert lifetime["exp"] - lifetime["iat"] == 600


def test_tokens_command_refuses_a_bad_workspace_name_with_the_rule():
    done = _tokens_command("--workspace", "Alice_1", "--subject", "alice@example.org")
    assert done.returncode == 2
    assert done.stdout == ""
    assert "workspace name must be lowercase" in done.stderr
