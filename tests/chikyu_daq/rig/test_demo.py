"""`make demo` is the README's first command: it must run on the full-scale plant from a plain
shell (no terminal, no servers), record a run and score it against plant truth."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from chikyu_daq.store.reader import list_runs

pytestmark = pytest.mark.slow


def test_demo_runs_full_scale_and_scores_against_truth(tmp_path: Path) -> None:
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "chikyu_daq",
            "demo",
            "--duration",
            "8",
            "--data-dir",
            str(tmp_path),
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stderr
    assert "truth inside interval: yes" in proc.stdout
    assert "FAIL" not in proc.stdout
    (run,) = list_runs(tmp_path)
    pt301 = run.raw(["pt301.pressure"])["pt301.pressure"][1]
    assert pt301.size and 50_000 < float(pt301[pt301 == pt301].mean()) < 70_000  # kPa: 5,700 m
    assert (Path(run.path) / "report.png").stat().st_size > 0
