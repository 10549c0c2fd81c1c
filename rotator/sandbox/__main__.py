"""``python -m rotator.sandbox [--host H] [--port N] [--seed S] [--access-log]``."""

from __future__ import annotations

import argparse

from rotator.sandbox.server import serve


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m rotator.sandbox",
        description="Serve the five imitated provider APIs (and /_sandbox admin) on one port.",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--seed", type=int, default=None, help="seed for fault randomness")
    parser.add_argument("--access-log", action="store_true", help="log each request's path")
    args = parser.parse_args(argv)
    serve(host=args.host, port=args.port, seed=args.seed, access_log=args.access_log)


if __name__ == "__main__":
    main()
