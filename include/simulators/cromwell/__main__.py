"""``python -m include.simulators.cromwell --port P [--root s3://bucket/prefix] [--s3-endpoint URL]``.

With ``--root`` a finishing workflow writes its files under ``<root>/<name>/<id>``, through
``--s3-endpoint`` when given (moto in tests); S3 credentials come from the environment.
"""

from __future__ import annotations

import argparse
import os
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m include.simulators.cromwell", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--root", default=None, help="s3://bucket/prefix where workflows write their files")
    parser.add_argument("--s3-endpoint", default=None, help="S3 endpoint URL for --root (e.g. moto)")
    parser.add_argument("--exit-with-parent", action="store_true",
                        help="exit when the process that started this one is gone (no orphan after a killed test run)")
    args = parser.parse_args(argv)
    if args.root is not None and (not args.root.startswith("s3://") or len(args.root) <= len("s3://")):
        parser.error(f"--root must be s3://bucket[/prefix], got {args.root!r}")
    if args.s3_endpoint and not args.root:
        parser.error("--s3-endpoint needs --root")
    if args.exit_with_parent:
        _watch_parent(os.getppid())

    import uvicorn

    from include.simulators.cromwell.app import create_app

    app = create_app(args.root, args.s3_endpoint)
    where = f", workflow roots under {args.root}" if args.root else ""
    print(f"cromwell simulator on http://{args.host}:{args.port}{where}", flush=True)
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
