"""A bot restarted from its bot_runtime.json, for the tap's slot names (tests/test_runtime.py).

    python tests/servers/runtime_bot.py BOT_RUNTIME_JSON [--wait SECONDS]

Loads every saved slot with the reference module's ``from_dict`` (the module the tap wraps), then
steps the slots in turn, through the module's attributes as a bot that imported it would: a TimerTick
at ``saved_at``, then a few PriceTicks. ``--wait``: sleep first (so a tap can connect to its sidecar).
Prints one JSON line: the number of transitions.
"""

from __future__ import annotations

import json
import sys
import time

from shadowdiff_doge.reference import state_machine as sm


def main() -> int:
    path = sys.argv[1]
    if "--wait" in sys.argv:
        time.sleep(float(sys.argv[sys.argv.index("--wait") + 1]))
    with open(path, encoding="utf-8") as stream:
        data = json.load(stream)
    constraints = data.get("constraints", {})
    cfg = sm.EngineConfig(entry_pct=data["entry_pct"], profit_pct=data["profit_pct"],
                          maker_fee_pct=data["maker_fee_pct"], **constraints)  # fmt: skip
    states = {sid: sm.from_dict(state) for sid, state in data["slots"].items()}
    now = float(data["saved_at"])
    done = 0
    for k in range(4):
        for sid in sorted(states):
            state = states[sid]
            event = (
                sm.TimerTick(timestamp=now)
                if k == 0
                else sm.PriceTick(price=state.market_price, timestamp=now)
            )
            states[sid], _actions = sm.transition(state, event, cfg, 4.0)
            done += 1
        now += 60.0
    print(json.dumps({"transitions": done}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
