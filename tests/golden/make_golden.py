"""Golden replays: three `hil synth` runs replayed, digested per results column and events.

Issue 11 changes structure, not behaviour: these digests, recorded before it, must stay
bit-identical. ``python tests/golden/make_golden.py`` rewrites ``replays.json`` (only for a
defect fix that changes results, with the reason in the commit message).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import platform
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).with_name("replays.json")
SCENARIOS = ("nominal", "slugging", "sensor_faults")  # each with its TOML's fixed seed
HOURS = 2.0
START = "2026-02-01T00:00:00Z"


def fingerprint() -> dict[str, str]:
    """What decides the float bits: library versions and the CPU the kernels compile for."""
    import gsw
    import llvmlite.binding as llvm
    import numba
    from numpy._core._multiarray_umath import __cpu_features__

    return {
        "python": platform.python_version(),
        "numpy": np.__version__,
        "numba": numba.__version__,
        "llvmlite": llvm.llvm_version_info.__str__(),
        "gsw": gsw.__version__,
        "machine": platform.machine(),
        "cpu": llvm.get_host_cpu_name(),
        "cpu_features": llvm.get_host_cpu_features().flatten(),
        "numpy_simd": ",".join(sorted(k for k, v in __cpu_features__.items() if v)),
    }


def synth(scenario: str, out: Path) -> Path:
    """`chikyu-daq hil synth --scenario NAME --hours 2` (full scale), in process."""
    from chikyu_daq.cli.hil import hil_synth

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        hil_synth(scenario=scenario, hours=HOURS, out=out, start=START)
    return Path(json.loads(buf.getvalue())["run"])


def replay_run(run: Path, out: Path) -> Path:
    """Replay as the tests do: sim clock (data-clocked), config/reference.toml."""
    from chikyu_daq.config.model import load_config
    from chikyu_daq.replay.engine import ReplayOptions, replay

    cfg = load_config(REPO / "config" / "reference.toml")
    replay(run, ReplayOptions(out_dir=out, report=False), cfg=cfg)
    return out


def _event_rows(path: Path) -> list[list[Any]]:
    """(t_ns, alarm, kind, value) per event: the content, whatever the record's key names."""
    rows: list[list[Any]] = []
    for line in path.read_text().splitlines():
        ev = json.loads(line)
        name = ev.get("alarm", ev.get("name"))
        rows.append([int(ev["t_ns"]), name, ev["kind"], ev.get("value")])
    return rows


def digest(out: Path) -> dict[str, Any]:
    """sha256 of each results column's bytes, float summaries, and the events."""
    table = pq.read_table(out / "results.parquet")
    columns: dict[str, Any] = {}
    for name in sorted(table.column_names):
        a = np.ascontiguousarray(table[name].to_numpy())
        x = a.astype(np.float64)
        fin = np.isfinite(x)
        columns[name] = {
            "dtype": str(a.dtype),
            "sha256": hashlib.sha256(a.tobytes()).hexdigest(),
            "sum": float(x[fin].sum()),
            "abs_sum": float(np.abs(x[fin]).sum()),
            "nan": int(np.isnan(x).sum()),
            "inf": int(np.isinf(x).sum()),
        }
    events = _event_rows(out / "events.jsonl")
    canon = json.dumps(events, sort_keys=True, separators=(",", ":"))
    return {
        "rows": table.num_rows,
        "columns": columns,
        "events_sha256": hashlib.sha256(canon.encode()).hexdigest(),
        "events": events,
    }


def make(scenario: str, tmp: Path) -> dict[str, Any]:
    run = synth(scenario, tmp / "synth")
    return digest(replay_run(run, tmp / "replay"))


def main() -> None:
    import tempfile

    golden: dict[str, Any] = {"fingerprint": fingerprint(), "hours": HOURS, "runs": {}}
    for sc in SCENARIOS:
        with tempfile.TemporaryDirectory() as d:
            golden["runs"][sc] = make(sc, Path(d))
        print(sc, golden["runs"][sc]["rows"], len(golden["runs"][sc]["events"]), file=sys.stderr)
    GOLDEN.write_text(json.dumps(golden, indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    main()
