"""The Hatchway Airflow plugin: the front door (WES + workflow deployment) under ``/hatchway``.

Registered by ``plugins/hatchway_plugin.py`` (Airflow loads plugin files from the plugins
folder by their file name; the ``hatchway`` package itself is in ``.airflowignore``).
The app is built here, but its store, token rules and config are only made on the first
request, so importing the plugin in a scheduler or worker costs no DB or network call.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from hatchway.api.door import LazyDeps, create_app, deps_from_airflow
from hatchway.listeners import TeardownListener

URL_PREFIX = "/hatchway"

front_door = create_app(LazyDeps(deps_from_airflow))


class HatchwayPlugin(AirflowPlugin):
    name = "hatchway"
    fastapi_apps = [{"app": front_door, "url_prefix": URL_PREFIX, "name": "Hatchway front door (GA4GH WES)"}]
    # The operators' workspace pages (hatchway.api.ui), in the Airflow UI's navigation.
    external_views = [{"name": "Hatchway workspaces", "href": f"{URL_PREFIX}/ui/workspaces", "destination": "nav",
                       "url_route": "hatchway-workspaces", "category": "browse"}]
    listeners = [TeardownListener()]
