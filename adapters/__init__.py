"""Domain adapters for shadowdiff (the core in ``shadowdiff/`` never imports this package)."""
