"""One way every benchmark hands back its figures: JSON on stdout and in `<out>/<name>.json`.

Imported as a sibling module (the benchmarks run as scripts: `python benchmarks/bench_x.py`);
not named `bench_*`, so `make bench` does not run it.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def json_path(out: Path, name: str) -> Path:
    """`out` itself when it names a `.json` file, else `out/name` (`make bench` passes a folder)."""
    return out if out.suffix == ".json" else out / name


def publish(result: dict[str, Any], out: Path | None, name: str) -> None:
    """Print `result` as JSON and write the same text to `out/name`, or to `out` itself when it
    names a `.json` file (folders created; `None`: print only)."""
    text = json.dumps(result, indent=2)
    print(text)
    if out is None:
        return
    path = json_path(out, name)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text + "\n")
