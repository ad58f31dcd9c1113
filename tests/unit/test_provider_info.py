"""The provider metadata Airflow reads (``hatchway.provider_info``) and the Seqera connection form."""

from __future__ import annotations

import json
from importlib import resources

import jsonschema
import pytest
from airflow.models.connection import Connection

from hatchway import __version__
from hatchway.hooks.seqera import SeqeraEndpoint, SeqeraHook
from hatchway.hooks.wave import WaveEndpoint, WaveHook
from hatchway.provider_info import PACKAGE, SEQERA_FIELDS, WAVE_FIELDS, get_provider_info


def test_provider_info_conforms_to_airflows_runtime_schema():
    schema = json.loads(resources.files("airflow").joinpath("provider_info.schema.json").read_text())
    info = get_provider_info()
    jsonschema.validate(info, schema)
    assert info["package-name"] == PACKAGE and info["versions"] == [__version__]


def test_every_module_and_class_named_in_the_provider_info_imports():
    import importlib

    info = get_provider_info()
    modules = [m for kind in ("hooks", "operators", "triggers") for entry in info[kind]
               for m in entry["python-modules"]]
    dotted = [c["hook-class-name"] for c in info["connection-types"]] + info["notifications"] + \
        [p["plugin-class"] for p in info["plugins"]]
    for module in modules:
        importlib.import_module(module)
    for path in dotted:
        module, _, name = path.rpartition(".")
        assert getattr(importlib.import_module(module), name)


def test_the_connection_types_are_the_hooks():
    seqera, wave = get_provider_info()["connection-types"]
    assert seqera["connection-type"] == SeqeraHook.conn_type == "seqera"
    assert seqera["hook-name"] == SeqeraHook.hook_name
    assert wave["connection-type"] == WaveHook.conn_type == "wave" and wave["hook-name"] == WaveHook.hook_name
    assert set(wave["conn-fields"]) == set(WAVE_FIELDS)


def test_the_wave_forms_fields_are_what_the_hook_reads():
    conn = Connection(conn_id="wave_ui", conn_type="wave", host="https://wave.example.org",
                      extra=json.dumps({"seqera_conn_id": "seqera_prod", "verify": None}))
    endpoint = WaveEndpoint.from_connection(conn)
    assert (endpoint.base_url, endpoint.seqera_conn_id, endpoint.verify) == ("https://wave.example.org",
                                                                             "seqera_prod", True)
    anonymous = Connection(conn_id="w", conn_type="wave", host="wave.example.org",
                           extra=json.dumps({"seqera_conn_id": None, "verify": False}))
    endpoint = WaveEndpoint.from_connection(anonymous)
    assert (endpoint.base_url, endpoint.seqera_conn_id, endpoint.verify) == ("https://wave.example.org", None, False)


def test_the_forms_fields_are_what_the_hook_reads():
    # As the UI stores them: typed values, empty fields as null.
    extra = {"workspace_id": 42, "compute_env_id": "ce-1", "verify": None}
    assert set(extra) == set(SEQERA_FIELDS)
    conn = Connection(conn_id="seqera_ui", conn_type="seqera", host="https://seqera.example.org/api",
                      password="tok", extra=json.dumps(extra))
    endpoint = SeqeraEndpoint.from_connection(conn)
    assert (endpoint.workspace_id, endpoint.compute_env_id, endpoint.verify) == (42, "ce-1", True)
    unverified = Connection(conn_id="c", conn_type="seqera", host="https://h", password="t",
                            extra=json.dumps({**extra, "verify": False, "compute_env_id": None}))
    endpoint = SeqeraEndpoint.from_connection(unverified)
    assert (endpoint.verify, endpoint.compute_env_id) == (False, None)


@pytest.mark.parametrize("field", [*(SEQERA_FIELDS[f] for f in sorted(SEQERA_FIELDS)),
                                   *(WAVE_FIELDS[f] for f in sorted(WAVE_FIELDS))])
def test_each_form_field_has_a_label_a_description_and_a_nullable_type(field):
    spec = field
    assert spec["label"] and spec["description"] and "null" in spec["schema"]["type"]
