"""What Airflow's ProvidersManager learns about Hatchway (the ``apache_airflow_provider`` entry point).

The shape is the one the official providers use (``airflow/provider_info.schema.json``).
Connection forms are declared here (``conn-fields`` / ``ui-field-behaviour``): Airflow 3.2+
reads them without importing the hook, and has deprecated the hooks'
``get_connection_form_widgets`` / ``get_ui_field_behaviour`` methods for it.
"""

from __future__ import annotations

from typing import Any

from hatchway import __version__

PACKAGE = "hatchway-airflow"


def _verify_field(whose: str) -> dict[str, Any]:
    return {"label": "Verify TLS",
            "description": f"Check {whose} TLS certificate (a CA bundle path can be set in the extra JSON instead).",
            "schema": {"type": ["boolean", "null"], "default": True}}


SEQERA_FIELDS: dict[str, Any] = {
    "workspace_id": {
        "label": "Workspace ID",
        "description": "Seqera workspace (numeric id) the runs are launched and listed in; empty: the "
                       "token owner's personal workspace.",
        "schema": {"type": ["integer", "null"]},
    },
    "compute_env_id": {
        "label": "Compute environment ID",
        "description": "Default compute environment for launches (a launch may name another).",
        "schema": {"type": ["string", "null"]},
    },
    "verify": _verify_field("the API's"),
}

WAVE_FIELDS: dict[str, Any] = {
    "seqera_conn_id": {
        "label": "Seqera connection",
        "description": "A Seqera Platform connection whose token, URL and workspace go with each build "
                       "request (empty: anonymous requests).",
        "schema": {"type": ["string", "null"]},
    },
    "verify": _verify_field("Wave's"),
}


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": PACKAGE,
        "name": "Hatchway",
        "description": "Multi-tenant research-workflow platform: per-user AWS workspaces, Nextflow runs "
                       "on Seqera Platform or Helm, job intake from Kafka, and a GA4GH WES front door.",
        "versions": [__version__],
        "integrations": [
            {"integration-name": "Seqera Platform", "external-doc-url": "https://docs.seqera.io/platform-api",
             "tags": ["service"]},
            {"integration-name": "Helm", "external-doc-url": "https://helm.sh/docs/", "tags": ["software"]},
            {"integration-name": "Seqera Wave", "external-doc-url": "https://docs.seqera.io/wave",
             "tags": ["service"]},
        ],
        "hooks": [
            {"integration-name": "Seqera Platform", "python-modules": ["hatchway.hooks.seqera"]},
            {"integration-name": "Helm", "python-modules": ["hatchway.hooks.helm"]},
            {"integration-name": "Seqera Wave", "python-modules": ["hatchway.hooks.wave"]},
        ],
        "operators": [
            {"integration-name": "Seqera Platform", "python-modules": ["hatchway.operators.seqera"]},
            {"integration-name": "Seqera Wave", "python-modules": ["hatchway.operators.container"]},
        ],
        "triggers": [
            {"integration-name": "Seqera Platform", "python-modules": ["hatchway.triggers.seqera"]},
            {"integration-name": "Seqera Wave", "python-modules": ["hatchway.triggers.wave"]},
        ],
        "connection-types": [
            {
                "hook-class-name": "hatchway.hooks.seqera.SeqeraHook",
                "hook-name": "Seqera Platform",
                "connection-type": "seqera",
                "ui-field-behaviour": {
                    "hidden-fields": ["schema", "login", "port"],
                    "relabeling": {"host": "API URL", "password": "Access token"},
                    "placeholders": {"host": "https://api.cloud.seqera.io",
                                     "extra": '{"timeout": 30, "max_attempts": 5}'},
                },
                "conn-fields": SEQERA_FIELDS,
            },
            {
                "hook-class-name": "hatchway.hooks.wave.WaveHook",
                "hook-name": "Seqera Wave",
                "connection-type": "wave",
                "ui-field-behaviour": {
                    "hidden-fields": ["login", "password"],
                    "relabeling": {"host": "Wave URL"},
                    "placeholders": {"host": "https://wave.seqera.io",
                                     "extra": '{"seqera_conn_id": "seqera_default", "timeout": 30}'},
                },
                "conn-fields": WAVE_FIELDS,
            },
        ],
        "notifications": ["hatchway.notifiers.kafka.KafkaStatusNotifier", "hatchway.notifiers.notice.NoticeNotifier"],
        "plugins": [{"name": "hatchway", "plugin-class": "hatchway.plugin.HatchwayPlugin"}],
    }
