"""A WDL workflow from git: fetched at a ref, pinned to its commit, validated offline, packaged.

:func:`fetch` is the one entry point. In order, and before anything reaches Cromwell:

1. the URL passes :func:`hatchway.domain.wdl.check_repo_url` (scheme, credentials, host, IP forms);
2. the host's DNS answer passes :func:`hatchway.domain.wdl.check_resolved_addresses`, and git's
   resolver (curl's) is pinned to exactly those addresses with ``http.curloptResolve``, so a
   second, different answer (DNS rebinding) does not reach git. The pin does not hold when an
   ``https_proxy`` is set: the proxy resolves the name, and egress control is then the proxy's;
3. ``git ls-remote`` turns the ref into a commit, git fetches that commit into a fresh repository
   with a locked-down environment (no user or system config, no prompts, no credential helpers,
   no hooks, no submodules, no redirects, only the allowed protocols, a deadline, a size limit
   watched while git writes), checks it out detached and proves ``HEAD`` is that commit;
4. miniwdl loads the main WDL offline: imports are read only from inside the checkout (symbolic
   links resolved), never from a URL, then everything is typechecked;
5. the imports are zipped for Cromwell's ``workflowDependencies``, where the main workflow's
   imports resolve against the zip's root and nested ones against the importing file. Imports
   from above the main WDL's folder move under ``__outside_wdl/`` (miniwdl's ``WDL.Zip``
   convention) and the import statements that name them are rewritten, on the same lines, so line
   numbers still match the repository. The zip is then unpacked alone and validated again: the
   proof that Cromwell will resolve every import inside it.

Blocking (git, miniwdl's own event loop): call it from a worker thread in async code.
"""

from __future__ import annotations

import ast
import io
import os
import posixpath
import re
import signal
import socket
import subprocess
import tempfile
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

import WDL

from hatchway.domain.wdl import (
    COMMIT_SHA,
    GitSourceSettings,
    ParsedUrl,
    SourceRefused,
    WdlError,
    WdlInvalid,
    WorkflowSourceRequest,
    check_repo_url,
    check_resolved_addresses,
)

__all__ = ["FetchedSource", "SourceRefused", "WdlError", "WdlInvalid", "WorkflowPackage", "fetch",
           "package_workflow"]

OUTSIDE_DIR = "__outside_wdl"  # WDL.Zip's folder for imports from above the main WDL's
_ZIP_TIME = (1980, 1, 1, 0, 0, 0)  # fixed, so the same commit gives the same bytes
_URL_IMPORT = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")
# What git may see of the worker's environment: a path to find itself, and the network's
# proxy and CA settings. Nothing else (no HOME, no GIT_*, no askpass, no ssh agent).
_PASSTHROUGH_ENV = ("PATH", "http_proxy", "https_proxy", "no_proxy", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY",
                    "SSL_CERT_FILE", "SSL_CERT_DIR", "GIT_SSL_CAINFO")
_DUMB_NO_SHALLOW = "dumb http transport does not support shallow"
_POLL_SECONDS = 0.1


@dataclass(frozen=True, kw_only=True)
class WorkflowPackage:
    """A main WDL and its imports, validated, as Cromwell takes them.

    :param path: the main WDL's path inside the repository.
    :param workflow_source: the main WDL to submit as ``workflowSource`` (its import statements
        rewritten only when an import sits above its folder).
    :param dependencies_zip: the imports for ``workflowDependencies``; None when there are none.
    :param workflow_name: the workflow's name.
    :param wdl_version: the declared WDL version, e.g. ``"1.0"`` (``"draft-2"`` when none).
    :param imports: every imported file, directly or not, by its path in the repository.
    :param inputs: input name -> WDL type (``"String?"`` for optional ones), named as in an inputs
        JSON after the ``<workflow_name>.`` prefix (call inputs as ``call.input``).
    :param outputs: output name -> WDL type.
    """

    path: str
    workflow_source: str
    dependencies_zip: bytes | None
    workflow_name: str
    wdl_version: str
    imports: list[str]
    inputs: dict[str, str]
    outputs: dict[str, str]


