"""Hysteresis alarm timing on analytic steps."""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dsp.alarms import AlarmSpec, alarm_init, hysteresis_alarm

STEP = 100_000_000


def test_density_step_raises_after_min_duration_and_clears_with_hysteresis() -> None:
    t = np.arange(3000, dtype=np.int64) * STEP
    rho = np.full(3000, 1050.0)
    rho[500:1500] = 1120.0  # step up at 50 s, back at 150 s
    rho[1500:1600] = 1095.0  # between clear (1080) and raise (1100): must stay raised
    rho[1600:] = 1060.0
    spec = AlarmSpec(raise_=1100.0, clear=1080.0, min_duration_s=20.0)
    active, ev = hysteresis_alarm("DENSITY", t, rho, spec, alarm_init())
    assert [(e.kind, e.t_ns) for e in ev] == [("raise", 70 * 10**9), ("clear", 180 * 10**9)]
    assert ev[0].value == 1120.0 and ev[1].value == 1060.0
    assert active[699] == 0 and active[700] == 1 and active[1799] == 1 and active[1800] == 0


def test_short_excursion_and_nan_do_not_raise() -> None:
    t = np.arange(1000, dtype=np.int64) * STEP
    x = np.zeros(1000)
    x[100:150] = 5.0  # 5 s, shorter than 10 s
    x[300:400] = 5.0
    x[350] = np.nan  # restarts the timer: 5 s + 4.9 s
    active, ev = hysteresis_alarm("X", t, x, AlarmSpec(1.0, 0.5, 10.0), alarm_init())
    assert ev == [] and not active.any()


def test_low_alarm_direction() -> None:
    t = np.arange(100, dtype=np.int64) * STEP
    x = np.where(np.arange(100) < 50, 1.5, 1.0)
    _, ev = hysteresis_alarm("DEPOSITION_RISK", t, x, AlarmSpec(1.1, 1.2, 1.0), alarm_init())
    assert [(e.kind, e.t_ns) for e in ev] == [("raise", 60 * STEP)]


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(0, 2000), max_size=6))
def test_alarm_chunk_invariant(cuts: list[int]) -> None:
    rng = np.random.default_rng(0)
    t = np.arange(2000, dtype=np.int64) * STEP
    x = np.repeat(rng.random(40), 50) * 2
    spec = AlarmSpec(1.2, 0.8, 2.0)
    whole_a, whole_e = hysteresis_alarm("X", t, x, spec, alarm_init())
    s = alarm_init()
    edges = [0, *sorted(cuts), x.size]
    acts, evs = [], []
    for a, b in pairwise(edges):
        act, ev = hysteresis_alarm("X", t[a:b], x[a:b], spec, s)
        acts.append(act)
        evs += ev
    np.testing.assert_array_equal(np.concatenate(acts), whole_a)
    assert evs == whole_e and len(whole_e) > 2


def test_spec_validation() -> None:
    with pytest.raises(ValueError, match="distinct"):
        AlarmSpec(1.0, 1.0, 1.0)
    with pytest.raises(ValueError, match="min_duration"):
        AlarmSpec(1.0, 0.5, -1.0)
    with pytest.raises(TypeError):
        AlarmSpec("1", 0.5, 1.0)  # type: ignore[arg-type]
