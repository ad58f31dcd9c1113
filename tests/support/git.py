"""Git repositories served over HTTP (or HTTPS with a CA of the test's own) on 127.0.0.1, the
way a static web server would.

Bare repositories after ``git update-server-info``: git's dumb HTTP protocol, no git on the
server side. Commits are made in a working clone beside each bare repository and pushed, with
an identity from the environment, never the user's configuration.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import subprocess
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Symlink:
    """A file committed as a symbolic link to ``target``."""

    target: str


FileContent = str | bytes | Symlink


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args) -> None:  # noqa: A002 (the base class's name)
        pass


class _QuietServer(http.server.ThreadingHTTPServer):
    def handle_error(self, request, client_address) -> None:
        pass  # git hung up mid-transfer: the size-limit tests do exactly that


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 that is its own CA, and its key (PEM files)."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "hatchway test git server")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(key, hashes.SHA256()))
    cert_path, key_path = folder / "ca.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    return cert_path, key_path


class GitHttpServer:
    """Bare repositories under a temp directory, served on ``http://127.0.0.1:<port>/<name>.git``.

    :param tls: serve ``https://`` with a self-signed certificate; :attr:`ca_file` is the PEM a
        client must trust (git: ``http.sslCAInfo``).
    """

    def __init__(self, tls: bool = False) -> None:
        self._tmp = Path(tempfile.mkdtemp(prefix="hatchway-git-server-"))
        self.root = self._tmp / "served"
        self._work = self._tmp / "work"
        self.root.mkdir()
        self._work.mkdir()
        (self._tmp / "home").mkdir()
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self._tmp / "home"),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_AUTHOR_NAME": "Hatchway Tests",
            "GIT_AUTHOR_EMAIL": "tests@hatchway.invalid",
            "GIT_COMMITTER_NAME": "Hatchway Tests",
            "GIT_COMMITTER_EMAIL": "tests@hatchway.invalid",
            "LC_ALL": "C",
        }
        handler = functools.partial(_QuietHandler, directory=str(self.root))
        self._httpd = _QuietServer(("127.0.0.1", 0), handler)
        self.port = self._httpd.server_address[1]
        self.scheme, self.ca_file = "http", None
        if tls:
            import ssl

            self.ca_file, key_file = _self_signed(self._tmp)
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(self.ca_file, key_file)
            self._httpd.socket = context.wrap_socket(self._httpd.socket, server_side=True)
            self.scheme = "https"
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="git-http", daemon=True)
        self._thread.start()

    def url(self, name: str) -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}/{name}.git"

    def _git(self, *args: str, cwd: Path) -> str:
        done = subprocess.run(["git", *args], cwd=cwd, env=self.env, check=True, capture_output=True, text=True)
        return done.stdout.strip()

    def create(self, name: str, files: dict[str, FileContent], tag: str | None = None, branch: str = "main") -> str:
        """A new repository holding ``files`` in one commit on ``branch`` (and an annotated
        ``tag`` on it); returns its URL."""
        bare = self.root / f"{name}.git"
        self._git("init", "--quiet", "--bare", str(bare), cwd=self._tmp)
        self._git("init", "--quiet", "-b", branch, str(self._work / name), cwd=self._tmp)
        self.commit(name, files, "first commit", branch=branch, tag=tag)
        return self.url(name)

    def commit(self, name: str, files: dict[str, FileContent], message: str, branch: str = "main",
               tag: str | None = None) -> str:
        """Write ``files`` on ``branch`` (created from the current one if new), commit, push,
        refresh the dumb protocol's index; returns the commit's SHA."""
        work = self._work / name
        if self._git("symbolic-ref", "--short", "HEAD", cwd=work) != branch:
            exists = self._git("branch", "--list", branch, cwd=work)
            self._git("checkout", "--quiet", *(() if exists else ("-b",)), branch, cwd=work)
        for path, content in files.items():
            target = work / path
            target.parent.mkdir(parents=True, exist_ok=True)
            if target.is_symlink() or target.exists():
                target.unlink()
            if isinstance(content, Symlink):
                target.symlink_to(content.target)
            elif isinstance(content, bytes):
                target.write_bytes(content)
            else:
                target.write_text(content)
        self._git("add", "--all", cwd=work)
        self._git("commit", "--quiet", "--allow-empty", "-m", message, cwd=work)
        if tag:
            self._git("tag", "--annotate", "-m", f"tag {tag}", tag, cwd=work)
        self._git("push", "--quiet", "--force", "--tags", str(self.root / f"{name}.git"), branch, cwd=work)
        self._git("update-server-info", cwd=self.root / f"{name}.git")
        return self._git("rev-parse", "HEAD", cwd=work)

    def rev_parse(self, name: str, rev: str) -> str:
        """The commit ``rev`` (a branch, a tag) names in the served repository."""
        return self._git("rev-parse", f"{rev}^{{commit}}", cwd=self.root / f"{name}.git")

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        self._thread.join(timeout=5)
        shutil.rmtree(self._tmp, ignore_errors=True)