@dataclass(frozen=True, kw_only=True)
class FetchedSource(WorkflowPackage):
    """A :class:`WorkflowPackage` and where it came from.

    :param repo: the repository URL, normalised (the form git was given).
    :param ref: the ref asked for.
    :param commit: the 40-hex commit the ref resolved to and that was checked out: what ran.
    """

    repo: str
    ref: str
    commit: str


def fetch(request: WorkflowSourceRequest, dest_dir: str | os.PathLike[str],
          settings: GitSourceSettings) -> FetchedSource:
    """Fetch ``request.path`` from ``request.repo`` at ``request.ref`` into ``dest_dir``, pin the
    commit, validate the workflow offline and package its imports.

    :param request: repository, ref and main WDL path.
    :param dest_dir: an empty (or missing) directory for the checkout; the caller removes it.
    :param settings: the deployment's hosts, schemes and limits.
    :raises SourceRefused: the URL, host, ref, size, time or an import is refused; the reason says why.
    :raises WdlInvalid: (a :class:`SourceRefused`) the workflow has syntax or type errors.
    """
    parsed = check_repo_url(request.repo, settings)
    addresses = _resolve(parsed, settings)
    dest = Path(dest_dir)
    dest.mkdir(parents=True, exist_ok=True)
    if any(dest.iterdir()):
        raise ValueError(f"{dest} is not empty: fetch checks out into a fresh directory")
    with tempfile.TemporaryDirectory(prefix="hatchway-git-") as home:
        git = _Git(parsed, addresses, settings, Path(home), dest)
        commit, refname = _resolve_ref(request.ref, git.ls_remote(), parsed.url)
        git.checkout(commit, refname, request.ref)
    main = dest / request.path
    if not os.path.lexists(main):
        raise SourceRefused(f"'{request.path}' is not in {parsed.url} at {request.ref} ({commit[:12]})")
    package = package_workflow(dest, request.path)
    return FetchedSource(repo=parsed.url, ref=request.ref, commit=commit, **vars(package))


# -- validation and packaging ---------------------------------------------------------------


def package_workflow(root: str | os.PathLike[str], path: str) -> WorkflowPackage:
    """Validate ``path`` inside the checkout ``root`` with miniwdl, offline, and zip its imports.

    :raises SourceRefused: an import is a URL, absolute, outside ``root`` (symbolic links
        followed), or not UTF-8.
    :raises WdlInvalid: syntax or type errors, each at its file, line and column.
    """
    root_real = os.path.realpath(root)
    doc = _load(root_real, path)
    if doc.workflow is None:
        raise WdlInvalid([WdlError(path, 1, 1, "this file declares no workflow (only tasks or structs); "
                                               "Cromwell runs a workflow")])
    docs = _documents(doc, root_real)
    imports = sorted(rel for rel in docs if rel != path)
    workflow_source, zip_bytes = _package(doc, docs, path, root_real)
    if zip_bytes is not None:
        _revalidate(workflow_source, zip_bytes, posixpath.basename(path))
    return WorkflowPackage(
        path=path,
        workflow_source=workflow_source,
        dependencies_zip=zip_bytes,
        workflow_name=doc.workflow.name,
        wdl_version=doc.wdl_version or "draft-2",
        imports=imports,
        inputs={b.name: str(b.value.type) for b in doc.workflow.available_inputs},
        outputs={b.name: str(b.value) for b in doc.workflow.effective_outputs},
    )


class _MissingImport(Exception):
    """An import names no file; reported at the import statement."""


def _rel(abspath: str, root: str) -> str:
    return os.path.relpath(abspath, root).replace(os.sep, "/")


def _within(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip("/") + "/")


