"""A correct PROTOCOL.md server (the Python reference) that floods its stderr, for the fault tests.

    python tests/servers/noisy.py --count FILE [--mb-per-s N]

A thread writes to stderr as fast as the reader takes it (up to ``--mb-per-s``): 1 MiB lines and 1 MiB
runs with no newline at all, alternately; the bytes written so far go to FILE now and then.
"""

from __future__ import annotations

import argparse
import sys
import threading
import time

from shadowdiff_doge.inprocess import InProcessReducer

from shadowdiff.shadow.serve import MsgpackServer
from shadowdiff.wire.codec import make_unpacker, packb


def flood(count: str, mb_per_s: float) -> None:
    line = b"noise " * ((1 << 20) // 6) + b"\n"
    blob = b"x" * (1 << 20)
    written = 0
    err = sys.stderr.buffer
    started = time.monotonic()
    for n in range(1 << 30):
        err.write(line if n % 2 else blob)
        err.flush()
        written += 1 << 20
        if n % 8 == 0:
            with open(count, "w") as out:
                out.write(str(written))
        ahead = written / (mb_per_s * (1 << 20)) - (time.monotonic() - started)
        if ahead > 0:
            time.sleep(ahead)


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--count", required=True)
    p.add_argument("--mb-per-s", type=float, default=64.0)
    args = p.parse_args()
    threading.Thread(target=flood, args=(args.count, args.mb_per_s), daemon=True).start()
    server = MsgpackServer(InProcessReducer("shadowdiff_doge.reference.state_machine"))
    unpacker = make_unpacker()
    out = sys.stdout.buffer
    while chunk := sys.stdin.buffer.read1(1 << 16):
        unpacker.feed(chunk)
        for req in unpacker:
            out.write(packb(server.handle(req)))
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
