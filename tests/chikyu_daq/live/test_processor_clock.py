"""The processor across a step of the clock that stamps the samples, fed all at once (a replay
in recording order) or in 50 ms arrival-order ticks (live): nothing late, no channel stale,
one re-base, the grid unbroken in processing time."""

from __future__ import annotations

import numpy as np
import pytest

from chikyu_daq.config.model import Config
from chikyu_daq.live.processor import Processed, Processor
from tests.chikyu_daq.live.test_processor import T0, cfg, feed_in_ticks, synth

__all__ = ["cfg"]

S = 1_000_000_000
STEP_AT_S = 30.0


def stepped(step_s: float) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """60 s of samples whose clock is stepped by `step_s` 30 s in (real time: the index).

    The AI-20 poll that straddles the step is stamped at its midpoint (half the step), as the
    Modbus driver stamps (request + response) / 2."""
    out = {}
    for ch, (t, v, q) in synth(60.0).items():
        after = t >= T0 + STEP_AT_S * S
        t = np.where(after, t + round(step_s * S), t)
        if ch.startswith("ai20."):
            t[int(np.argmax(after))] -= round(step_s * S) // 2
        out[ch] = (t, v, q)
    return out


def run(cfg: Config, step_s: float, tick_s: float | None) -> tuple[Processor, list[Processed]]:
    p = Processor(cfg)
    data = stepped(step_s)
    if step_s > 0:  # the (wall − monotonic) check saw it, as the pipeline's tick would
        p.expect_forward_step(T0 + round((STEP_AT_S + step_s) * S))
    if tick_s is not None:  # the same samples by arrival (real) time
        return p, feed_in_ticks(p, data, synth(60.0), round(tick_s * S), 61 * S)
    # as a replay feeds a recording: 10 s, then all the rest at once, the slowest channel
    # (2 Hz) first: it shows the step before the others, whose last samples before it were
    # stamped up to half a second later
    slow = "dt201.density"
    cut = T0 + 10 * S
    out = []
    for first in (True, False):
        chunk = {}
        for ch in (slow, *data):
            t, v, q = data[ch]
            k = np.arange(t.shape[0]) < np.searchsorted(synth(60.0)[ch][0], cut)
            k = k if first else ~k
            chunk[ch] = (t[k], v[k], q[k])
        p.feed_blocks(chunk)
        r = p.advance(cut - 1) if first else p.flush()
        out += [] if r is None else [r]
    return p, out


@pytest.mark.parametrize("tick_s", [None, 0.05])
@pytest.mark.parametrize("step_s", [-5.0, 5.0])
def test_a_clock_step_is_rebased_not_late_not_stale(
    cfg: Config, step_s: float, tick_s: float | None
) -> None:
    p, parts = run(cfg, step_s, tick_s)
    # only the AI-20 poll that straddled the step, stamped inside it, is not processed
    assert p.late_samples == 3 and p.clock_rebases == 1
    events = [e for r in parts for e in r.events]
    assert not [e for e in events if e.alarm.startswith("SENSOR_FAULT")]
    notes = [n for r in parts for n in r.notes]
    # as seen on the channels: within the slowest one's sample interval (2 Hz)
    assert len(notes) == 1 and notes[0].step_s == pytest.approx(step_s, abs=0.6)
    t = np.concatenate([r.t_ns for r in parts])
    flag = np.concatenate([r.columns["clock_step"] for r in parts])
    d = np.diff(t)
    jumps = np.flatnonzero(d != S // 10)
    assert jumps.size == 1  # the grid is unbroken but for the one jump
    # 60 s of real time at 10 Hz, give or take the bridge (under a second)
    assert 590 <= t.shape[0] <= 610
    if step_s < 0:  # the re-covered stamps are flagged (≈ 5 s), the bridge too
        assert 50 <= int(flag.sum()) <= 80
    else:  # the bridge only
        assert 1 <= int(flag.sum()) <= 11
    assert float(np.nanmax(np.concatenate([r.columns["gap_s"] for r in parts]))) == 0.0


@pytest.mark.parametrize("reverse", [False, True])  # the failing device fed last / first
def test_a_silence_with_failed_polls_inside_is_an_outage_not_a_step(
    cfg: Config, reverse: bool
) -> None:
    data = synth(60.0)
    lo, hi = T0 + 30 * S, T0 + 35 * S
    for ch, (t, v, q) in data.items():
        keep = (t < lo) | (t >= hi)
        if ch.startswith("ai20."):  # its failed polls, one a second, stamped inside the gap
            keep |= (t >= lo) & (t < hi) & ((t - T0) % S < S // 50)
            q = np.where(keep & (t >= lo) & (t < hi), 2, q).astype(np.uint8)
        data[ch] = (t[keep], v[keep], q[keep])
    if reverse:
        data = dict(reversed(data.items()))
    p = Processor(cfg)
    p.feed_blocks(data)
    r = p.flush()
    assert r is not None and p.clock_rebases == 0 and p.late_samples == 0
    assert not r.notes and int(r.columns["clock_step"].sum()) == 0
    assert float(r.columns["gap_s"][-1]) > 0.0  # counted as the data gap it is


def test_a_channel_that_never_jumps_makes_it_an_outage(cfg: Config) -> None:
    data = stepped(5.0)
    t, v, q = data["dt201.density"]  # silent after the step: no consensus within staleness
    keep = t < T0 + STEP_AT_S * S
    data["dt201.density"] = (t[keep], v[keep], q[keep])
    p = Processor(cfg)
    p.feed_blocks(data)
    r = p.flush()
    assert r is not None and p.clock_rebases == 0 and p.late_samples == 0
    assert r.t_ns[-1] >= T0 + 64 * S  # processed as stamped


def test_a_stalled_poller_is_not_a_forward_step(cfg: Config) -> None:
    """Every poll 5 s late alike (a stalled event loop, a paused host) with the clock steady:
    no hint, so no re-base — the stamps are true and the silence is processed as the gap it is."""
    p = Processor(cfg)
    p.feed_blocks(stepped(5.0))
    r = p.flush()
    assert r is not None and p.clock_rebases == 0 and p.late_samples == 0
    assert not r.notes and int(r.columns["clock_step"].sum()) == 0
    assert r.t_ns[-1] >= T0 + 64 * S  # processed as stamped
    assert float(np.nanmax(r.columns["gap_s"])) > 0.0
