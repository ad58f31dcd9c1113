"""``python -m include.simulators.cromwell --port P [--root s3://bucket/prefix] [--s3-endpoint URL]``.

With ``--root`` a finishing workflow writes its files under ``<root>/<name>/<id>``, through
``--s3-endpoint`` when given (moto in tests); S3 credentials come from the environment.
"""

from __future__ import annotations

import sys

from include.simulators.serve import parser, serve


def main(argv: list[str] | None = None) -> int:
    args_parser = parser("python -m include.simulators.cromwell", __doc__)
    args_parser.add_argument("--root", default=None, help="s3://bucket/prefix where workflows write their files")
    args_parser.add_argument("--s3-endpoint", default=None, help="S3 endpoint URL for --root (e.g. moto)")
    args = args_parser.parse_args(argv)
    if args.root is not None and (not args.root.startswith("s3://") or len(args.root) <= len("s3://")):
        args_parser.error(f"--root must be s3://bucket[/prefix], got {args.root!r}")
    if args.s3_endpoint and not args.root:
        args_parser.error("--s3-endpoint needs --root")

    from include.simulators.cromwell.app import create_app

    where = f", workflow roots under {args.root}" if args.root else ""
    return serve(create_app(args.root, args.s3_endpoint), args, f"cromwell simulator on http://{args.host}:{args.port}{where}")


if __name__ == "__main__":
    sys.exit(main())
