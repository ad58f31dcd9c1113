"""Local stand-ins for SaaS APIs that cannot run here (Seqera Platform, Cromwell, Wave).

Each follows the vendor's published OpenAPI document (the parts used are kept in ``tests/contracts``) for the
routes Hatchway calls, and adds control routes under ``/_sim/`` that tests use to steer
outcomes, inject faults and read call counters. They run as subprocesses started by a
:class:`hatchway_dev.endpoints.Service` (``python -m include.simulators.<name>``
from the repository root, which must be on ``PYTHONPATH``).
"""