class _RepoReader:
    """miniwdl's ``read_source``, confined to one directory: relative imports only, no URLs,
    nothing that resolves (through symbolic links too) outside the root or into ``.git``."""

    def __init__(self, root: str) -> None:
        self.root = root

    def rel(self, abspath: str) -> str:
        return _rel(abspath, self.root)

    def _refuse(self, importer: WDL.Tree.Document | None, uri: str, why: str) -> SourceRefused:
        if importer is None:
            return SourceRefused(f"'{self.rel(uri)}' {why}")
        line = next((i.pos.line for i in importer.imports if i.uri == uri), importer.pos.line)
        return SourceRefused(f'{self.rel(importer.pos.abspath)}:{line}: import "{uri}" {why}')

    async def __call__(self, uri: str, path: list[str], importer: WDL.Tree.Document | None) -> WDL.ReadSourceResult:
        if importer is None:
            abspath = uri  # the main WDL, named by package_workflow itself
        else:
            if _URL_IMPORT.match(uri):
                raise self._refuse(importer, uri, "is a URL; workflows are validated offline and may import only "
                                                  "files of their own repository: copy it into the repository and "
                                                  "import it by relative path")
            if uri.startswith("/"):
                raise self._refuse(importer, uri, "is an absolute path; import files of the repository by a path "
                                                  "relative to the importing file")
            abspath = os.path.normpath(os.path.join(os.path.dirname(importer.pos.abspath), uri))
            if not _within(abspath, self.root):
                raise self._refuse(importer, uri, "leads outside the repository")
        real = os.path.realpath(abspath)
        if not _within(real, self.root):
            raise self._refuse(importer, uri, "is a symbolic link leading outside the repository")
        if ".git" in self.rel(real).split("/"):
            raise self._refuse(importer, uri, "points into git's own '.git' directory")
        if not os.path.isfile(real):
            if importer is None:
                raise self._refuse(None, uri, "is not a file in the repository")
            what = "is a directory" if os.path.isdir(real) else "names no file in the repository"
            raise _MissingImport(f'import "{uri}" {what} (looked for {self.rel(abspath)})')
        try:
            text = Path(real).read_bytes().decode("utf-8")
        except UnicodeDecodeError:
            raise self._refuse(importer, uri, "is not UTF-8 text") from None
        # The logical path, not the link's target: nested imports resolve from where the file
        # appears, as they will in the zip.
        return WDL.ReadSourceResult(source_text=text, abspath=abspath)


def _load(root: str, path: str) -> WDL.Tree.Document:
    reader = _RepoReader(root)
    main = os.path.join(root, path)
    try:
        return WDL.load(main, read_source=reader)
    except (WDL.Error.SyntaxError, WDL.Error.ValidationError, WDL.Error.MultipleValidationErrors,
            WDL.Error.ImportError) as exn:
        raise _invalid(exn, reader) from None


def _invalid(exn: BaseException, reader: _RepoReader) -> SourceRefused:
    """The refusal or the :class:`WdlInvalid` an error of ``WDL.load`` stands for; an import's
    failure is reported where it happened, not at the import statement that led there."""
    outer: WDL.Error.ImportError | None = None
    while isinstance(exn, WDL.Error.ImportError) and exn.__cause__ is not None:
        outer, exn = exn, exn.__cause__
    if isinstance(exn, SourceRefused):
        return exn
    if isinstance(exn, WDL.Error.MultipleValidationErrors):
        return WdlInvalid([_error(e, reader) for e in exn.exceptions])
    if isinstance(exn, (WDL.Error.SyntaxError, WDL.Error.ValidationError, WDL.Error.ImportError)):
        return WdlInvalid([_error(exn, reader)])
    # Anything else came from reading an import: report it at the import statement.
    pos = outer.pos if outer is not None else exn.pos  # type: ignore[attr-defined]
    message = str(exn) if isinstance(exn, _MissingImport) else f"cannot import: {exn}"
    return WdlInvalid([WdlError(reader.rel(pos.abspath), pos.line, pos.column, message)])


def _error(exn: BaseException, reader: _RepoReader) -> WdlError:
    pos = exn.pos  # type: ignore[attr-defined]
    message = str(exn)
    if isinstance(exn, WDL.Error.SyntaxError):
        message = _syntax_message(message)
    message = " ".join(message.split())
    return WdlError(reader.rel(pos.abspath), max(pos.line, 1), max(pos.column, 1), message)


def _syntax_message(message: str) -> str:
    """lark's report, first line, in words: ``Unexpected token Token('RBRACE', '}') at line 4,
    column 1.`` becomes ``syntax error: unexpected '}'``."""
    first = message.strip().splitlines()[0] if message.strip() else "syntax error"
    first = re.sub(r",? at line \d+,? col(umn)? \d+\.?$", "", first)
    token = re.match(r"Unexpected token Token\('[^']*', (.*)\)$", first)
    if token:
        try:
            text = str(ast.literal_eval(token.group(1))).strip()
        except (ValueError, SyntaxError):
            text = token.group(1)
        return f"syntax error: unexpected {text!r}" if text else "syntax error: unexpected end of input"
    return first if first.lower().startswith(("syntax", "unknown wdl version")) else f"syntax error: {first}"


