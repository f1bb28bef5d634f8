"""The Python reference reducer (or any upstream-compatible module) served on stdio as a shadow.

python -m shadowdiff_doge.pyserver --msgpack            PROTOCOL.md, with sessions
python -m shadowdiff_doge.pyserver --msgpack --no-sessions   whole states only
python -m shadowdiff_doge.pyserver --server             the older JSON-lines transport
"""

from __future__ import annotations

import sys

from shadowdiff.shadow.serve import JsonLinesServer, MsgpackServer, serve_jsonl, serve_msgpack


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(prog="python -m shadowdiff_doge.pyserver", description=__doc__)
    parser.add_argument(
        "--module", default="shadowdiff_doge.reference.state_machine", help="upstream-compatible module"
    )
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--msgpack", action="store_true", help="PROTOCOL.md over msgpack (default)")
    mode.add_argument("--jsonl", "--server", action="store_true", help="the older JSON-lines transport")
    parser.add_argument("--no-sessions", action="store_true", help="offer only whole-state ops")
    args = parser.parse_args(argv)
    from .domain import DogeDomain
    from .inprocess import InProcessReducer

    reducer = InProcessReducer(args.module)
    if args.jsonl:
        stdout = sys.stdout.buffer

        def write(data: bytes) -> None:
            stdout.write(data)
            stdout.flush()

        return serve_jsonl(
            JsonLinesServer(reducer, DogeDomain()), iter(sys.stdin.buffer.readline, b""), write
        )
    return serve_msgpack(
        MsgpackServer(reducer, not args.no_sessions, DogeDomain()), sys.stdin.buffer, sys.stdout.buffer
    )


if __name__ == "__main__":
    sys.exit(main())
