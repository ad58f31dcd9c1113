"""Issue a bearer token for the WES front door, for local use and the demo.

    python -m hatchway.api.tokens --workspace alice --subject alice@example.org [--ttl 3600] [--conn-id hatchway_api]

Signs with the HS256 key of the connection (its ``password``) and prints the token alone on
stdout, so ``TOKEN=$(python -m hatchway.api.tokens ...)`` works. A bad workspace name exits 2
with the rule it broke; a connection that cannot issue tokens exits 1. In production the OIDC
provider issues tokens, not this command.
"""

from __future__ import annotations

import argparse
import contextlib
import sys

from hatchway.api.auth import API_CONN_ID, issue_token, load_settings
from hatchway.domain.names import WORKSPACE_HELP, NameError_, check_workspace_name


def _workspace(value: str) -> str:
    # argparse shows an ArgumentTypeError's message, but only a generic one for a ValueError.
    try:
        return check_workspace_name(value)
    except NameError_ as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _positive_int(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number of seconds (got {value!r})")
    return number


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m hatchway.api.tokens",
                                     description="Print an HS256 bearer token for one workspace.")
    parser.add_argument("--workspace", required=True, type=_workspace, help=f"the workspace: {WORKSPACE_HELP}")
    parser.add_argument("--subject", required=True, help="who the token speaks for, e.g. an e-mail address")
    parser.add_argument("--ttl", type=_positive_int, default=3600, help="lifetime in seconds (default 3600)")
    parser.add_argument("--conn-id", default=API_CONN_ID,
                        help=f"Airflow connection holding the HS256 key (default {API_CONN_ID})")
    args = parser.parse_args(argv)
    try:
        # Airflow logs to stdout while it loads; stdout carries the token alone.
        with contextlib.redirect_stdout(sys.stderr):
            settings = load_settings(args.conn_id)
        token = issue_token(settings, workspace=args.workspace, subject=args.subject, ttl_seconds=args.ttl)
    except ValueError as exc:
        parser.exit(1, f"{parser.prog}: error: {exc}\n")
    print(token)
    return 0


if __name__ == "__main__":
    sys.exit(main())
