"""The job_run form's schemas the DAG file reads are the ones the pydantic model generates."""

from __future__ import annotations

import json

from hatchway.domain import job_form
from hatchway.domain.jobs import request_param_schemas


def test_the_stored_form_schemas_equal_the_models():
    stored = job_form.request_param_schemas()
    assert stored == json.loads(json.dumps(request_param_schemas())), (
        "job_request_params.json is stale: run `python -m hatchway.domain.job_form`")
    assert {"globus_details", "pipeline_param", "secret_key_details"} <= set(stored)


def test_the_stored_schemas_refuse_what_the_model_refuses():
    import jsonschema

    schema = job_form.request_param_schemas()["pipeline_param"]
    errors = list(jsonschema.Draft202012Validator(schema).iter_errors({"id": "JOB0001"}))
    assert errors, "an id without the INTP prefix must be refused by the form"
