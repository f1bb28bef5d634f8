"""Running replays on a real machine: corpora and record logs on disk, private files, worker processes
(``--jobs``), Ctrl-C, the determinism check. May import ``shadow`` and everything below it.
"""
