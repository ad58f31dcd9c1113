"""Seqera Platform simulator: the workflow routes Hatchway calls, per Seqera API 1.187.

Start it with ``python -m include.simulators.seqera --port 8765`` from the repository root
(token from ``--token`` or ``$SEQERA_SIM_TOKEN``), or in tests and the dev stack through
:class:`hatchway_dev.endpoints.SeqeraSimulator`. :func:`create_app` builds the app for
in-process use.
"""

from include.simulators.seqera.app import create_app
from include.simulators.seqera.state import DEFAULT_ERROR_REPORT, Course, SimState

__all__ = ["DEFAULT_ERROR_REPORT", "Course", "SimState", "create_app"]
