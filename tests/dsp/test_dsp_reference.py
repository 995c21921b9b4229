"""The operator-commanded seawater reference (DESIGN "Estimators"): learned over the commanded
window when no mud is taken and the reading is steady near seawater, refused with a reason
otherwise; the same whether the command comes with the first block (replay) or just before
its window (live)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from numpy.typing import NDArray

from dsp.chain import ChainResult, init_state, process_block
from dsp.params import (
    REF_COLLECTING,
    REF_FAR,
    REF_LEARNED,
    REF_MUD,
    REF_NONE,
    REF_SHORT,
    REF_UNSTEADY,
    ChainParams,
)
from dsp.quality import BAD
from tests.dsp.dsp_synth import SHORT_WINDOWS, chain_defaults, make_block, nominal

# constant seawater (the oracle is plain arithmetic); the automatic reference needs 300 s of
# circulation at >= 50 m3/h, which these 2 min at 30 m3/h never give it
P = dataclasses.replace(chain_defaults(**SHORT_WINDOWS), teos10=False, zero_window_s=300.0)
N = 1200  # 120 s at 10 Hz
START_S, DUR_S = 10.0, 60.0


def seawater(offset: float, *, noise: float = 0.5, q_inj: float = 30.0) -> tuple[
    NDArray[np.int64], dict[str, NDArray[np.float64]], dict[str, NDArray[np.uint8]]
]:  # fmt: skip
    """Seawater circulating slowly (flows agree), read `offset` kg/m3 high, white noise."""
    t, v, q = nominal(N, P, cv=0.0, q_ret=30.0, q_inj=q_inj)
    rng = np.random.default_rng(7)
    v["rho_mix_kg_m3"] = P.rho_w + offset + noise * rng.standard_normal(N)
    return t, v, q


def command(t: NDArray[np.int64]) -> dict[str, NDArray[np.int64]]:
    t0 = int(t[0]) + round(START_S * 1e9)
    return {
        "ref_t_ns": np.array([t0], np.int64),
        "ref_end_ns": np.array([t0 + round(DUR_S * 1e9)], np.int64),
    }


def run(
    t: NDArray[np.int64],
    v: dict[str, NDArray[np.float64]],
    q: dict[str, NDArray[np.uint8]],
    *,
    block: int = N,
    command_at: int = 0,
    p: ChainParams = P,
) -> ChainResult:
    """The chain in blocks of `block` points; the command handed over with the block that
    starts at grid point `command_at` (0: the first, as replay does)."""
    state = init_state(p)
    parts = []
    for a in range(0, N, block):
        extra = command(t) if a <= command_at < a + block else {}
        res, state = process_block(p, state, make_block(t, v, q, slice(a, a + block), **extra))
        parts.append(res.data)
    return ChainResult(t, np.concatenate(parts, axis=1), res.qual, res.alarm_bits, [])


def window(t: NDArray[np.int64]) -> NDArray[np.bool_]:
    rel = (t - t[0]) / 1e9
    return (rel >= START_S) & (rel < START_S + DUR_S)


def test_commanded_reference_is_learned_over_its_window_and_applied() -> None:
    t, v, q = seawater(1.3)
    r = run(t, v, q)
    state = r["ref_cmd_state"]
    rel = (t - t[0]) / 1e9
    assert set(state[rel < START_S]) == {REF_NONE}
    assert set(state[window(t)][15:]) == {REF_COLLECTING}
    assert state[-1] == REF_LEARNED
    # hand computation: the readings inside the window less seawater
    want = float(np.mean(v["rho_mix_kg_m3"][window(t)]) - P.rho_w)
    learned = r["rho_zero_kg_m3"][-1]
    assert abs(learned - want) < 0.02 and abs(learned - 1.3) < 0.1
    u = r["u_rho_zero_kg_m3"][-1]
    assert 0.5 / np.sqrt(600) <= u < 0.2
    # applied from the window's end: the corrected density reads seawater, with an age
    done = np.flatnonzero(r["referenced"] == 1.0)
    assert done.size and rel[done[0]] == pytest.approx(START_S + DUR_S, abs=1.1)
    assert abs(np.mean(r["rho_mix_kg_m3"][done]) - P.rho_w) < 0.1
    age = r["rho_zero_age_s"][done]
    assert age[0] < 0.5 and age[-1] == pytest.approx(rel[-1] - rel[done[0]], abs=0.2)
    # without the command nothing is referenced (the automatic window never fills)
    plain = run(t, v, q, command_at=-1)
    assert plain["referenced"].max() == 0.0 and np.isnan(plain["rho_zero_age_s"]).all()


def test_blocks_and_late_handover_give_the_same_results_as_one_pass() -> None:
    """Live hands the command over just before its window; replay with the first block."""
    t, v, q = seawater(1.3)
    whole = run(t, v, q)
    live = run(t, v, q, block=7, command_at=98)
    np.testing.assert_array_equal(live.data, whole.data)


@pytest.mark.parametrize(
    ("case", "want"),
    [("mud", REF_MUD), ("unsteady", REF_UNSTEADY), ("far", REF_FAR), ("bad", REF_SHORT)],
)
def test_refused_with_its_reason_and_nothing_applied(case: str, want: int) -> None:
    offset = 8.0 if case == "far" else 1.3
    t, v, q = seawater(offset, q_inj=27.0 if case == "mud" else 30.0)
    if case == "mud":  # 10 % more return than injection: the collector takes mud
        v["q_return_m3_h"] = np.full(N, 30.0)
        v["q_injection_m3_h"] = np.full(N, 27.0)
    if case == "unsteady":  # drifting -4.5 to +4.5 kg/m3 through the window: std 2.6 > 2
        w = window(t)
        v["rho_mix_kg_m3"][w] += np.linspace(-4.5, 4.5, int(w.sum()))
    if case == "bad":  # the densitometer BAD for half the window
        w = np.flatnonzero(window(t))
        q["rho_mix_kg_m3"][w[: w.size // 2]] = BAD
    r = run(t, v, q)
    assert r["ref_cmd_state"][-1] == want
    assert r["referenced"].max() == 0.0
