"""Airflow plugin entry point: see ``hatchway.plugin``."""

from hatchway.plugin import HatchwayPlugin

__all__ = ["HatchwayPlugin"]
