"""One way every benchmark hands back its figures: JSON on stdout and in `<out>/<name>.json`.

Imported as a sibling module (the benchmarks run as scripts: `python benchmarks/bench_x.py`);
not named `bench_*`, so `make bench` does not run it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def publish(result: dict[str, Any], out: Path, name: str) -> None:
    """Write `result` to `out/name` (creating `out`) and print the same text."""
    text = json.dumps(result, indent=2)
    out.mkdir(parents=True, exist_ok=True)
    (out / name).write_text(text + "\n")
    print(text)
