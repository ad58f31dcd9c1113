"""Where the job lifecycle reads its settings from."""

from __future__ import annotations

from pydantic import Field, field_validator

from hatchway.domain.jobs import JobPlatformConfig
from hatchway.domain.names import check_tag_value
from hatchway.domain.usage import Budget, PriceTable

JOBS_VARIABLE = "hatchway_jobs_config"


class JobSettings(JobPlatformConfig):
    """The job settings plus what labels the job's buckets (see :mod:`hatchway.domain.labels`).

    :param cost_center: the deployment's cost centre: every job bucket is labelled with it
        (default: the namespace).
    :param cost_tag_key: the S3 tag key of the cost centre (as for workspaces); GCS buckets
        use the label ``hatchway-cost-center``.
    :param transfer_conn_id: an optional connection with the input transfer's credentials
        (extras ``key_handler_token``, ``key_passphrase``, ``source_token``); without it, the
        worker's ``HATCHWAY_*`` environment variables.
    """

    cost_center: str | None = Field(None, description="cost centre the job buckets are labelled with "
                                                      "(default: the namespace)")
    cost_tag_key: str = "hatchway:cost-center"
    transfer_conn_id: str | None = "hatchway_transfer"
    price_table: PriceTable = Field(default_factory=PriceTable,
                                    description="prices of the usage estimates (hatchway.domain.usage)")
    budget: Budget | None = Field(None, description="the namespace's monthly budget for its jobs: past it "
                                                    "a new job is refused, past its soft limit a notice goes out")

    @field_validator("cost_center")
    @classmethod
    def _cost_center(cls, v: str | None) -> str | None:
        return None if v in (None, "") else check_tag_value(v, "cost_center")

    @property
    def bucket_cost_center(self) -> str:
        return self.cost_center or self.namespace


def load_jobs_config(variable: str = JOBS_VARIABLE) -> JobSettings:
    from airflow.sdk import Variable

    raw = Variable.get(variable, default=None)
    return JobSettings.model_validate_json(raw) if raw else JobSettings()
