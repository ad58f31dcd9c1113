"""Hatchway: a multi-tenant research-workflow platform on Apache Airflow 3.

Installed as the ``hatchway-airflow`` provider distribution (see ``provider_info``); in the
repository the same package is found on ``PYTHONPATH`` (``plugins/``). Importing it costs
nothing: DAG files import only the modules they wire.
"""

__version__ = "0.1.0"


def dags_folder() -> str:
    """Where the installed package keeps its DAG files (point ``[core] dags_folder`` or a DAG bundle here).

    ``python -c "import hatchway; print(hatchway.dags_folder())"``
    """
    from pathlib import Path

    return str(Path(__file__).resolve().parent / "dags")
