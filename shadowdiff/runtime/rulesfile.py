"""Comparison rules read from a file (the core parses text; reading files is the runtime's)."""

from __future__ import annotations

from pathlib import Path

from shadowdiff.core.diff import Rules
from shadowdiff.model.errors import BadInput


def load_rules(path: str | Path) -> Rules:
    """Rules from a TOML (``[[rule]]`` tables) or JSON (``{"rules": [...]}``) file, by its suffix."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise BadInput(f"cannot read rules: {exc.strerror}", str(p)) from exc
    except ValueError as exc:  # not UTF-8
        raise BadInput(f"not valid {'JSON' if p.suffix == '.json' else 'TOML'}: {exc}", str(p)) from exc
    return Rules.parse(text, "json" if p.suffix == ".json" else "toml", str(p))
