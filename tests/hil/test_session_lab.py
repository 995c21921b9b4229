"""The live HIL session plays the ship's lab the scenario defines (interval, delay, error), the
same lab `hil synth` records: a real session on loopback, its recorded assays checked."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path

import pytest

from chikyu_daq.live.pipeline import FEED_MAX_S, TICK_S
from chikyu_daq.rig.session import HilSession
from chikyu_daq.store.reader import open_run
from hil.scenario import load_scenario

pytestmark = pytest.mark.slow


def test_session_lab_follows_the_scenario(tmp_path: Path) -> None:
    sc = load_scenario("nominal")
    lab = {"lab_interval_s": 2.0, "lab_delay_s": 3.0, "lab_error_rel": 0.05}
    sc = sc.model_copy(update={"plant": sc.plant.model_copy(update=lab)})
    session = HilSession(sc, data_dir=tmp_path, duration_s=14.0)
    asyncio.run(session.run())
    assert session.pipeline is not None and session.pipeline_error == ""
    run = open_run(session.pipeline.outputs.recorder.path)  # type: ignore[union-attr]
    assays = [e for e in run.events() if e["type"] == "assay"]
    # sampled every 2 s from 2 s, each posted 3 s later: about five in 14 s (not 60 s / 20 s)
    assert 3 <= len(assays) <= 6, assays
    sampled = [a["t_ns"] for a in assays]
    gaps = [(b - a) / 1e9 for a, b in itertools.pairwise(sampled)]
    assert all(1.5 < g < 2.5 for g in gaps), gaps
    for a in assays:
        assert a["u_rey_ppm"] == pytest.approx(0.05 * a["rey_ppm"])
        # known to the DAQ no earlier than the lab reported it, less how far the computed grid
        # may lag the clock: the processor is fed at least every FEED_MAX_S, a tick late at most
        assert a["applied_ns"] - a["t_ns"] > (3.0 - FEED_MAX_S - 2 * TICK_S) * 1e9, a
