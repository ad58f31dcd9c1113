"""What every simulator's ``__main__`` shares: the common arguments, the parent watch, uvicorn."""

from __future__ import annotations

import argparse
import os
import threading
import time
from typing import Any


def parser(prog: str, doc: str | None) -> argparse.ArgumentParser:
    """An argument parser with ``--host``, ``--port`` and ``--exit-with-parent``."""
    parsed = argparse.ArgumentParser(prog=prog, description=doc)
    parsed.add_argument("--host", default="127.0.0.1")
    parsed.add_argument("--port", type=int, required=True)
    parsed.add_argument("--exit-with-parent", action="store_true",
                        help="exit when the process that started this one is gone (no orphan after a killed test run)")
    return parsed


def serve(app: Any, args: argparse.Namespace, banner: str) -> int:
    """Print ``banner`` and serve ``app`` until stopped (watching the parent if asked)."""
    import uvicorn

    if args.exit_with_parent:
        _watch_parent(os.getppid())
    print(banner, flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False,
                timeout_graceful_shutdown=2)
    return 0


def _watch_parent(parent: int) -> None:
    def watch() -> None:
        while os.getppid() == parent:  # re-parented (to init or a subreaper) once the parent died
            time.sleep(1)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()
