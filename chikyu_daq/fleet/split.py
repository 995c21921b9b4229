"""One long run split in time: partitions with a warm-up, stitched to equal a serial replay.

A partition starts cold `warmup_s(cfg)` before its first kept grid point (`lo`) and three
parallel passes hand over what a warm-up cannot rebuild. Every slot of the kernel state
(:class:`dsp.chain.ChainState`, the ``SCALARS`` record of :mod:`dsp.kernel`) is in one
of these classes; this docstring is the one place that knows them.

Rebuilt by the warm-up (bounded memory): the rings and their sums (Hampel ``h_*``, CV
``a_*``, comparison lanes ``b_*``, slope lanes ``lane``, the seawater-zero lanes ``z_ring``
(the longest stretch), ``zero_streak`` (only ``>= window`` matters) and ``zero_run`` (only up to
the ring's length matters), the FFT ``o_*``), the 1 s lane sums
(``lane_sum_*``, ``lane_n_*``, ``cmp_sum``, ``cmp_cnt``), the batch sums and the previous two batch
means (``batch_*``), the slopes/z (``slope_*``, ``z``, ``z3``), the
transit history ``hist`` and its pointers (``e2_ptr``, ``e3_ptr``, ``e1w_ptr``; absolute
indices, used as differences), the stop time ``stop_t_ns`` (matters only within
``stop_holdoff_s``), the grade id ``grade_id`` (a function of time and the assays), the lane
count ``lane_n`` and grid index ``grid_n`` (used modulo the lattice below), the last valid
rate/variance/sensitivities (``last_rate*``, ``last_var*``, ``last_sys``: read only
when the previous valid point is within ``max_gap_s``, and there is one in the exact stretch
before the hand-over, or none is read).
Alignment: ring refreshes, FFT hops, 1 s lanes and noise batches count from the processor's
first grid point, so every warm-up starts on the lattice of `period_points(cfg)`.

Learned once, kept for ever (neither bounded nor additive), handed over at `learn_ns`:
the seawater reference (``zero_ok``, ``zero``, ``u_zero``, ``zero_t_ns``), the held flow
``q_hold``, the time of the last valid rate (``has_last``, ``last_t_ns``: the gap that
ends the next time a rate is valid), and the outcome of the newest operator-commanded
reference (``ref_state``, ``ref_last``: its start, after which no older command restarts).
They depend on the inputs only (not on each other nor on the integrals), so pass 1 learns
them: partition j runs from its warm-up to ``learn_ns`` of partition j+1, with the first three
marked "unknown" at its own ``learn_ns`` (by then the zero's window and streak equal the serial
ones; a command is known to be new by its start), and reports what it learned; the value at
each partition's ``learn_ns`` is the latest one learned before it (or the initial state). They
are therefore exact.

Commanded seawater references (`SeawaterReference` records, as applied live) are data: a
partition is given those that start on a 1 s lane from its `learn_ns` on (the older ones are
in the learned outcome). A command's window (``ref_t1``, ``ref_lanes``, ``ref_n``, ``ref_mud``,
``ref_far``, ``r_ring``: up to an hour) is never handed over: a partition whose `learn_ns`
falls inside a window starts early enough to collect all of it (`plan`), so no window is open
at any `learn_ns`.

Host clock steps: every partition is fed the recorded forward steps as a serial replay is
(`feed_recorded`), and re-bases at a step as the serial replay does. Past a step the
processor's internal timeline (and its grid lattice) is offset by the step, which a processor
that started after it cannot know: every partition whose learn point would fall after the
run's first recorded step (`clock_step` events, either way) starts before it (`plan`; a run
stepped early splits into longer partitions). A backwards step that was not recorded, or a
partition bound inside the stretch of stamps a backwards step re-covers, is not handled.

Integrals since the run started, handed over additively at `take_ns` (after the learned state
has made every increment exact: three noise batches, for the batch means the empirical random
part differences): ``cum_rey``, ``cum_solids``, ``gap_s``, ``gaps``, ``acc_rand``, the energy
(``cum_energy``, ``cum_solids_e``, ``energy_n``),
``acc_rand_s``, ``acc_d1_*``, ``acc_emp_*``, ``inventory``, the pumped volume ``volume`` and
E1's ``cum_cq``/``cum_vq``, and ``acc_sys`` except the grade's entry. The grade's error
(``acc_sys[I_GRADE]`` within an assay's period, ``grade_done`` the squares of the finished
ones) is not additive: pass 2 stops just before the first grade change of its stretch to read
the period's part so far; the stitch adds ``(carried + part)**2`` as the kernel would. Pass 2
(partition j from its ``take_ns`` to partition j+1's) measures the increments; pass 3 starts
each partition with the sum of those before it and writes the results.

Bounds, from the order of floating-point additions only: the handed-over totals are sums of
partial sums (~1e-15 relative); E2 and E3 look the transit up in the running volume and in
E1's cumulative Cv·dV (differences of large numbers: ``ms_e2_kg_s``, ``transit_s``,
``cv_e3_delayed``, ``cv_e1_window``, ``disagreement_z``, ``disagreement_e3_z``), and the
plug indicator is the slope of a head that contains the inventory total (``plug_*``, and the
stability index where the plug decides it). An alarm whose value sits on its threshold could
flip on such a difference (a stated limit; the test's alarms are identical).

Alarm states (``al_active``, ``al_pending``, ``alarm_bits`` and the processor's SENSOR_FAULT
trackers) are rebuilt unless an alarm is held since before the warm-up: inside its hysteresis
band, through NaN values, or a BAD run longer than the warm-up. Each partition reports its
alarm state at ``lo`` and at its end; a partition that starts in another state than its
predecessor ended in is replayed again with that state set at ``lo`` (in order, after pass 3:
rare, so cheap). ``rejected`` (diagnostic counts, not in the results) counts per partition.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from chikyu_daq.config.model import Config, parse_config
from chikyu_daq.config.params import chain_params
from chikyu_daq.fleet.cluster import Job, run_jobs
from chikyu_daq.live.processor import Processed, Processor
from chikyu_daq.replay.engine import (
    CHUNK_S,
    ResultsWriter,
    feed_recorded,
    iter_chunks,
    recorded_config,
)
from chikyu_daq.store.events import AlarmEdge, AssayEvent, ClockStep, SeawaterReference, encode
from chikyu_daq.store.reader import Run, open_run
from dsp import kernel as K
from dsp.params import kernel_params

#: Integrals handed over additively: float slots, int slots (``acc_sys`` too, but its grade entry).
F_SLOTS = (
    "cum_rey", "cum_solids", "gap_s", "acc_rand", "acc_rand_s", "acc_d1_rey", "acc_d1_s",
    "acc_emp_rey", "acc_emp_s", "inventory", "volume", "cum_cq", "cum_vq", "cum_energy",
    "cum_solids_e",
)  # fmt: skip
I_SLOTS = ("gaps", "energy_n")
N_ACC = 2 * K.N_SYS


def zero_integrals() -> dict[str, Any]:
    """The integrals at the run's first grid point."""
    return {"f": [0.0] * len(F_SLOTS), "i": [0] * len(I_SLOTS), "sys": [0.0] * N_ACC, "g": 0.0}


