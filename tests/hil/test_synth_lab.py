"""`hil synth` plays the ship's lab as the live session does: a result is known only
`lab_delay_s` after its sample, and a replay applies it from there, never from the sample."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from chikyu_daq.config.model import load_config
from chikyu_daq.replay.engine import ReplayOptions, replay
from chikyu_daq.store.reader import open_run

REPO = Path(__file__).resolve().parents[2]
DELAY_S = 37.33  # not a whole number of grid steps: the result waits for the next grid point


def _scenario(tmp: Path) -> Path:
    """grade_change (CI riser: the new layer reaches the deck in ~4 min) with a slower lab."""
    text = (REPO / "hil" / "scenarios" / "grade_change.toml").read_text()
    assert "lab_delay_s = 20.0" in text
    path = tmp / "grade_change_late_lab.toml"
    path.write_text(text.replace("lab_delay_s = 20.0", f"lab_delay_s = {DELAY_S}"))
    return path


def test_synth_assays_apply_when_the_lab_reports_them(tmp_path: Path) -> None:
    from chikyu_daq.cli.hil import hil_synth

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        hil_synth(
            scenario=str(_scenario(tmp_path)),
            hours=0.12,
            out=tmp_path / "synth",
            ci_riser=True,
            start="2026-02-01T00:00:00Z",
        )
    run = Path(json.loads(buf.getvalue())["run"])
    cfg = load_config(REPO / "config" / "reference.toml")
    step = round(1e9 / cfg.processing.grid_hz)
    assays = [e for e in open_run(run).events() if e["type"] == "assay"]
    assert len(assays) >= 6  # every minute from 60 s
    for a in assays:  # the first grid point at or after the report
        due = a["t_ns"] + round(DELAY_S * 1e9)
        assert a["applied_ns"] == -(-due // step) * step, a
        assert a["applied_ns"] > due - step

    replay(run, ReplayOptions(out_dir=tmp_path / "replay", report=False), cfg=cfg)
    res = pq.read_table(tmp_path / "replay" / "results.parquet", columns=["t_ns", "grade_ppm"])
    t = res["t_ns"].to_numpy()
    grade = res["grade_ppm"].to_numpy()
    known = [a for a in assays if a["applied_ns"] <= t[-1]]
    assert len(known) >= 5
    for a in assays[len(known) :]:  # reported after the recording ended: never applied
        assert grade[-1] != a["rey_ppm"]
    prev = None
    for a in known:
        at = int(np.searchsorted(t, a["applied_ns"]))
        assert t[at] == a["applied_ns"]
        # the sample's grade shows from the report on, and not at the sample time
        assert grade[at] == a["rey_ppm"]
        before = grade[at - 1]
        assert before != a["rey_ppm"]
        if prev is not None:
            assert before == prev["rey_ppm"]
        sampled = int(np.searchsorted(t, a["t_ns"]))
        assert grade[sampled] != a["rey_ppm"]
        prev = a