def _documents(top: WDL.Tree.Document, root: str) -> dict[str, WDL.Tree.Document]:
    """Every document loaded, keyed by its path in the repository."""
    docs: dict[str, WDL.Tree.Document] = {}
    queue = [top]
    while queue:
        doc = queue.pop()
        rel = _rel(doc.pos.abspath, root)
        if rel not in docs:
            docs[rel] = doc
            queue.extend(i.doc for i in doc.imports if i.doc is not None)
    return docs


def _zip_path(rel: str, main_dir: str) -> str:
    inside = posixpath.relpath(rel, main_dir or ".")
    return f"{OUTSIDE_DIR}/{rel}" if inside == ".." or inside.startswith("../") else inside


def _package(top: WDL.Tree.Document, docs: dict[str, WDL.Tree.Document], path: str,
             root: str) -> tuple[str, bytes | None]:
    """The main source to submit and the zip of its imports (None without imports)."""
    main_dir = posixpath.dirname(path)
    zip_of = {rel: _zip_path(rel, main_dir) for rel in docs}
    zip_of[path] = posixpath.basename(path)  # submitted beside the zip, at its root
    clash = {z for z in zip_of.values() if list(zip_of.values()).count(z) > 1}
    if clash:
        raise SourceRefused(f"imports would land on the same path in the dependencies zip ({', '.join(sorted(clash))}); "
                            f"rename the repository's '{OUTSIDE_DIR}' folder")
    sources = {rel: _rewrite_imports(doc, rel, zip_of, root) for rel, doc in docs.items()}
    if len(docs) == 1:
        return sources[path], None
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for rel in sorted(docs, key=lambda r: zip_of[r]):
            if rel == path:
                continue
            info = zipfile.ZipInfo(zip_of[rel], date_time=_ZIP_TIME)
            info.external_attr = 0o644 << 16
            info.compress_type = zipfile.ZIP_DEFLATED
            archive.writestr(info, sources[rel].encode("utf-8"))
    return sources[path], buffer.getvalue()


def _rewrite_imports(doc: WDL.Tree.Document, rel: str, zip_of: dict[str, str], root: str) -> str:
    """The document's source with every import naming its file's place in the zip, relative to
    the document's own place there. Only the quoted path changes: lines stay where they were."""
    lines = doc.source_text.split("\n")
    here = posixpath.dirname(zip_of[rel]) or "."
    for imp in doc.imports:
        target = zip_of[_rel(imp.doc.pos.abspath, root)]
        new_uri = posixpath.relpath(target, here)
        if new_uri == imp.uri:
            continue
        for number in range(imp.pos.line - 1, imp.pos.end_line):
            start = imp.pos.column - 1 if number == imp.pos.line - 1 else 0
            line = lines[number]
            hits = [(line.find(q + imp.uri + q, start), q) for q in ('"', "'")]
            hits = [(at, q) for at, q in hits if at >= 0]
            if hits:
                at, quote = min(hits)
                old = quote + imp.uri + quote
                lines[number] = line[:at] + quote + new_uri + quote + line[at + len(old):]
                break
        else:
            raise SourceRefused(f'{rel}:{imp.pos.line}: import "{imp.uri}" must be rewritten for the dependencies '
                                "zip but is not written as a plain quoted path; write it without escapes")
    return "\n".join(lines)


def _revalidate(workflow_source: str, zip_bytes: bytes, main_name: str) -> None:
    """Load the submitted source against the zip alone, as Cromwell will see them."""
    with tempfile.TemporaryDirectory(prefix="hatchway-wdl-zip-") as tmp:
        with zipfile.ZipFile(io.BytesIO(zip_bytes)) as archive:
            archive.extractall(tmp)
        Path(tmp, main_name).write_text(workflow_source, encoding="utf-8")
        try:
            _load(os.path.realpath(tmp), main_name)
        except SourceRefused as exn:
            raise RuntimeError(f"the dependencies zip does not validate on its own: {exn}") from exn


