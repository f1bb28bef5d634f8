"""``python -m shadowdiff.tap`` and ``from shadowdiff import tap``: the public path of the live tap.

The tap lives in ``shadowdiff.live.tap``; this name is the same module object (so ``tap.install`` and the
tap's counters are one), and running it with ``-m`` runs the tap's command line.
"""

import sys

from shadowdiff.live import tap as _tap

if __name__ == "__main__":
    sys.exit(_tap.main())
sys.modules[__name__] = _tap
