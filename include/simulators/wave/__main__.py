"""``python -m include.simulators.wave --port P [--host H] [--exit-with-parent]``."""

from __future__ import annotations

import sys

from include.simulators.serve import parser, serve


def main(argv: list[str] | None = None) -> int:
    args = parser("python -m include.simulators.wave", __doc__).parse_args(argv)

    from include.simulators.wave.app import create_app

    return serve(create_app(), args, f"wave simulator on http://{args.host}:{args.port}")


if __name__ == "__main__":
    sys.exit(main())