#: The learned state at the run's first grid point: zero (ok, value, u), held flow, last valid,
#: the newest commanded reference (state, start; None: the processor's initial "none yet").
LEARNED0: dict[str, Any] = {
    "zero": [0, 0.0, 0.0, 0], "q_hold": 0.0, "last": [0, 0], "ref": None,
}  # fmt: skip


@dataclass(frozen=True)
class Part:
    """Partition `index`: samples from `feed_ns`, grid from `warm_ns`, learned state set at
    `learn_ns`, integrals at `take_ns`, results kept in `[lo_ns, hi_ns)`."""

    index: int
    feed_ns: int
    warm_ns: int
    learn_ns: int
    take_ns: int
    lo_ns: int
    hi_ns: int
    last: bool

    @property
    def cold(self) -> bool:
        """Starts after the run's first grid point (else it is the serial replay itself)."""
        return self.take_ns > self.warm_ns or self.learn_ns > self.warm_ns


def _lane_s(cfg: Config) -> float:
    return kernel_params(chain_params(cfg)).lane_points / cfg.processing.grid_hz


def warmup_parts_s(cfg: Config) -> tuple[float, float, float]:
    """(learn, take, keep) seconds: warm-up start → learned state set → integrals set → `lo`.

    learn: the aligner's staleness, the Hampel window and the seawater zero's longest stretch
    (its ring, streak and run then equal the serial ones). take: three noise batches (the
    empirical random part differences batch means two apart) and a maximum gap. keep: the
    transit history (E2, E3 and the volume-weighted E1 window read it back), the longest
    window (CV, comparison, slope, Hampel, FFT ring plus hop), the longest alarm minimum
    duration, the stop holdoff, staleness and a maximum gap, one after another (each feeds
    the next)."""
    p = chain_params(cfg)
    kp = kernel_params(p)
    st = cfg.processing
    step = 1.0 / st.grid_hz
    lane = _lane_s(cfg)
    learn = st.staleness_s + p.hampel_window * step + (kp.zero_stretch_lanes + 1) * lane
    take = 3 * kp.batch_lanes * lane + lane + st.max_gap_s
    s = cfg.stability
    windows = (
        s.cv_window_s,
        s.compare_window_s + lane,
        s.slope_window_s + lane,
        p.hampel_window * step,
        s.osc_n_fft * s.osc_decim * step + s.osc_update_s,
    )
    alarms = [a.min_duration_s for a in cfg.alarms.values()] + [
        spec.min_duration_s for spec in p.alarm_specs()
    ]
    keep = (
        s.max_transit_s
        + max(windows)
        + max(alarms, default=0.0)
        + p.stop_holdoff_s
        + st.staleness_s
        + st.max_gap_s
    )
    return float(learn), float(take), float(keep)


