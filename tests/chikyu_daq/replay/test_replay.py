"""Replay: another config changes the results as the physics says, and the summary names it."""

from __future__ import annotations

import gc
import json
from pathlib import Path

import numpy as np
import pytest

from chikyu_daq.config.model import Config, load_config
from chikyu_daq.replay.engine import ReplayOptions, gc_paused, replay
from chikyu_daq.store.writer import Recorder
from tests.chikyu_daq.live.test_processor import T0, synth

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture(scope="module")
def cfg() -> Config:
    # E1's algebra is checked with one constant seawater density and no slip; TEOS-10 and
    # slip are covered by tests/dsp/test_dsp_physics.py and test_processor.py
    ref = load_config(REPO / "config" / "reference.toml")
    physics = ref.physics.model_copy(update={"seawater": "constant", "slip_m_s": 0.0})
    return ref.model_copy(update={"physics": physics})


@pytest.fixture(scope="module")
def run_dir(cfg: Config, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("runs")
    with Recorder(root, manifest={"config": cfg.model_dump(mode="json")}, segment_s=60) as rec:
        rec.write_raw(synth(180.0, seed=3))
        rec.write_event(
            {"type": "assay", "t_ns": T0 + 5 * 10**9, "rey_ppm": 2400.0, "u_rey_ppm": 60.0}
        )
    return rec.path


def test_other_grain_density_scales_yield_as_e1_says(
    cfg: Config, run_dir: Path, tmp_path: Path
) -> None:
    base = replay(run_dir, ReplayOptions(out_dir=tmp_path / "a", report=False))
    heavier = cfg.model_copy(
        update={"physics": cfg.physics.model_copy(update={"rho_s_kg_m3": 3000.0})}
    )
    other = replay(run_dir, ReplayOptions(out_dir=tmp_path / "b", report=False), cfg=heavier)
    rho_w = cfg.physics.rho_w_kg_m3
    # E1: m_s = rho_s * (rho_m - rho_w) / (rho_s - rho_w) * Q, so only rho_s / (rho_s - rho_w) changes
    factor = (3000.0 / (3000.0 - rho_w)) / (2500.0 / (2500.0 - rho_w))
    assert other["cum_rey_kg"] == pytest.approx(base["cum_rey_kg"] * factor, rel=1e-9)
    assert base["config_differences"] == {}
    assert other["config_differences"] == {
        "physics.rho_s_kg_m3": {"recorded": 2500.0, "replay": 3000.0}
    }
    saved = json.loads((tmp_path / "b" / "summary.json").read_text())
    assert saved["config_differences"] == other["config_differences"]


def test_recorded_assay_sets_the_grade(run_dir: Path, tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    replay(run_dir, ReplayOptions(out_dir=tmp_path, report=False))
    res = pq.read_table(tmp_path / "results.parquet").to_pydict()
    t = np.asarray(res["t_ns"])
    grade = np.asarray(res["grade_ppm"])
    assert np.all(grade[t >= T0 + 6 * 10**9] == 2400.0)
    assert np.all(grade[t < T0 + 5 * 10**9] == 2000.0)


def test_window_and_outputs(run_dir: Path, tmp_path: Path) -> None:
    summary = replay(
        run_dir,
        ReplayOptions(out_dir=tmp_path, t_from_ns=T0 + 60 * 10**9, t_to_ns=T0 + 120 * 10**9),
    )
    assert {p.name for p in tmp_path.iterdir()} >= {
        "results.parquet",
        "summary.json",
        "events.jsonl",
        "report.png",
    }
    assert summary["grid_points"] == pytest.approx(600, abs=2)
    assert (tmp_path / "report.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("enabled", [True, False])
def test_the_collector_pauses_for_the_loop_and_is_left_as_it_was(enabled: bool) -> None:
    was = gc.isenabled()
    try:
        (gc.enable if enabled else gc.disable)()
        with pytest.raises(KeyError), gc_paused():
            assert not gc.isenabled()
            raise KeyError("a replay that fails half way")
        assert gc.isenabled() is enabled
    finally:
        (gc.enable if was else gc.disable)()
