"""A real PROTOCOL.md server (the Python reference) whose Nth step answer is hostile, for the decoder tests.

    python tests/servers/hostile.py --at N (--answer-json JSON | --raw-hex HEX [--repeat K]) [--then-hang]

``--answer-json`` is sent as msgpack with the string "ID" replaced by the request's id; ``--raw-hex`` is
written as it is. Every other request is answered correctly.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any

from shadowdiff_doge.inprocess import InProcessReducer

from shadowdiff.shadow.serve import MsgpackServer
from shadowdiff.wire.codec import make_unpacker, packb


def _with_id(value: Any, rid: Any) -> Any:
    if value == "ID":
        return rid
    if isinstance(value, dict):
        return {k: _with_id(v, rid) for k, v in value.items()}
    if isinstance(value, list):
        return [_with_id(v, rid) for v in value]
    return value


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--at", type=int, default=3)
    p.add_argument("--answer-json")
    p.add_argument("--raw-hex")
    p.add_argument("--repeat", type=int, default=1, help="write --raw-hex this many times")
    p.add_argument("--then-hang", action="store_true")
    args = p.parse_args()
    server = MsgpackServer(InProcessReducer("shadowdiff_doge.reference.state_machine"))
    unpacker = make_unpacker()
    out = sys.stdout.buffer
    steps = 0
    while chunk := sys.stdin.buffer.read1(1 << 16):
        unpacker.feed(chunk)
        for req in unpacker:
            if req.get("op") in ("step", "transition"):
                steps += 1
                if steps == args.at:
                    if args.raw_hex is not None:
                        out.write(bytes.fromhex(args.raw_hex) * args.repeat)
                    else:
                        out.write(packb(_with_id(json.loads(args.answer_json), req.get("id"))))
                    out.flush()
                    if args.then_hang:
                        time.sleep(3600)
                    continue
            out.write(packb(server.handle(req)))
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
