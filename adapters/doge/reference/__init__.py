"""The project's own reference implementation of the DOGE pair reducer.

``shadowdiff_doge.reference.state_machine`` is an upstream-compatible module (DOGE_REDUCER.md section 1):
anything that can drive the real bot's ``state_machine.py`` can drive it too.
"""
