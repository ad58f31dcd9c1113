"""A WDL workflow fetched from git for real: served over git's dumb HTTP protocol on 127.0.0.1,
pinned to its commit, validated offline, its imports zipped as Cromwell resolves them.

The zip's proof is miniwdl itself: unpacked alone, with the submitted main source at its root and
imports confined to that folder, it must validate again.
"""

from __future__ import annotations

import io
import os
import zipfile
from pathlib import Path

import pytest
import WDL
from WDL.CLI import make_read_source

from hatchway.domain.wdl import GitSourceSettings, SourceRefused, WdlError, WdlInvalid, WorkflowSourceRequest
from hatchway.wdl.source import FetchedSource, fetch
from tests.support.git import GitHttpServer, Symlink

HELLO_TASK = """version 1.0
task hello {
  input {
    String name
    String greeting = "hello"
  }
  command <<< echo "~{greeting} ~{name}" >>>
  output { String out = read_string(stdout()) }
}
"""

MAIN = """version 1.0
import "tasks/hello.wdl" as h

workflow hello_wf {
  input { String name }
  call h.hello { input: name = name }
  output { String message = hello.out }
}
"""


@pytest.fixture(scope="module")
def server():
    served = GitHttpServer()
    yield served
    served.stop()


@pytest.fixture(scope="module")
def settings(server) -> GitSourceSettings:
    return GitSourceSettings(allowed_schemes=["https", "http"], allowed_hosts=[f"127.0.0.1:{server.port}"],
                             private_hosts=["127.0.0.1"], timeout_seconds=20)


@pytest.fixture(scope="module")
def hello(server) -> str:
    return server.create("hello", {"main.wdl": MAIN, "tasks/hello.wdl": HELLO_TASK}, tag="v1")


@pytest.fixture(scope="module")
def broken(server) -> str:
    return server.create("broken", {
        "bad_type.wdl": 'version 1.0\n\nworkflow bad_type {\n  input { String name }\n  Int x = true\n}\n',
        "bad_call.wdl": 'version 1.0\n\nworkflow bad_call {\n\n  call nope\n}\n',
        "bad_syntax.wdl": 'version 1.0\nworkflow bad_syntax {\n  Int x =\n}\n',
        "bad_import.wdl": 'version 1.0\nimport "tasks/typo.wdl" as t\nworkflow bad_import {\n  call t.typo\n}\n',
        "tasks/typo.wdl": 'version 1.0\ntask typo {\n  command <<< true >>>\n  output {\n    Int n = false\n  }\n}\n',
        "missing_import.wdl": 'version 1.0\n\nimport "tasks/absent.wdl"\nworkflow missing_import {}\n',
        "tasks_only.wdl": HELLO_TASK,
        "bad_twice.wdl": ('version 1.0\ntask twice {\n  Int a = true\n  Int b = [1]\n  command <<< >>>\n}\n'
                          "workflow bad_twice {\n  call twice\n}\n"),
    })


def get(url: str, ref: str, path: str, dest: Path, settings: GitSourceSettings) -> FetchedSource:
    return fetch(WorkflowSourceRequest(repo=url, ref=ref, path=path), dest, settings)


def refused(url: str, ref: str, path: str, dest: Path, settings: GitSourceSettings) -> str:
    with pytest.raises(SourceRefused) as caught:
        get(url, ref, path, dest, settings)
    assert not isinstance(caught.value, WdlInvalid)
    return caught.value.reason


def invalid(url: str, path: str, dest: Path, settings: GitSourceSettings) -> list[WdlError]:
    with pytest.raises(WdlInvalid) as caught:
        get(url, "main", path, dest, settings)
    return caught.value.errors


def revalidates_alone(fetched: FetchedSource, where: Path) -> WDL.Tree.Document:
    """What Cromwell gets (the main source, the zip), unpacked alone; imports may not leave it."""
    where.mkdir()
    with zipfile.ZipFile(io.BytesIO(fetched.dependencies_zip)) as archive:
        archive.extractall(where)
    main = where / Path(fetched.path).name
    main.write_text(fetched.workflow_source)
    return WDL.load(str(main), read_source=make_read_source(no_outside_imports=True))


