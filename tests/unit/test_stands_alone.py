"""The repository stands alone: no tracked file reaches outside it at run or test time."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# Paths that climb out of the checkout, or name the workplace's notes beside it.
OUTSIDE = re.compile(r"""\.\./shared|["']shared["']\s*/|[A-Z]+-NOTES\b(?!\.txt)""")


def test_no_tracked_file_reads_outside_the_repository():
    files = subprocess.run(["git", "ls-files"], cwd=REPO, check=True, capture_output=True, text=True).stdout.split()
    offenders = []
    for name in files:
        if name.startswith("tools/") or not name.endswith((".py", ".md", ".yaml", ".yml", ".cfg", ".ini", ".toml")):
            continue
        for number, line in enumerate((REPO / name).read_text(errors="replace").splitlines(), 1):
            if OUTSIDE.search(line):
                offenders.append(f"{name}:{number}: {line.strip()}")
    assert not offenders, "\n".join(offenders)


def test_every_contract_names_its_source_and_version():
    contracts = sorted((REPO / "tests" / "contracts").glob("*.yaml"))
    assert len(contracts) >= 2
    for path in contracts:
        head = path.read_text().splitlines()[:3]
        assert head[0].startswith("# ") and re.search(r"\d+\.\d+", head[0]), path.name
        assert any("@" in line for line in head), f"{path.name}: no source commit in its header"


def test_no_fault_injection_in_the_production_package():
    """A worker's environment cannot make production tasks fail: the package has no hook for it."""
    package = REPO / "plugins" / "hatchway"
    hits = [f"{path.relative_to(REPO)}:{number}" for path in package.rglob("*.py")
            for number, line in enumerate(path.read_text().splitlines(), 1)
            if re.search(r"FAIL_STEP|faults\.inject|import faults", line)]
    assert not hits, hits
