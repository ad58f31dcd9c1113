"""``python -m include.simulators.seqera --port P [--token T] [--forbid-workspace ID ...]``.

The token can come from ``$SEQERA_SIM_TOKEN`` instead of ``--token``, which keeps it out of
the process list; it is never printed.
"""

from __future__ import annotations

import argparse
import os
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m include.simulators.seqera", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--token", default=os.environ.get("SEQERA_SIM_TOKEN"),
                        help="Bearer token the API accepts (default: $SEQERA_SIM_TOKEN)")
    parser.add_argument("--forbid-workspace", type=int, action="append", default=[],
                        help="workspace id the token may not see (403); repeatable")
    parser.add_argument("--max-page", type=int, default=None, help="cap on GET /workflow?max=")
    parser.add_argument("--exit-with-parent", action="store_true",
                        help="exit when the process that started this one is gone (no orphan after a killed test run)")
    args = parser.parse_args(argv)
    if not args.token:
        parser.error("a token is required: --token or $SEQERA_SIM_TOKEN")
    if args.exit_with_parent:
        _watch_parent(os.getppid())

    import uvicorn

    from include.simulators.seqera.app import create_app

    app = create_app(args.token, forbidden_workspaces=tuple(args.forbid_workspace), max_page=args.max_page)
    print(f"seqera simulator on http://{args.host}:{args.port}", flush=True)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning", access_log=False,
                timeout_graceful_shutdown=2)
    return 0


def _watch_parent(parent: int) -> None:
    import threading
    import time

    def watch() -> None:
        while os.getppid() == parent:  # re-parented (to init or a subreaper) once the parent died
            time.sleep(1)
        os._exit(0)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


if __name__ == "__main__":
    sys.exit(main())
