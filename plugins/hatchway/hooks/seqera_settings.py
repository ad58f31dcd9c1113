"""Defaults of the Seqera integration, in a module light enough for DAG files to import."""

SEQERA_CONN_ID = "seqera_default"
SEQERA_EVENT_XCOM = "seqera_event"  # the wait's event, in XCom for notify and teardown tasks
DEFAULT_PAGE_SIZE = 100  # `max` of each list call; the spec states no upper bound
ADAPTIVE_PAGE_MAX = 1000  # the shared poller's largest `max`; pages beyond it are still followed


def poll_page_size(waiting: int, configured: int = DEFAULT_PAGE_SIZE) -> int:
    """``max`` of the shared poller's list calls: large enough that one page holds every run
    waiting in the workspace, with a margin for finished runs listed among them, so one call
    per interval usually suffices; never below ``configured``, never above
    :data:`ADAPTIVE_PAGE_MAX` (a server that caps ``max`` lower still answers ``totalSize``, and
    the poller follows the pages)."""
    return max(configured, min(ADAPTIVE_PAGE_MAX, waiting + waiting // 4 + 10))
