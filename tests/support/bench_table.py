"""``make bench``'s one table: every benchmark adds its figures here (:func:`bench_table`), and
the table is printed at the end of the session and written to ``tests/bench/latest.md`` with
the date and the machine, for the README.

Not a ``tests/bench/conftest.py``: a second module named ``conftest`` would shadow
``tests/conftest.py`` for the tests that import from it. ``tests/conftest.py`` imports the
fixture and the hook from here.

A row: the figure, ours, the baseline measured in the same run, the ratio, the goal and
whether it was met (``-`` when the figure has no goal yet).
"""

from __future__ import annotations

import os
import platform
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import pytest

LATEST = Path(__file__).parents[1] / "bench" / "latest.md"


@dataclass
class Row:
    figure: str
    ours: str
    baseline: str
    ratio: str
    goal: str
    met: bool | None


class Table:
    rows: list[Row] = []

    @classmethod
    def add(cls, figure: str, ours: str, baseline: str = "-", ratio: float | str | None = None,
            goal: str = "-", met: bool | None = None) -> None:
        shown = f"{ratio:.2f}x" if isinstance(ratio, float) else (ratio or "-")
        cls.rows.append(Row(figure, ours, baseline, shown, goal, met))

    @classmethod
    def markdown(cls) -> str:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
        head = (f"`make bench` on {datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} CPUs, "
                f"{memory:.0f} GiB, Python {platform.python_version()}\n\n"
                "| figure | ours | baseline (same run) | ratio | goal | met |\n|---|---|---|---|---|---|\n")
        mark = {True: "yes", False: "**no**", None: "-"}
        return head + "".join(f"| {r.figure} | {r.ours} | {r.baseline} | {r.ratio} | {r.goal} | {mark[r.met]} |\n"
                              for r in cls.rows)


@pytest.fixture
def bench_table() -> type[Table]:
    return Table


def pytest_terminal_summary(terminalreporter, exitstatus, config):
    if not Table.rows:
        return
    text = Table.markdown()
    terminalreporter.write_sep("=", "bench table")
    terminalreporter.write_line(text)
    LATEST.write_text(text)
    terminalreporter.write_line(f"(written to {LATEST.relative_to(Path.cwd()) if LATEST.is_relative_to(Path.cwd()) else LATEST})")
