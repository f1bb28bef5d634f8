"""The DOGE pair-reducer domain: reference reducer, expectations checker, adapters."""
