"""Quality codes shared with the rest of the system (see docs/CONVENTIONS.md)."""

from __future__ import annotations

GOOD = 0
UNCERTAIN = 1
BAD = 2

__all__ = ["BAD", "GOOD", "UNCERTAIN"]
