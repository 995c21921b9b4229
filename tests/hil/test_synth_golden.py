"""`hil synth` output is bit-identical to the recorded golden digests (a refactoring guard).

Three full-scale scenarios (nominal, slugging, sensor_faults), 2 h each with their own seeds,
in the 600 s blocks `hil synth` writes. Every column it writes (channels' t_ns, value,
quality; truth series; the lab assays; the end totals) is digested with sha256. On the
machine that recorded them (same numpy/numba/llvmlite and CPU) the digests must match
exactly; elsewhere floating point may differ in the last bits, so each column's summary
(count, NaNs, sums, sampled values) is compared with rtol 1e-12 instead.

Issue 12's late lab added ``assay/applied_ns`` (the first 10 Hz grid point an hour after each
sample: the reference lab's delay); every other column is as recorded before it.

Regenerate only for an intended change of the plant's output:
``PYTHONPATH=. python tests/hil/test_synth_golden.py --write``.
"""

from __future__ import annotations

import hashlib
import json
import platform
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from hil.plant import synth_blocks
from hil.scenario import load_scenario

GOLDEN = Path(__file__).with_name("golden_synth.json")
SCENARIOS = ("nominal", "slugging", "sensor_faults")
HOURS = 2.0
BLOCK_S = 600.0  # as `hil synth` writes
START_NS = 1_769_904_000_000_000_000  # 2026-02-01T00:00:00Z, the `hil synth` default
SAMPLES = 12  # values kept per column for the cross-machine comparison
RTOL = 1e-12


def fingerprint() -> str:
    """What decides the last bit of a float: library versions and the CPU's instructions."""
    import llvmlite
    import llvmlite.binding as llvm
    import numba

    parts = [
        platform.machine(),
        np.__version__,
        numba.__version__,
        llvmlite.__version__,
        llvm.get_host_cpu_name(),
        llvm.get_host_cpu_features().flatten(),
    ]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:16]


def _summary(a: np.ndarray) -> dict[str, Any]:
    arr = np.asarray(a)
    x = arr.astype(np.float64)
    finite = x[np.isfinite(x)]
    idx = np.linspace(0, max(arr.shape[0] - 1, 0), SAMPLES).astype(np.int64)
    return {
        "sha256": hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest(),
        "dtype": str(arr.dtype),
        "n": int(arr.shape[0]),
        "nan": int(np.isnan(x).sum()),
        "sum": float(finite.sum()),
        "sum_abs": float(np.abs(finite).sum()),
        "samples": [float(v) for v in x[idx]] if arr.shape[0] else [],
    }


def synth_digests(name: str) -> dict[str, dict[str, Any]]:
    """Every column one scenario's recording writes, summarised."""
    sc = load_scenario(name).at_full_scale()
    blocks = list(synth_blocks(sc, HOURS, START_NS, BLOCK_S))
    cols: dict[str, dict[str, Any]] = {}
    for cid in blocks[0].channels:
        for i, part in enumerate(("t_ns", "value", "quality")):
            cols[f"{cid}/{part}"] = _summary(np.concatenate([b.channels[cid][i] for b in blocks]))
    for key in blocks[0].truth:
        cols[f"truth/{key}"] = _summary(np.concatenate([b.truth[key] for b in blocks]))
    assays = [a for b in blocks for a in b.assays]
    for part in ("t_ns", "rey_ppm", "u_rey_ppm", "applied_ns"):
        cols[f"assay/{part}"] = _summary(np.array([getattr(a, part) for a in assays]))
    totals = blocks[-1].totals.as_dict()
    cols["totals"] = _summary(np.array(list(totals.values()), dtype=np.float64))
    return cols


def _close(got: dict[str, Any], want: dict[str, Any]) -> bool:
    if (got["dtype"], got["n"], got["nan"]) != (want["dtype"], want["n"], want["nan"]):
        return False
    g = np.array([got["sum"], got["sum_abs"], *got["samples"]])
    w = np.array([want["sum"], want["sum_abs"], *want["samples"]])
    return bool(np.allclose(g, w, rtol=RTOL, atol=0.0, equal_nan=True))


@pytest.mark.parametrize("name", SCENARIOS)
def test_synth_matches_the_golden_digests(name: str) -> None:
    golden = json.loads(GOLDEN.read_text())
    want = golden["scenarios"][name]
    got = synth_digests(name)
    assert set(got) == set(want)
    if golden["fingerprint"] == fingerprint():
        differ = [k for k in want if got[k]["sha256"] != want[k]["sha256"]]
    else:
        differ = [k for k in want if not _close(got[k], want[k])]
    assert not differ, f"{name}: {len(differ)} columns changed, e.g. {differ[:5]}"


def _write() -> None:
    lines = [f'{{"fingerprint": "{fingerprint()}", "hours": {HOURS}, "scenarios": {{']
    for i, name in enumerate(SCENARIOS):
        cols = synth_digests(name)
        lines.append(f" {json.dumps(name)}: {{")
        body = [f"  {json.dumps(k)}: {json.dumps(v, sort_keys=True)}" for k, v in cols.items()]
        lines.append(",\n".join(body))
        lines.append(" }" + ("," if i < len(SCENARIOS) - 1 else ""))
    GOLDEN.write_text("\n".join([*lines, "}}"]) + "\n")  # a column a line: diffs read well


if __name__ == "__main__":
    if sys.argv[1:] != ["--write"]:
        raise SystemExit("usage: python tests/hil/test_synth_golden.py --write")
    _write()