# -- git ------------------------------------------------------------------------------------


def _resolve(parsed: ParsedUrl, settings: GitSourceSettings) -> list[str]:
    """The addresses git may connect to: the URL's own, or the host's checked DNS answer."""
    if parsed.ip:
        return [parsed.ip]
    try:
        infos = socket.getaddrinfo(parsed.host, parsed.port, type=socket.SOCK_STREAM)
    except socket.gaierror as exn:
        raise SourceRefused(f"host '{parsed.host}' cannot be resolved ({exn.strerror})") from None
    addresses = sorted({str(info[4][0]).split("%", 1)[0] for info in infos})
    check_resolved_addresses(parsed, addresses, settings)
    return addresses


def _resolve_ref(ref: str, refs: dict[str, str], repo: str) -> tuple[str, str | None]:
    """``(commit, ref name to fetch)`` for a ref; a commit SHA is fetched as itself (None)."""
    if COMMIT_SHA.match(ref):
        return ref, None
    if ref.startswith("refs/") or ref == "HEAD":
        names = [ref] if ref in refs else []
    else:
        names = [n for n in (f"refs/heads/{ref}", f"refs/tags/{ref}") if n in refs]
    if not names:
        hint = (" (give the full 40-character commit SHA, not an abbreviation)"
                if re.fullmatch(r"[0-9a-fA-F]{4,39}", ref) else "")
        raise SourceRefused(f"ref '{ref}' not found in {repo}{hint}")
    # An annotated tag names a tag object; ls-remote's peeled "^{}" line names its commit.
    commits = {refs.get(f"{n}^{{}}", refs[n]) for n in names}
    if len(commits) > 1:
        raise SourceRefused(f"ref '{ref}' is both a branch and a tag, at different commits; say "
                            f"refs/heads/{ref} or refs/tags/{ref}")
    return commits.pop(), names[0]


def _mib(size: int) -> str:
    return f"{size / (1024 * 1024):.1f} MiB"


def _tree_bytes(root: Path) -> int:
    total, stack = 0, [str(root)]
    while stack:
        try:
            entries = os.scandir(stack.pop())
        except OSError:
            continue
        with entries:
            for entry in entries:
                try:
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
                    else:
                        total += entry.stat(follow_symlinks=False).st_size
                except OSError:
                    pass  # git renamed or removed it meanwhile
    return total


class _GitFailed(Exception):
    def __init__(self, stderr: str) -> None:
        super().__init__(stderr)
        self.stderr = stderr

    @property
    def tail(self) -> str:
        lines = [ln.strip() for ln in self.stderr.splitlines() if ln.strip() and not ln.startswith("hint:")]
        return "; ".join(lines[-3:])[:500] or "no message from git"


