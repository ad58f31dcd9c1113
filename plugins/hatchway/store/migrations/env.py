"""Alembic environment of Hatchway's store (not Airflow's: see ``hatchway.store.store``).

`Store.migrate()` hands us its connection in ``config.attributes["connection"]``; run from
the alembic command line, we open one from ``sqlalchemy.url``.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, text

from hatchway.store.models import Base
from hatchway.store.store import MIGRATE_LOCK_ID, VERSION_TABLE, make_engine

config = context.config


def include_name(name: str | None, type_: str, parent_names: dict) -> bool:
    # The database may be Airflow's too: autogenerate must never see (and offer to drop)
    # tables that are not ours.
    return type_ != "table" or bool(name and name.startswith("hatchway_"))


def _configure(**kwargs) -> None:
    context.configure(target_metadata=Base.metadata, version_table=VERSION_TABLE,
                      include_name=include_name, **kwargs)


def run_migrations_offline() -> None:
    _configure(url=config.get_main_option("sqlalchemy.url"), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def _run(connection: Connection) -> None:
    # One transaction around the version check and every migration, so concurrent starts
    # serialise: the first migrates, the others wait, then find the schema current. On
    # SQLite the lock is the transaction itself (BEGIN IMMEDIATE, see make_engine).
    with connection.begin():
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATE_LOCK_ID})
        _configure(connection=connection, transactional_ddl=True)
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    engine = make_engine(config.get_main_option("sqlalchemy.url"))
    try:
        with engine.execution_options(hatchway_write=True).connect() as connection:
            _run(connection)
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