def warmup_s(cfg: Config) -> float:
    """Seconds of history a partition replays before its first kept point (from the config)."""
    return sum(warmup_parts_s(cfg))


def period_points(cfg: Config) -> int:
    """Grid points after which every ring refresh, FFT hop, 1 s lane and noise batch falls on
    the same grid index."""
    kp = kernel_params(chain_params(cfg))
    lane = kp.lane_points
    rings = (
        kp.cv_points,
        kp.compare_lanes * lane,
        kp.slope_lanes * lane,
        lane,
        kp.batch_lanes * lane,
        kp.osc_hop * kp.osc_decim,
        kp.osc_decim,
    )
    return math.lcm(*rings)


def first_grid_ns(run_dir: Path, cfg: Config) -> tuple[int, int, int]:
    """(first raw sample, first grid point of a serial replay, last raw sample)."""
    run = open_run(run_dir)
    rng = run.time_range()
    if rng is None:
        raise ValueError(f"run {run.run_id} has no raw samples")
    proc = Processor(cfg, replay=True)
    chunk = int(CHUNK_S * 1e9)
    for _, blocks in iter_chunks(run, sorted(proc.channels), rng[0], rng[1] + 1, chunk):
        firsts = [int(b[0][0]) for b in blocks.values() if len(b[0])]
        if firsts:
            step = proc.step_ns
            return rng[0], -(-min(firsts) // step) * step, rng[1]
    raise ValueError(f"run {run.run_id} has no samples of the role channels")


def _references(run: Run) -> list[SeawaterReference]:
    """The operator-commanded seawater references, as the live daemon applied them."""
    return [ev for ev in run.records() if isinstance(ev, SeawaterReference)]


def _open_window(refs: list[SeawaterReference], at_ns: int, lane_ns: int) -> int | None:
    """The earliest start of a commanded window that may still be collecting at `at_ns` (its
    outcome comes at the first lane that ends within a lane of its end: two lanes of margin)."""
    return min((r.t_ns for r in refs if r.t_ns < at_ns <= r.end_ns + 2 * lane_ns), default=None)


def _first_step(run: Run) -> int | None:
    """The lowest stamp either side of the run's first recorded host clock step, if any (the
    old side of a forward step, the new side of a backwards one)."""
    steps = [ev for ev in run.records() if isinstance(ev, ClockStep) and ev.step_s != 0]
    return min((min(ev.t_ns, ev.t_ns - round(ev.step_s * 1e9)) for ev in steps), default=None)


def plan(run_dir: Path, cfg: Config, part_s: float) -> list[Part]:
    """Partitions of about `part_s` on the period lattice, each with its warm-up; one whose
    learn point falls in a commanded reference's window starts before the command, one whose
    learn point is past a recorded clock step starts before the first one (and the learn points
    stay in order)."""
    t_first, g0, last = first_grid_ns(run_dir, cfg)
    step = round(1e9 / cfg.processing.grid_hz)
    period = period_points(cfg) * step
    lane_ns = round(_lane_s(cfg) * 1e9)
    run = open_run(run_dir)
    refs = _references(run)
    stepped = _first_step(run)
    # a processor that starts past a clock step has another internal timeline than one that
    # re-based at it (and another grid lattice): warm-ups start before the step
    cap = last + 1 if stepped is None else max(g0, g0 + (stepped - 1 - g0) // period * period)

    def up(s: float) -> int:
        return -(-round(s * 1e9) // period) * period

    learn, take, keep = (up(s) for s in warmup_parts_s(cfg))
    size = max(1, round(part_s * 1e9 / period)) * period
    bounds = list(range(g0, last + 1, size))
    # learn points, from the last partition back: none after the next one's, none in a window
    points = [max(g0, lo - take - keep) for lo in bounds]
    for i in reversed(range(len(points))):
        at = min(points[i], points[i + 1], cap) if i + 1 < len(points) else min(points[i], cap)
        while at > g0 and (t := _open_window(refs, at, lane_ns)) is not None:
            at = max(g0, g0 + (t - g0) // period * period)
        points[i] = at
    parts = []
    for i, (lo, at) in enumerate(zip(bounds, points, strict=True)):
        is_last = i == len(bounds) - 1
        hi = last + 1 if is_last else lo + size
        warm_ns = at - learn
        if warm_ns <= g0:  # the warm-up reaches the run's start: the serial replay itself
            parts.append(Part(i, t_first, g0, g0, g0, lo, hi, is_last))
        else:
            parts.append(Part(i, warm_ns, warm_ns, at, lo - keep, lo, hi, is_last))
    return parts


# -- state hand-over (the processor never needs this live, so it reaches into its state) -----
def _learned(proc: Processor, ref_last0: int) -> dict[str, Any]:
    """The learned state; a group is None if not learned since the marks (`UNKNOWN`, and for
    the commanded reference: no command started after `ref_last0`)."""
    s = proc._state.scalars[0]
    zero = [int(s["zero_ok"]), float(s["zero"]), float(s["u_zero"]), int(s["zero_t_ns"])]
    last = [int(s["has_last"]), int(s["last_t_ns"])]
    ref = [int(s["ref_state"]), int(s["ref_last"])]
    q = float(s["q_hold"])
    return {
        "zero": zero if zero[0] >= 0 else None,
        "q_hold": q if not math.isnan(q) else None,
        "last": last if last[0] >= 0 else None,
        "ref": ref if ref[1] != ref_last0 else None,
    }


def _set_learned(proc: Processor, v: dict[str, Any]) -> None:
    s = proc._state.scalars
    s["zero_ok"], s["zero"], s["u_zero"], s["zero_t_ns"] = v["zero"]
    s["q_hold"] = v["q_hold"]
    s["has_last"], s["last_t_ns"] = v["last"]
    if v["ref"] is not None:  # else no command has started: the processor's own state
        s["ref_state"], s["ref_last"] = v["ref"]


#: "Not learned in this stretch" marks (pass 1 only; the kernel overwrites them when it learns;
#: a commanded reference is known to start by its own time, so it needs no mark).
UNKNOWN: dict[str, Any] = {
    "zero": [-1, 0.0, 0.0, 0], "q_hold": math.nan, "last": [-1, 0], "ref": None,
}  # fmt: skip


def merge_learned(before: dict[str, Any], report: dict[str, Any]) -> dict[str, Any]:
    """The latest learned value of each group: the stretch's own, else the one before it."""
    return {k: before[k] if report[k] is None else report[k] for k in before}


def _integrals(proc: Processor) -> dict[str, Any]:
    s = proc._state
    return {
        "f": [float(s.scalars[k][0]) for k in F_SLOTS],
        "i": [int(s.scalars[k][0]) for k in I_SLOTS],
        "sys": [float(x) for x in s.acc_sys],
        "g": float(s.scalars["grade_done"][0]),
    }


def _set_integrals(proc: Processor, v: dict[str, Any]) -> None:
    s = proc._state
    for k, x in zip(F_SLOTS, v["f"], strict=True):
        s.scalars[k] = x
    for k, n in zip(I_SLOTS, v["i"], strict=True):
        s.scalars[k] = n
    s.acc_sys[:] = v["sys"]
    s.scalars["grade_done"] = v["g"]


def add_integrals(a: dict[str, Any], inc: dict[str, Any]) -> dict[str, Any]:
    """`a` carried over a stretch whose increments (from zero) are `inc`; the grade's entry of
    ``acc_sys`` restarts at each new assay, its finished square going to ``F_G_DONE``."""
    sys_ = [x + y for x, y in zip(a["sys"], inc["sys"], strict=True)]
    g = a["g"] + inc["g"]
    if inc["grade_pre"] is not None:  # a new assay's period began in the stretch
        done = a["sys"][K.I_GRADE] + inc["grade_pre"]
        g = a["g"] + done * done + inc["g"]
        sys_[K.I_GRADE] = inc["sys"][K.I_GRADE]
    return {
        "f": [x + y for x, y in zip(a["f"], inc["f"], strict=True)],
        "i": [x + y for x, y in zip(a["i"], inc["i"], strict=True)],
        "sys": sys_,
        "g": g,
    }


def _assays(run: Run) -> list[AssayEvent]:
    return [ev for ev in run.records() if isinstance(ev, AssayEvent)]


def _grade_change(assays: list[AssayEvent], t0: int, t1: int, step: int, hold: bool) -> int:
    """First grid point in `[t0, t1)` where the kernel starts a new assay's period, else -1:
    where the newest sample time of the valid assays it knows grows (known from the sample
    time, or with `hold` from where the live daemon applied one that came late)."""
    known = sorted(
        (max(a.t_ns, a.applied_ns or a.t_ns) if hold else a.t_ns, a.t_ns)
        for a in assays
        if math.isfinite(a.rey_ppm) and math.isfinite(a.u_rey_ppm)
        and a.rey_ppm >= 0 and a.u_rey_ppm >= 0
    )  # fmt: skip
    newest: int | None = None
    for k, t in known:
        if newest is None or t > newest:
            newest = t
            c = -(-k // step) * step
            if c >= t0:
                return c if c < t1 else -1
    return -1


# -- one partition (a Dask task) ---------------------------------------------------------------
Stop = tuple[int, Callable[[Processor], None]]


def _drive(
    run: Run, proc: Processor, part: Part, end_ns: int, stops: list[Stop],
    keep: Callable[[Processed | None], None],
) -> None:  # fmt: skip
    """Feed `[feed_ns, end_ns)` with the grid from `warm_ns`; at each stop time `t` (in order)
    the grid points before `t` are computed, then the stop's action runs."""
    chunk = int(CHUNK_S * 1e9)
    stops = sorted(stops, key=lambda s: s[0])
    started = False
    for hi, blocks in iter_chunks(run, sorted(proc.channels), part.feed_ns, end_ns, chunk):
        proc.feed_blocks(blocks)
        if not started:
            proc._next_ns = part.warm_ns
            started = True
        while stops and stops[0][0] <= hi:
            t, action = stops.pop(0)
            keep(proc.advance(t - 1))
            action(proc)
        keep(proc.advance(hi - 1))
    for t, action in stops:  # past the last sample (or no samples at all)
        keep(proc.advance(t - 1))
        action(proc)


def _open(run_dir: str, config: dict[str, Any] | None, part: Part) -> tuple[Run, Processor]:
    """The run and a processor fed the recorded events as a serial replay is (`feed_recorded`),
    but only the commanded references that start on a lane from `part.learn_ns` on (older ones'
    outcome is handed over at `learn_ns`)."""
    run = open_run(run_dir)
    cfg = parse_config(config, "--config") if config else recorded_config(run)
    proc = Processor(cfg, replay=True)
    after = part.learn_ns - round(_lane_s(cfg) * 1e9) if part.cold else None
    feed_recorded(proc, run.records(), references_after_ns=after)
    return run, proc


def learn_part(
    run_dir: str, part: Part, config: dict[str, Any] | None, until_ns: int
) -> dict[str, Any]:
    """Pass 1: the learned state at `until_ns`, each group None if not learned since
    `part.learn_ns` (a partition that starts the run knows all of it)."""
    run, proc = _open(run_dir, config, part)
    ref_last0 = int(proc._state.scalars["ref_last"][0])  # no command starts before learn_ns
    stops: list[Stop] = []
    if part.cold:
        stops.append((part.learn_ns, lambda p: _set_learned(p, UNKNOWN)))
    out: dict[str, Any] = {}
    stops.append((until_ns, lambda p: out.update(_learned(p, ref_last0))))
    _drive(run, proc, part, until_ns, stops, lambda _: None)
    return out


def measure_part(
    run_dir: str, part: Part, config: dict[str, Any] | None, learned: dict[str, Any],
    until_ns: int,
) -> dict[str, Any]:  # fmt: skip
    """Pass 2: the integrals' increments over `[part.take_ns, until_ns)`, with the part of the
    grade's error before the first new assay (`grade_pre`, None if none began)."""
    run, proc = _open(run_dir, config, part)
    step = proc.step_ns
    c = _grade_change(_assays(run), part.take_ns, until_ns, step, not proc.params.grade_interpolate)
    out: dict[str, Any] = {"grade_pre": None}

    def grade(p: Processor) -> None:
        out["grade_pre"] = float(p._state.acc_sys[K.I_GRADE])
        p._state.acc_sys[K.I_GRADE] = 0.0  # the kernel adds this square; the stitch does

    stops: list[Stop] = [
        (part.learn_ns, lambda p: _set_learned(p, learned)),
        (part.take_ns, lambda p: _set_integrals(p, zero_integrals())),
        (until_ns, lambda p: out.update(_integrals(p))),
    ]
    if c >= 0:
        stops.insert(2, (c, grade))
    _drive(run, proc, part, until_ns, stops, lambda _: None)
    return out


def replay_part(
    run_dir: str,
    part: Part,
    config: dict[str, Any] | None,
    learned: dict[str, Any],
    integrals: dict[str, Any],
    out_file: str | None,
    alarms: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Pass 3: replay `part` with the learned state set at `learn_ns`, the integrals at
    `take_ns` and (if given) the alarm states at `lo_ns`; writes the kept results to
    `out_file` (if given), returns the kept events and the alarm states at `lo_ns` (before
    any are set) and at the end."""
    run, proc = _open(run_dir, config, part)
    writer = ResultsWriter(Path(out_file)) if out_file else None
    events: list[dict[str, Any]] = []
    rows = 0

    def keep(p: Processed | None) -> None:
        nonlocal rows
        if p is None or not len(p):
            return
        m = p.t_ns >= part.lo_ns
        if not part.last:
            m &= p.t_ns < part.hi_ns
        events.extend(encode(AlarmEdge.of(e)) for e in p.events if e.t_ns >= part.lo_ns)
        # a commanded reference as applied (recorded in the first block, stamped its start)
        kept = (n for n in p.notes if n.t_ns >= part.lo_ns)
        events.extend(encode(n) for n in kept if part.last or n.t_ns < part.hi_ns)
        if writer is not None and m.any():
            idx = np.flatnonzero(m)
            writer.write(Processed(p.t_ns[idx], {k: v[idx] for k, v in p.columns.items()}, []))
        rows += int(m.sum())

    at_lo: dict[str, Any] = {}

    def lo(p: Processor) -> None:
        at_lo.update(_alarms(p))
        if alarms is not None:
            _set_alarms(p, alarms)

    stops: list[Stop] = [(part.lo_ns, lo)]
    if part.cold:
        stops += [
            (part.learn_ns, lambda p: _set_learned(p, learned)),
            (part.take_ns, lambda p: _set_integrals(p, integrals)),
        ]
    _drive(run, proc, part, part.hi_ns, stops, keep)
    if part.last:
        keep(proc.flush())
    if writer is not None:
        writer.close()
    return {
        "index": part.index,
        "events": sorted(events, key=lambda e: int(e["t_ns"])),
        "rows": rows,
        "alarms_lo": at_lo,
        "alarms_hi": _alarms(proc),
    }


def _alarms(proc: Processor) -> dict[str, Any]:
    """The kernel's alarms and the SENSOR_FAULT trackers (active, pending since, BAD since)."""
    s = proc._state
    faults = {
        ch: [int(f.state.active[0]), int(f.state.pending_ns[0]), f.bad_since_ns]
        for ch, f in proc._faults.items()
    }
    return {
        "active": [int(x) for x in s.al_active],
        "pending": [int(x) for x in s.al_pending],
        "faults": faults,
    }


def _set_alarms(proc: Processor, v: dict[str, Any]) -> None:
    s = proc._state
    s.al_active[:] = v["active"]
    s.al_pending[:] = v["pending"]
    # what events compare with
    s.scalars["alarm_bits"] = sum(a << k for k, a in enumerate(v["active"]))
    for ch, (active, pending, bad_since) in v["faults"].items():
        f = proc._faults[ch]
        f.state.active[0], f.state.pending_ns[0], f.bad_since_ns = active, pending, bad_since


# -- the whole split replay --------------------------------------------------------------------
def replay_split(
    client: Any,
    run_dir: Path,
    out: Path,
    *,
    part_s: float,
    config: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Split `run_dir` into partitions, replay them on the cluster in three parallel passes and
    stitch `results.parquet` and `events.jsonl` into `out`. Returns a small summary."""
    run = open_run(run_dir)
    cfg = parse_config(config, "--config") if config else recorded_config(run)
    parts = plan(run.path, cfg, part_s)
    out.mkdir(parents=True, exist_ok=True)
    tmp = out / "parts"
    tmp.mkdir(exist_ok=True)
    path = str(run.path)
    pairs = list(itertools.pairwise(parts))
    # pass 1: the learned state over [learn_j, learn_j+1)
    res = run_jobs(client, [Job(f"split-1-{p.index}", learn_part,
                                (path, p, config, q.learn_ns), {}) for p, q in pairs],
                   what="split pass 1")  # fmt: skip
    _raise_failed(res)
    learned = [LEARNED0]
    for o in res:
        learned.append(merge_learned(learned[-1], o.result))
    # pass 2: the integrals' increments over [take_j, take_j+1)
    res = run_jobs(client, [Job(f"split-2-{p.index}", measure_part,
                                (path, p, config, learned[p.index], q.take_ns), {})
                            for p, q in pairs], what="split pass 2")  # fmt: skip
    _raise_failed(res)
    integ = [zero_integrals()]
    for o in res:
        integ.append(add_integrals(integ[-1], o.result))
    # pass 3: every partition with both handed over, results kept
    res = run_jobs(client, [Job(f"split-3-{p.index}", replay_part,
                                (path, p, config, learned[p.index], integ[p.index],
                                 str(tmp / f"part-{p.index:06d}.parquet")), {})
                            for p in parts], what="split pass 3")  # fmt: skip
    _raise_failed(res)
    results = [o.result for o in res]
    # an alarm held since before a warm-up (inside its hysteresis band, or through NaN values)
    # is not rebuilt: a partition that starts in another alarm state than its predecessor ended
    # in is replayed again from that state (in order; rare, so cheap)
    alarm_reruns = 0
    for k in range(1, len(parts)):
        if results[k]["alarms_lo"] != results[k - 1]["alarms_hi"]:
            pk, prev = parts[k], results[k - 1]["alarms_hi"]
            out_k = str(tmp / f"part-{pk.index:06d}.parquet")
            job = Job(f"split-3-{pk.index}-alarms", replay_part,
                      (path, pk, config, learned[k], integ[k], out_k, prev), {})  # fmt: skip
            again = run_jobs(client, [job], what="split alarm hand-over")
            _raise_failed(again)
            results[k] = again[0].result
            results[k]["alarms_lo"] = results[k - 1]["alarms_hi"]
            alarm_reruns += 1
    stitch(sorted(tmp.glob("part-*.parquet")), out / "results.parquet")
    with open(out / "events.jsonl", "w", encoding="utf-8") as f:
        for r in sorted(results, key=lambda r: int(r["index"])):
            for ev in r["events"]:
                f.write(json.dumps(ev) + "\n")
    for p in tmp.glob("part-*.parquet"):
        p.unlink()
    tmp.rmdir()
    last = pq.ParquetFile(out / "results.parquet")
    tail = last.read_row_group(last.num_row_groups - 1, columns=["cum_rey_kg", "u95_cum_rey_kg"])
    summary = {
        "run_id": run.run_id,
        "cum_rey_kg": float(tail["cum_rey_kg"][-1].as_py()) if tail.num_rows else math.nan,
        "u95_cum_rey_kg": float(tail["u95_cum_rey_kg"][-1].as_py()) if tail.num_rows else math.nan,
        "partitions": len(parts),
        "warmup_s": warmup_s(cfg),
        "warmup_used_s": max((p.lo_ns - p.warm_ns) / 1e9 for p in parts),
        "period_s": period_points(cfg) / cfg.processing.grid_hz,
        "grid_points": sum(r["rows"] for r in results),
        "bounds_ns": [[p.lo_ns, p.hi_ns] for p in parts],
        "alarm_hand_overs": alarm_reruns,
    }
    (out / "split.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return summary


def _raise_failed(outcomes: list[Any]) -> None:
    bad = [f"{o.job.label}: {o.error}" for o in outcomes if o.error is not None]
    if bad:
        raise RuntimeError("split replay failed: " + "; ".join(bad))


def stitch(files: list[Path], dest: Path) -> None:
    """Concatenate partition result files in time order into one Parquet file (streaming)."""
    writer: pq.ParquetWriter | None = None
    try:
        for f in files:
            table = pq.read_table(f)
            if writer is None:
                writer = pq.ParquetWriter(dest, table.schema, compression="zstd")
            writer.write_table(table)
    finally:
        if writer is not None:
            writer.close()
    if writer is None:
        pq.write_table(pa.table({"t_ns": pa.array([], pa.int64())}), dest)
