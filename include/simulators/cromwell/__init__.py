"""Cromwell server simulator: the REST routes Hatchway and cromshell call, per Cromwell's swagger
(``tests/contracts/cromwell-api-c805f3c5.yaml``) and, where the two disagree, Cromwell's code.

Start it with ``python -m include.simulators.cromwell --port 8000 [--root s3://bucket/prefix]
[--s3-endpoint URL]`` from the repository root, or in tests and the dev stack through
:class:`hatchway_dev.endpoints.CromwellSimulator`. :func:`create_app` builds the app for
in-process use.
"""

from include.simulators.cromwell.app import CROMWELL_VERSION, create_app
from include.simulators.cromwell.state import Course, SimState

__all__ = ["CROMWELL_VERSION", "Course", "SimState", "create_app"]
