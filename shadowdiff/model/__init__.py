"""Values: the frozen attrs records every layer speaks (events, contexts, outcomes, divergences), the
records a replay consumes, and the one exception root. Imports nothing of shadowdiff; attrs only.
"""

from __future__ import annotations

from shadowdiff.model.values import *  # noqa: F403  (``shadowdiff.model.Context`` and friends)