# -- fetched, pinned, packaged


def test_a_tag_resolves_to_its_commit_and_the_zip_carries_the_import(server, hello, settings, tmp_path):
    fetched = get(hello, "v1", "main.wdl", tmp_path / "checkout", settings)

    assert fetched.commit == server.rev_parse("hello", "v1")
    assert (fetched.repo, fetched.ref, fetched.path) == (hello, "v1", "main.wdl")
    assert (fetched.workflow_name, fetched.wdl_version) == ("hello_wf", "1.0")
    assert fetched.workflow_source == MAIN
    assert fetched.imports == ["tasks/hello.wdl"]
    assert fetched.inputs == {"name": "String", "hello.greeting": "String"}
    assert fetched.outputs == {"message": "String"}
    assert zipfile.ZipFile(io.BytesIO(fetched.dependencies_zip)).namelist() == ["tasks/hello.wdl"]
    assert revalidates_alone(fetched, tmp_path / "cromwell").workflow.name == "hello_wf"


def test_the_commit_pins_what_ran_after_the_branch_moves(server, settings, tmp_path):
    url = server.create("moving", {"main.wdl": MAIN, "tasks/hello.wdl": HELLO_TASK})
    first = get(url, "main", "main.wdl", tmp_path / "first", settings)
    server.commit("moving", {"main.wdl": MAIN.replace("hello_wf", "hello_wf_v2")}, "rename the workflow")

    moved = get(url, "main", "main.wdl", tmp_path / "moved", settings)
    pinned = get(url, first.commit, "main.wdl", tmp_path / "pinned", settings)

    assert moved.commit != first.commit and moved.workflow_name == "hello_wf_v2"
    assert (pinned.commit, pinned.workflow_name, pinned.workflow_source) == (first.commit, "hello_wf", MAIN)


def test_a_workflow_without_imports_has_no_zip(server, settings, tmp_path):
    url = server.create("alone", {"wf.wdl": "version 1.0\nworkflow alone {\n  output { Int n = 1 }\n}\n"})
    fetched = get(url, "main", "wf.wdl", tmp_path / "checkout", settings)
    assert (fetched.dependencies_zip, fetched.imports, fetched.outputs) == (None, [], {"n": "Int"})


def test_an_import_above_the_main_folder_is_packaged_inside_the_zip(server, settings, tmp_path):
    main = ('version 1.0\nimport "../tasks/align.wdl" as align\nimport "lib/util.wdl" as util\n\n'
            "workflow align_wf {\n  call align.align\n  call util.util\n}\n")
    align = ('version 1.0\nimport "../workflows/lib/util.wdl" as util\nimport "common.wdl"\n\n'
             "task align {\n  command <<< true >>>\n}\n")
    url = server.create("above", {
        "workflows/main.wdl": main,
        "workflows/lib/util.wdl": "version 1.0\ntask util {\n  command <<< true >>>\n}\n",
        "tasks/align.wdl": align,
        "tasks/common.wdl": "version 1.0\nstruct Sample {\n  String id\n}\n",
    })

    fetched = get(url, "main", "workflows/main.wdl", tmp_path / "checkout", settings)

    names = sorted(zipfile.ZipFile(io.BytesIO(fetched.dependencies_zip)).namelist())
    assert names == ["__outside_wdl/tasks/align.wdl", "__outside_wdl/tasks/common.wdl", "lib/util.wdl"]
    assert fetched.imports == ["tasks/align.wdl", "tasks/common.wdl", "workflows/lib/util.wdl"]
    # Rewritten in place: the researcher's line numbers still hold.
    assert fetched.workflow_source == main.replace('"../tasks/align.wdl"', '"__outside_wdl/tasks/align.wdl"')
    unpacked = tmp_path / "cromwell"
    revalidates_alone(fetched, unpacked)
    assert '"../../lib/util.wdl"' in (unpacked / "__outside_wdl/tasks/align.wdl").read_text()


# -- syntax and type errors, where they are


def test_a_type_error_is_reported_at_its_line_and_column(broken, settings, tmp_path):
    [error] = invalid(broken, "bad_type.wdl", tmp_path / "checkout", settings)
    assert str(error) == "bad_type.wdl:5:11: Expected Int instead of Boolean"


