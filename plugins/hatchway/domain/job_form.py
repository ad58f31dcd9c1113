"""The ``job_run`` trigger form's Params, read when the DAG file is parsed.

The JSON schemas come from :func:`hatchway.domain.jobs.request_param_schemas` (pydantic), but
building them costs more than parsing the whole DAG, so the DAG file reads
``job_request_params.json`` beside this module instead. ``tests/unit/test_job_form.py``
fails when the two differ; regenerate the file with ``python -m hatchway.domain.job_form``.
"""

from __future__ import annotations

import json
from pathlib import Path

SCHEMAS = Path(__file__).with_name("job_request_params.json")


def request_param_schemas() -> dict[str, dict]:
    """:return: each top-level field of a job request -> its self-contained JSON schema."""
    return json.loads(SCHEMAS.read_text())


def render() -> str:
    from hatchway.domain.jobs import request_param_schemas as generate

    return json.dumps(generate(), indent=1, sort_keys=True) + "\n"


if __name__ == "__main__":
    SCHEMAS.write_text(render())
    print(f"wrote {SCHEMAS}")
