"""Wave simulator: the container-build routes Hatchway calls, per Wave's TypeSpec compiled to
OpenAPI (``tests/contracts/wave-api-7b8b9f6d.yaml``) and, where the two disagree, Wave's code.

Start it with ``python -m include.simulators.wave --port 8000`` from the repository root, or in
tests and the dev stack through :class:`hatchway_dev.endpoints.WaveSimulator`. :func:`create_app`
builds the app for in-process use.
"""

from include.simulators.wave.app import create_app
from include.simulators.wave.state import WAVE_VERSION, Config, Course, SimState

__all__ = ["WAVE_VERSION", "Config", "Course", "SimState", "create_app"]
