"""The name rules as JSON-schema forms, for the trigger form (Airflow Params): the form refuses
a bad name before a run exists; :mod:`hatchway.domain.names` says which rule it broke.

Constants only: every DAG file imports this when it is parsed (no regex compiled, no class made).
"""

WORKSPACE_MIN, WORKSPACE_MAX = 3, 32
PREFIX_MIN, PREFIX_MAX = 2, 16

WORKSPACE_HELP = "3-32 lowercase letters, digits and single '-', starting with a letter"
WORKSPACE_SCHEMA = {"pattern": r"^[a-z][a-z0-9]*(-[a-z0-9]+)*$", "minLength": WORKSPACE_MIN, "maxLength": WORKSPACE_MAX}
OWNER_SCHEMA = {"pattern": r"^[a-z0-9][a-z0-9._@+-]*$", "minLength": 1, "maxLength": 128}
