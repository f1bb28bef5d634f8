"""A real PROTOCOL.md server (the Python reference) that misbehaves on cue, for the fault tests.

    python tests/servers/misbehaving.py --crash-at N | --hang-at N | --garbage-at N | --error-at N
                                        [--every] [--once MARKER] [--mutate-price-at N]
                                        [--reorder-keys] [--delay-ms MS]
                                        [--crash-on-ts T] [--hang-on-ts T] [--refuse-open]
                                        [--crash-on-work]

N counts step/transition requests (1-based). With --every, every Nth one misbehaves. The --*-on-ts
faults hit every request for the event with that timestamp, however often it is sent (a deterministic
bug); --refuse-open answers every open with an error (a shadow that cannot load any state);
--crash-on-work crashes on every step, transition or call (a shadow that never does any work, so its
client gives up restarting it).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from shadowdiff_doge.inprocess import InProcessReducer

from shadowdiff.shadow.serve import MsgpackServer
from shadowdiff.wire.codec import make_unpacker, packb


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument(
        "--mutate-price-ts-mod",
        type=int,
        default=0,
        help="mutate prices of events whose int(timestamp) %% N == 0 (independent of resends)",
    )
    for name in ("crash-at", "hang-at", "garbage-at", "error-at", "mutate-price-at"):
        p.add_argument(f"--{name}", type=int, default=0)
    p.add_argument("--every", action="store_true")
    p.add_argument("--crash-on-ts", type=float, default=None)
    p.add_argument("--hang-on-ts", type=float, default=None)
    p.add_argument("--refuse-open", action="store_true")
    p.add_argument("--crash-on-work", action="store_true")
    p.add_argument("--delay-ms", type=float, default=0.0, help="think this long before each step's answer")
    p.add_argument(
        "--reorder-keys", action="store_true", help="answer with the result's keys reversed (still valid)"
    )
    p.add_argument(
        "--once", metavar="MARKER", help="misbehave only while MARKER does not exist (across restarts)"
    )
    args = p.parse_args()
    server = MsgpackServer(InProcessReducer("shadowdiff_doge.reference.state_machine"))
    unpacker = make_unpacker()
    steps = 0
    out = sys.stdout.buffer

    def due(n: int) -> bool:
        hit = n > 0 and (steps % n == 0 if args.every else steps == n)
        if hit and args.once:
            if os.path.exists(args.once):
                return False
            open(args.once, "w").close()
        return hit

    while chunk := sys.stdin.buffer.read1(1 << 16):
        unpacker.feed(chunk)
        for req in unpacker:
            if args.refuse_open and req.get("op") == "open":
                refusal = {"kind": "bad_request", "message": "cannot load this state"}
                out.write(packb({"id": req["id"], "error": refusal}))
                continue
            if args.crash_on_work and req.get("op") in ("step", "transition", "call"):
                out.flush()
                os._exit(7)
            stamp_of = ((req.get("event") or {}).get("payload") or {}).get("timestamp")
            if args.crash_on_ts is not None and stamp_of == args.crash_on_ts:
                print("misbehaving: crashing on that event, as every time", file=sys.stderr, flush=True)
                out.flush()
                os._exit(9)
            if args.hang_on_ts is not None and stamp_of == args.hang_on_ts:
                out.flush()
                time.sleep(3600)
            if req.get("op") in ("step", "transition"):
                steps += 1
                if args.delay_ms:
                    out.flush()  # what is answered goes out before we think
                    time.sleep(args.delay_ms / 1000)
                if due(args.crash_at):
                    print("misbehaving: crashing on purpose", file=sys.stderr, flush=True)
                    os._exit(7)
                if due(args.hang_at):
                    print("misbehaving: hanging on purpose", file=sys.stderr, flush=True)
                    time.sleep(3600)
                if due(args.garbage_at):
                    out.write(b"\xc1\xc1 this is not msgpack \xc1")
                    out.flush()
                    continue
                if due(args.error_at):
                    out.write(packb({"id": req["id"], "error": {"kind": "internal", "message": "boom"}}))
                    out.flush()
                    continue
            reply = server.handle(req)
            stamp = int(((req.get("event") or {}).get("payload") or {}).get("timestamp", 1) or 1)
            by_stamp = args.mutate_price_ts_mod and stamp % args.mutate_price_ts_mod == 0
            if req.get("op") == "step" and (due(args.mutate_price_at) or by_stamp) and "ok" in reply:
                for action in reply["ok"]["actions"]:
                    if "price" in action["payload"]:
                        action["payload"]["price"] += 1e-6
            if args.reorder_keys and isinstance(reply.get("ok"), dict):
                reply["ok"] = dict(reversed(reply["ok"].items()))
            out.write(packb(reply))
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
