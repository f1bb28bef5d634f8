"""``python -m shadowdiff``: the same as the ``shadowdiff`` command."""

from .cli import main

main()
