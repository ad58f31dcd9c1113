"""What every Hatchway DAG shares: owner, tags, retries, the run timeout, and the Params of a
workspace. Imported by every DAG file when it is parsed: keep it light (no pydantic model, no
provider, no hook). The domain modules behind the run timeout and the workspace Params are
imported by the functions that use them, so a DAG file that calls neither imports neither: each
module a DAG file imports is imported again at every parse (~0.1-0.25 ms in the parse's child)."""

from __future__ import annotations

import os
from datetime import timedelta

from airflow.sdk import Param


# HATCHWAY_TASK_RETRIES lets failure tests (and cautious operators) turn retries off;
# HATCHWAY_TASK_RETRY_DELAY (seconds) shortens the wait before a retry (the dev stack: 2 s).
DEFAULT_ARGS = {"owner": "hatchway", "retries": int(os.environ.get("HATCHWAY_TASK_RETRIES", "2")),
                "retry_delay": timedelta(seconds=float(os.environ.get("HATCHWAY_TASK_RETRY_DELAY", "30"))),
                "retry_exponential_backoff": True}


class _SharedDict(dict):
    """A read-only part of a Param's JSON schema: a deep copy of it is itself."""

    def __deepcopy__(self, memo):
        return self

    def __reduce__(self):  # pickled whole, not item by item through __setitem__
        return _SharedDict, (dict(self),)

    def _read_only(self, *args, **kwargs):
        raise TypeError("a DAG Param's schema is read-only")

    __setitem__ = __delitem__ = __ior__ = update = setdefault = pop = popitem = clear = _read_only


class _SharedList(list):
    """A read-only list in a Param's JSON schema: a deep copy of it is itself."""

    def __deepcopy__(self, memo):
        return self

    def __reduce__(self):
        return _SharedList, (list(self),)

    def _read_only(self, *args, **kwargs):
        raise TypeError("a DAG Param's schema is read-only")

    __setitem__ = __delitem__ = __iadd__ = __imul__ = append = extend = insert = remove = pop = clear = \
        sort = reverse = _read_only


def _shared(value):
    if isinstance(value, dict):
        return _SharedDict({key: _shared(item) for key, item in value.items()})
    if isinstance(value, list):
        return _SharedList(_shared(item) for item in value)
    return value


def shared_schema_param(*default, description: str, **schema) -> Param:
    """A Param with a large JSON schema that the DAG's tasks share instead of copying.

    Airflow deep-copies every DAG Param into every task (``get_merged_defaults``, three times
    per task of a three-class operator); for ``job_run``'s request schemas that was most of the
    DAG's construction at every parse. Nothing writes to a schema, so each copy of the Param
    keeps this one, read-only; it serializes and validates as the plain dict it equals.
    """
    return Param(*default, description=description, schema=_shared(schema))


def run_timeout() -> timedelta:
    """``dagrun_timeout`` of ``job_run`` and ``wes_run``: :func:`hatchway.domain.limits.run_timeout`."""
    from hatchway.domain.limits import run_timeout as timeout

    return timeout()


def workspace_param() -> Param:
    from hatchway.domain.name_forms import WORKSPACE_HELP, WORKSPACE_SCHEMA

    return Param(type="string", title="Workspace", description=WORKSPACE_HELP, **WORKSPACE_SCHEMA)


def owner_param() -> Param:
    from hatchway.domain.name_forms import OWNER_SCHEMA

    return Param(type="string", title="Owner", description="the researcher's user name or e-mail, lowercase",
                 **OWNER_SCHEMA)

