"""Git repositories served over plain HTTP on 127.0.0.1, the way a static web server would.

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


class GitHttpServer:
    """Bare repositories under a temp directory, served on ``http://127.0.0.1:<port>/<name>.git``."""

    def __init__(self) -> None:
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
        self._thread = threading.Thread(target=self._httpd.serve_forever, name="git-http", daemon=True)
        self._thread.start()

    def url(self, name: str) -> str:
        return f"http://127.0.0.1:{self.port}/{name}.git"

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
