"""``python -m shadowdiff`` and the ``shadowdiff`` command.

Start-up imports every command (numpy, hypothesis, prometheus_client): a Ctrl-C that lands there gets
the same one line and exit 130 as one that lands in a command, never a traceback.
"""

import os
import sys


def run() -> None:
    try:
        from shadowdiff.cli.main import main
    except KeyboardInterrupt:
        sys.stderr.write("\nshadowdiff: interrupted\n")
        sys.stderr.flush()
        # nothing has started yet; a normal exit after an interrupted import can end in the
        # interpreter re-raising SIGINT on itself (status -2 instead of 130)
        os._exit(130)
    main()


if __name__ == "__main__":
    run()