class _Git:
    """git commands for one fetch: one environment, one deadline, one size limit."""

    def __init__(self, parsed: ParsedUrl, addresses: list[str], settings: GitSourceSettings, home: Path,
                 dest: Path) -> None:
        self.parsed, self.settings, self.home, self.dest = parsed, settings, home, dest
        self.deadline = time.monotonic() + settings.timeout_seconds
        schemes = settings.allowed_schemes
        self.env = {k: os.environ[k] for k in _PASSTHROUGH_ENV if k in os.environ}
        self.env.update({
            "HOME": str(home), "XDG_CONFIG_HOME": str(home), "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull, "GIT_TERMINAL_PROMPT": "0", "GIT_ALLOW_PROTOCOL": ":".join(schemes),
            "GIT_PROTOCOL_FROM_USER": "0", "LC_ALL": "C",
        })
        config = {
            "protocol.allow": "never",
            **{f"protocol.{s}.allow": "always" for s in schemes},
            "http.followRedirects": "false",
            "core.hooksPath": os.devnull,
            "credential.helper": "",
            "submodule.recurse": "false",
            "fetch.recurseSubmodules": "false",
            "core.fsmonitor": "false",
            "gc.auto": "0",
            "maintenance.auto": "false",
            "advice.detachedHead": "false",
            "init.defaultBranch": "main",
        }
        if settings.ca_bundle:  # the environment's GIT_SSL_CAINFO would win over the config: set both
            config["http.sslCAInfo"] = self.env["GIT_SSL_CAINFO"] = settings.ca_bundle
        if not parsed.ip:
            pinned = ",".join(f"[{a}]" if ":" in a else a for a in addresses)
            config["http.curloptResolve"] = f"{parsed.host}:{parsed.port}:{pinned}"
        self.config = [arg for key, value in config.items() for arg in ("-c", f"{key}={value}")]

    def run(self, *args: str, cwd: Path | None = None) -> str:
        """Run git; kill it past the deadline or when the checkout outgrows the limit."""
        out_path, err_path = self.home / "git.out", self.home / "git.err"
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            proc = subprocess.Popen(["git", *self.config, *args], cwd=cwd or self.home, env=self.env,
                                    stdin=subprocess.DEVNULL, stdout=out, stderr=err, start_new_session=True)
            try:
                while True:
                    try:
                        proc.wait(timeout=_POLL_SECONDS)
                        break
                    except subprocess.TimeoutExpired:
                        pass
                    if time.monotonic() > self.deadline:
                        raise SourceRefused(f"fetching {self.parsed.url} took longer than "
                                            f"{self.settings.timeout_seconds:g} s (timeout_seconds)")
                    self.check_size()
            finally:
                if proc.returncode is None:
                    os.killpg(proc.pid, signal.SIGKILL)  # git and its remote helper
                    proc.wait()
        if proc.returncode != 0:
            raise _GitFailed(err_path.read_text(errors="replace"))
        return out_path.read_text(errors="replace")

    def check_size(self) -> None:
        limit = self.settings.max_repo_bytes
        if _tree_bytes(self.dest) > limit:
            raise SourceRefused(f"{self.parsed.url} is larger than the {_mib(limit)} limit "
                                f"(max_repo_bytes = {limit}) once fetched; keep workflows in a smaller "
                                "repository")

    def ls_remote(self) -> dict[str, str]:
        try:
            listing = self.run("ls-remote", self.parsed.url)
        except _GitFailed as exn:
            raise SourceRefused(f"cannot read the repository {self.parsed.url}: {exn.tail}") from None
        refs = {}
        for line in listing.splitlines():
            sha, _, name = line.partition("\t")
            if COMMIT_SHA.match(sha) and name:
                refs[name] = sha
        return refs

    def fetch(self, what: str) -> None:
        try:
            self.run("fetch", "--quiet", "--no-tags", "--depth", "1", self.parsed.url, what, cwd=self.dest)
        except _GitFailed as exn:
            if _DUMB_NO_SHALLOW not in exn.stderr:
                raise
            # A static server (git's dumb protocol) serves whole histories only.
            self.run("fetch", "--quiet", "--no-tags", self.parsed.url, what, cwd=self.dest)

    def checkout(self, commit: str, refname: str | None, ref: str) -> None:
        """Fetch ``commit`` (by ``refname`` when there is one: every server serves advertised
        refs, not every server serves bare SHAs), check it out detached, prove HEAD is it."""
        repo = self.parsed.url
        self.run("init", "--quiet", str(self.dest))
        try:
            self.fetch(refname or commit)
        except _GitFailed as exn:
            if refname is None:
                raise SourceRefused(f"ref '{ref}' not found in {repo}: it serves no commit with that SHA "
                                    f"(git: {exn.tail})") from None
            raise SourceRefused(f"cannot fetch {refname} from {repo}: {exn.tail}") from None
        try:
            fetched = self.run("rev-parse", "--verify", "--quiet", "FETCH_HEAD^{commit}", cwd=self.dest).strip()
        except _GitFailed:
            raise SourceRefused(f"ref '{ref}' in {repo} is not a commit") from None
        if fetched != commit:
            raise SourceRefused(f"ref '{ref}' moved while it was fetched (from {commit[:12]} to {fetched[:12]}); "
                                "try again")
        try:
            self.run("checkout", "--quiet", "--detach", commit, cwd=self.dest)
        except _GitFailed as exn:
            raise SourceRefused(f"cannot check out {commit[:12]} of {repo}: {exn.tail}") from None
        head = self.run("rev-parse", "HEAD", cwd=self.dest).strip()
        if head != commit:
            raise SourceRefused(f"checked out {head[:12]} of {repo}, but '{ref}' resolved to {commit[:12]}")
        self.check_size()