def test_every_error_of_a_pass_is_reported_in_order(broken, settings, tmp_path):
    errors = invalid(broken, "bad_twice.wdl", tmp_path / "checkout", settings)
    assert [str(e) for e in errors] == ["bad_twice.wdl:3:11: Expected Int instead of Boolean",
                                        "bad_twice.wdl:4:11: Expected Int instead of Array[Int]+"]


def test_calling_an_unknown_task_is_reported_at_the_call(broken, settings, tmp_path):
    [error] = invalid(broken, "bad_call.wdl", tmp_path / "checkout", settings)
    assert (error.file, error.line, error.column) == ("bad_call.wdl", 5, 3)
    assert "nope" in error.message


def test_a_syntax_error_is_reported_at_its_line(broken, settings, tmp_path):
    [error] = invalid(broken, "bad_syntax.wdl", tmp_path / "checkout", settings)
    assert (error.file, error.line) == ("bad_syntax.wdl", 4)
    assert error.message == "syntax error: unexpected '}'"


def test_a_type_error_in_an_imported_file_is_reported_in_that_file(broken, settings, tmp_path):
    [error] = invalid(broken, "bad_import.wdl", tmp_path / "checkout", settings)
    assert str(error) == "tasks/typo.wdl:5:13: Expected Int instead of Boolean"


def test_a_missing_import_is_reported_at_the_import(broken, settings, tmp_path):
    [error] = invalid(broken, "missing_import.wdl", tmp_path / "checkout", settings)
    assert (error.file, error.line) == ("missing_import.wdl", 3)
    assert error.message == 'import "tasks/absent.wdl" names no file in the repository (looked for tasks/absent.wdl)'


def test_a_file_of_tasks_only_is_not_a_workflow(broken, settings, tmp_path):
    [error] = invalid(broken, "tasks_only.wdl", tmp_path / "checkout", settings)
    assert "declares no workflow" in str(error)


# -- refused, with reasons, before git runs or before anything is submitted


@pytest.mark.parametrize(("url", "reason"), [
    ("file:///tmp/x", "scheme 'file://' is not allowed"),
    ("ssh://host/x", "scheme 'ssh://' is not allowed"),
    ("git://host/x", "scheme 'git://' is not allowed"),
    ("http://169.254.169.254/latest/meta-data/", "host '169.254.169.254' is a link-local address"),
    ("http://2852039166/latest/meta-data/", "host '2852039166' (169.254.169.254) is a link-local address"),
    ("https://github.com/org/repo.git", "host 'github.com' is not an allowed git host"),
])
def test_urls_outside_the_policy_are_refused_before_git_runs(url, reason, settings, tmp_path):
    assert reason in refused(url, "main", "main.wdl", tmp_path / "checkout", settings)
    assert not (tmp_path / "checkout").exists()


def test_a_host_not_allowed_is_refused_even_when_it_serves_the_repository(server, hello, settings, tmp_path):
    url = hello.replace("127.0.0.1", "localhost")
    assert f"host 'localhost:{server.port}' is not an allowed git host" in refused(
        url, "main", "main.wdl", tmp_path / "checkout", settings)


def test_a_missing_ref_is_refused_naming_it_and_the_repository(hello, settings, tmp_path):
    assert refused(hello, "no-such-branch", "main.wdl", tmp_path / "a", settings) == (
        f"ref 'no-such-branch' not found in {hello}")
    assert "full 40-character commit SHA" in refused(hello, "abc1234", "main.wdl", tmp_path / "b", settings)
    assert f"ref '{'0' * 40}' not found in {hello}" in refused(hello, "0" * 40, "main.wdl", tmp_path / "c", settings)


def test_a_missing_repository_and_a_missing_workflow_file_are_refused(server, hello, settings, tmp_path):
    assert "cannot read the repository" in refused(server.url("nothing-here"), "main", "main.wdl",
                                                   tmp_path / "a", settings)
    assert refused(hello, "v1", "other.wdl", tmp_path / "b", settings).startswith(f"'other.wdl' is not in {hello} at v1")


