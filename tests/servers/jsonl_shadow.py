"""A real JSON-lines shadow (DOGE_REDUCER.md section 7, the way ``doge-core-exe --server`` speaks), made
from the reference reducer (or ``--module PATH``), with porting bugs switched on by flag:

    python tests/servers/jsonl_shadow.py [--module PATH] [--bump-profit] [--rewrite-history K]
                                         [--reads-history] [--strict-json] [--log-sizes FILE]

--bump-profit        total_profit + 0.01 after every transition (a transition bug, from any pre-state)
--rewrite-history K  on a booking, every CycleRecord more than K records back from the end gets its
                     exit_fee + 1 (a port that rewrites old history: seen only with the history sent)
--reads-history      total_round_trips = len(completed_cycles) after a booking (a port that reads it)
--strict-json        rejects Infinity/-Infinity/NaN in a request, as a strict JSON reader does
--log-sizes FILE     appends the number of completed_cycles each transition carried (what crossed the pipe)
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from shadowdiff_doge.domain import DogeDomain
from shadowdiff_doge.inprocess import InProcessReducer

from shadowdiff.shadow.serve import JsonLinesServer


def _strict(token: str) -> Any:
    raise ValueError(f"non-finite number {token} is not JSON")


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--module", default="shadowdiff_doge.reference.state_machine")
    p.add_argument("--server", action="store_true", help="accepted, as the real port takes it")
    p.add_argument("--bump-profit", action="store_true")
    p.add_argument("--rewrite-history", type=int, default=-1)
    p.add_argument("--reads-history", action="store_true")
    p.add_argument("--strict-json", action="store_true")
    p.add_argument("--log-sizes")
    args = p.parse_args()
    server = JsonLinesServer(InProcessReducer(args.module), DogeDomain())
    sizes = open(args.log_sizes, "a") if args.log_sizes else None  # noqa: SIM115
    for line in sys.stdin.buffer:
        if not line.strip():
            continue
        try:
            request = json.loads(line, parse_constant=_strict if args.strict_json else None)
        except ValueError as exc:
            reply: dict[str, Any] = {"error": f"bad JSON: {exc}"}
        else:
            state = request.get("state") if isinstance(request, dict) else None
            if sizes is not None and isinstance(state, dict) and request.get("method") == "transition":
                sizes.write(f"{len(state.get('completed_cycles') or [])}\n")
                sizes.flush()
            reply = server.handle(request)
            before = len(state.get("completed_cycles") or []) if isinstance(state, dict) else 0
            after_state = reply.get("state")
            if isinstance(after_state, dict):
                cycles = after_state.get("completed_cycles") or []
                booked = len(cycles) > before
                if args.bump_profit and request.get("method") == "transition":
                    after_state["total_profit"] = after_state.get("total_profit", 0.0) + 0.01
                if booked and args.rewrite_history >= 0:
                    for record in cycles[: max(0, len(cycles) - args.rewrite_history - 1)]:
                        record["exit_fee"] = record.get("exit_fee", 0.0) + 1.0
                if booked and args.reads_history:
                    after_state["total_round_trips"] = len(cycles)
        sys.stdout.write(json.dumps(reply, separators=(",", ":")) + "\n")
        sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
