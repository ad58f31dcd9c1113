"""Defaults of the Seqera integration, in a module light enough for DAG files to import."""

SEQERA_CONN_ID = "seqera_default"
DEFAULT_PAGE_SIZE = 100  # `max` of each list call; the spec states no upper bound