def test_a_repository_over_the_size_limit_is_refused(server, settings, tmp_path):
    url = server.create("big", {"main.wdl": MAIN, "data/reference.bin": os.urandom(3 * 1024 * 1024)})
    small = settings.model_copy(update={"max_repo_bytes": 1024 * 1024})
    reason = refused(url, "main", "main.wdl", tmp_path / "checkout", small)
    assert reason == (f"{url} is larger than the 1.0 MiB limit (max_repo_bytes = 1048576) once fetched; "
                      "keep workflows in a smaller repository")


@pytest.fixture(scope="module")
def escaping(server) -> str:
    served_wdl = server.url("hello").removesuffix(".git") + ".git/HEAD"
    return server.create("escaping", {
        "absolute.wdl": 'version 1.0\nimport "/etc/hosts"\nworkflow absolute {}\n',
        "climbing.wdl": 'version 1.0\n\nimport "../../x.wdl"\nworkflow climbing {}\n',
        "linked.wdl": 'version 1.0\nimport "tasks/passwd.wdl"\nworkflow linked {}\n',
        "tasks/passwd.wdl": Symlink("/etc/passwd"),
        "url.wdl": f'version 1.0\nimport "{served_wdl}"\nworkflow url {{}}\n',
        "nested.wdl": 'version 1.0\nimport "tasks/climbs.wdl"\nworkflow nested {}\n',
        "tasks/climbs.wdl": 'version 1.0\n\n\nimport "../../../etc/hosts.wdl"\n',
        "main_link.wdl": Symlink("/etc/hosts"),
    })


@pytest.mark.parametrize(("path", "reason"), [
    ("absolute.wdl", 'absolute.wdl:2: import "/etc/hosts" is an absolute path'),
    ("climbing.wdl", 'climbing.wdl:3: import "../../x.wdl" leads outside the repository'),
    ("linked.wdl", 'linked.wdl:2: import "tasks/passwd.wdl" is a symbolic link leading outside the repository'),
    ("url.wdl", "url.wdl:2: import \"http://127.0.0.1:{port}/hello.git/HEAD\" is a URL; workflows are validated "
                "offline"),
    ("nested.wdl", 'tasks/climbs.wdl:4: import "../../../etc/hosts.wdl" leads outside the repository'),
    ("main_link.wdl", "'main_link.wdl' is a symbolic link leading outside the repository"),
])
def test_imports_outside_the_repository_are_refused_at_the_import(path, reason, server, escaping, settings, tmp_path):
    assert reason.format(port=server.port) in refused(escaping, "main", path, tmp_path / "checkout", settings)


# -- DNS: the answer is checked, and git connects to the checked address only


def test_a_name_resolving_inside_is_refused_unless_listed_private(server, hello, settings, tmp_path):
    url = hello.replace("127.0.0.1", "localhost")
    named = settings.model_copy(update={"allowed_hosts": [f"localhost:{server.port}"]})
    assert refused(url, "v1", "main.wdl", tmp_path / "a", named) == (
        "host 'localhost' resolves to 127.0.0.1, which is a loopback address; Hatchway fetches workflows only "
        "from public hosts (private_hosts lists the exceptions)")
    private = named.model_copy(update={"private_hosts": ["localhost"]})
    assert get(url, "v1", "main.wdl", tmp_path / "b", private).commit == server.rev_parse("hello", "v1")


def test_git_connects_to_the_address_that_was_checked(server, hello, settings, tmp_path, monkeypatch):
    """A name only Hatchway's resolver knows: git can reach it only through the pinned address."""
    import socket

    real = socket.getaddrinfo

    def resolver(host, *args, **kwargs):
        if host == "git.hatchway.invalid":
            return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", server.port))]
        return real(host, *args, **kwargs)

    monkeypatch.setattr("hatchway.wdl.source.socket.getaddrinfo", resolver)
    url = hello.replace("127.0.0.1", "git.hatchway.invalid")
    pinned = settings.model_copy(update={"allowed_hosts": [f"git.hatchway.invalid:{server.port}"],
                                         "private_hosts": ["git.hatchway.invalid"]})
    assert get(url, "v1", "main.wdl", tmp_path / "checkout", pinned).commit == server.rev_parse("hello", "v1")
