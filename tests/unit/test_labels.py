"""Owner and cost labels of job buckets (pure domain rules)."""

from __future__ import annotations

import re

from hatchway.domain.jobs import JobRequest
from hatchway.domain.labels import UNKNOWN_OWNER, gcs_label_value, job_owner
from support.jobs import request

GCS_LABEL = re.compile(r"^[a-z0-9_-]{0,63}$")


def _request(folder: str) -> JobRequest:
    body = request(1)
    body["globus_details"]["dir_path_on_guest_collection"] = folder
    return JobRequest.model_validate(body)


def test_label_values_fit_the_gcs_rule():
    for value in ("Alice.Smith@Example.ORG", "Cost Centre 42/EU", "x" * 200, "ünïcode+plus=sign", ""):
        assert GCS_LABEL.match(gcs_label_value(value)), value
    assert gcs_label_value("alice@example.org") == "alice_example_org"
    assert len(gcs_label_value("a" * 100)) == 63


def test_owner_is_the_e_mail_of_the_globus_folder():
    assert job_owner(_request("Test@EBI.ac.uk/Sample-Set-Wednesday")) == "test@ebi.ac.uk"


def test_a_folder_name_is_never_taken_for_the_owner():
    assert job_owner(_request("Sample-Set-Wednesday/more")) == UNKNOWN_OWNER
    assert job_owner(_request("shared")) == UNKNOWN_OWNER
