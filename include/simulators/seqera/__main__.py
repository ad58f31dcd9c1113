"""``python -m include.simulators.seqera --port P [--token T] [--forbid-workspace ID ...]``.

The token can come from ``$SEQERA_SIM_TOKEN`` instead of ``--token``, which keeps it out of
the process list; it is never printed.
"""

from __future__ import annotations

import os
import sys

from include.simulators.serve import parser, serve


def main(argv: list[str] | None = None) -> int:
    args_parser = parser("python -m include.simulators.seqera", __doc__)
    args_parser.add_argument("--token", default=os.environ.get("SEQERA_SIM_TOKEN"),
                             help="Bearer token the API accepts (default: $SEQERA_SIM_TOKEN)")
    args_parser.add_argument("--forbid-workspace", type=int, action="append", default=[],
                             help="workspace id the token may not see (403); repeatable")
    args_parser.add_argument("--max-page", type=int, default=None, help="cap on GET /workflow?max=")
    args = args_parser.parse_args(argv)
    if not args.token:
        args_parser.error("a token is required: --token or $SEQERA_SIM_TOKEN")

    from include.simulators.seqera.app import create_app

    app = create_app(args.token, forbidden_workspaces=tuple(args.forbid_workspace), max_page=args.max_page)
    return serve(app, args, f"seqera simulator on http://{args.host}:{args.port}")


if __name__ == "__main__":
    sys.exit(main())
