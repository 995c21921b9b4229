"""The one synth writer (`hil synth`, the campaign, fleet archives): a run the reader reads as
recorded, the lab's results applied on the recorded config's grid, the lab optional."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

from chikyu_daq.rig.session import scenario_config
from chikyu_daq.rig.synth import record_synth
from chikyu_daq.store.reader import open_run
from hil.scenario import load_scenario

START_NS = 1_769_904_000_000_000_000  # 2026-02-01, whole seconds
DELAY_S = 37.33  # on neither a 10 Hz nor a 4 Hz grid point


def test_assays_apply_on_the_recorded_configs_grid_and_the_lab_is_optional(
    tmp_path: Path,
) -> None:
    sc = load_scenario("grade_change")  # CI riser: mud on deck within the first minute
    sc = sc.model_copy(update={"plant": sc.plant.model_copy(update={"lab_delay_s": DELAY_S})})
    cfg = scenario_config(sc)
    cfg = cfg.model_copy(
        update={"processing": cfg.processing.model_copy(update={"grid_hz": 4.0})}
    )  # not the 10 Hz default: the grid must be this config's
    step = 250_000_000
    with_lab = record_synth(sc, 0.12, tmp_path / "a", cfg, start_ns=START_NS, seed=5)
    assays = [e for e in open_run(with_lab.path).events() if e["type"] == "assay"]
    assert len(assays) >= 6  # a sample a minute from 60 s
    for a in assays:  # the first 4 Hz grid point at or after the report
        due = a["t_ns"] + round(DELAY_S * 1e9)
        assert a["applied_ns"] % step == 0, a
        assert due <= a["applied_ns"] < due + step, a

    without = record_synth(sc, 0.12, tmp_path / "b", cfg, start_ns=START_NS, seed=5, lab=False)
    assert [e for e in open_run(without.path).events() if e["type"] == "assay"] == []
    # the lab draws its own numbers: the samples are the same either way
    assert open_run(without.path).raw_table().equals(open_run(with_lab.path).raw_table())


def test_a_run_reads_back_with_its_sample_count_progress_and_1_hz_truth(tmp_path: Path) -> None:
    sc = load_scenario("nominal")
    done: list[float] = []
    run = record_synth(
        sc, 0.2, tmp_path, scenario_config(sc), start_ns=START_NS, progress=done.append
    )
    assert done == [600.0, 720.0]  # a block of 600 simulated seconds, then the rest
    assert run.samples == open_run(run.path).raw_table().num_rows > 0
    t = pq.read_table(run.path / "truth.parquet")["t_ns"].to_numpy()
    assert np.array_equal(t, START_NS + np.arange(720, dtype=np.int64) * 10**9)
