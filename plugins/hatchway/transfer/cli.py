"""Command line of ``python -m hatchway.transfer`` (see the package docstring for usage)."""

from __future__ import annotations

import argparse
import logging
import sys

from hatchway.transfer.config import DEFAULT_CHUNK_SIZE, ENV, ConfigError, load_config

log = logging.getLogger("hatchway.transfer")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

# These libraries log key material or secret payloads at DEBUG (crypt4gh prints session and
# private keys; botocore prints response bodies, e.g. a Secrets Manager answer): whatever
# the verbosity, they stay at WARNING.
_QUIET = ("crypt4gh", "botocore", "boto3", "s3transfer", "urllib3", "google", "requests")


def _parser() -> argparse.ArgumentParser:
    env_help = "\n".join(f"  {name}: {what}" for name, what in ENV.items())
    parser = argparse.ArgumentParser(
        prog="python -m hatchway.transfer",
        description="Fetch Crypt4GH-encrypted files, decrypt them on the fly and write the plaintext "
                    "straight to a gs:// or s3:// work bucket (never to local disk). Every option "
                    "may come from --config; options given here win.",
        epilog=f"environment:\n{env_help}\n\nexit status: 0 all files transferred, 1 a transfer failed, "
               "2 bad arguments or configuration",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", help="JSON file in the TransferConfig shape (what the Helm chart mounts)")
    parser.add_argument("--source-url", help="https:// base URL (Globus HTTPS), or s3://bucket[/prefix] "
                                             "or gs://bucket[/prefix]")
    parser.add_argument("--source-dir", help="folder under the source URL (dir_path_on_guest_collection)")
    parser.add_argument("--file", action="append", metavar="NAME=SIZE",
                        help="an encrypted file and its size in bytes (repeatable; replaces the config's list)")
    parser.add_argument("--destination", help="gs://bucket/prefix or s3://bucket/prefix for the plaintext")
    parser.add_argument("--key-handler", choices=["http", "secretsmanager"], help="where the private key is")
    parser.add_argument("--key-handler-url", help="HTTP key handler URL ({secret_id}/{secret_id_version} "
                                                  "filled in or appended)")
    parser.add_argument("--key-handler-region", help="AWS region of Secrets Manager")
    parser.add_argument("--key-handler-endpoint-url", help="Secrets Manager endpoint override")
    parser.add_argument("--secret-id", help="the key's secret id")
    parser.add_argument("--secret-id-version", help="the key's secret version")
    parser.add_argument("--chunk-size", type=int, help=f"upload chunk in bytes (default {DEFAULT_CHUNK_SIZE})")
    parser.add_argument("--timeout", type=float, help="seconds of network silence before failing")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logs of hatchway.transfer itself")
    return parser


def _files(items: list[str] | None) -> list[dict] | None:
    if not items:
        return None
    files = []
    for item in items:
        name, sep, size = item.rpartition("=")
        if not sep or not name or not size.isdigit():
            raise ConfigError(f"--file {item!r} must be NAME=SIZE with SIZE in bytes")
        files.append({"filename": name, "size": int(size)})
    return files


def _overrides(args: argparse.Namespace) -> dict:
    return {
        "source": {"base_url": args.source_url, "dir": args.source_dir, "files": _files(args.file)},
        "destination": args.destination,
        "key_handler": {"kind": args.key_handler, "url": args.key_handler_url,
                        "region": args.key_handler_region, "endpoint_url": args.key_handler_endpoint_url},
        "secret_key": {"secret_id": args.secret_id, "secret_id_version": args.secret_id_version},
        "chunk_size": args.chunk_size,
        "timeout": args.timeout,
    }


def _logging(verbose: bool) -> None:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    log.setLevel(logging.DEBUG if verbose else logging.INFO)
    for name in _QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)


def main(argv: list[str] | None = None) -> int:
    """Run the transfer. :return: the exit status."""
    args = _parser().parse_args(argv)
    _logging(args.verbose)
    try:
        config = load_config(args.config, _overrides(args))
    except ConfigError as exc:
        print(f"hatchway.transfer: error: {exc}", file=sys.stderr)
        return EXIT_USAGE

    from hatchway.transfer.core import TransferError, run
    from hatchway.transfer.keys import PrivateKeyError
    from hatchway.transfer.storage import StorageError

    names = ", ".join(f.filename for f in config.source.files)
    log.info("Transferring %d file(s) (%s) to %s", len(config.source.files), names, config.destination)
    try:
        done = run(config)
    except (TransferError, PrivateKeyError, StorageError) as exc:
        print(f"hatchway.transfer: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except Exception as exc:  # noqa: BLE001 - still one clear line, and the failing status
        print(f"hatchway.transfer: error: unexpected {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    total = sum(d.plaintext_bytes for d in done)
    log.info("Done: %d file(s), %d plaintext bytes in %s", len(done), total, config.destination)
    return EXIT_OK
