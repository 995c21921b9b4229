"""Raw samples in, grid-aligned estimator results out: the one processor live and replay share.

The processor is clocked by the samples themselves, never by the wall clock: grid point `T` is
computed once samples `lateness_s` newer than `T` have been seen (a dead channel still sends
BAD samples, so the clock keeps moving). Because the DSP kernels are chunk-invariant, a replay
that feeds the recording in big chunks computes the same numbers, bit for bit, as the live
daemon fed a few samples at a time. Samples older than a grid point already computed cannot
change it any more; they are counted as `late_samples` and dropped from processing (the
recorder still keeps them).

A backwards step of the host clock (an operator, chrony's makestep) makes every channel's
stamps jump back; without care all later samples would be "late" until the clock caught up.
A channel's own stamps never go back otherwise, so a jump back by more than
`[clock] step_bound_s` within one channel is a step, seen identically live and in a replay fed
in recording order. The processor then re-bases: it keeps one internal timeline that never goes
back (stamps plus an offset, a whole number of publish periods, so the DSP's integrals and
windows see continuous time and nothing is late), and stamps its results back in wall time.
Channels that have not shown the step yet keep the old offset until they do. Results whose
wall time is ambiguous (the new epoch re-covers stamps the old one already produced, plus the
short bridge between the two) carry `clock_step = 1` and at least UNCERTAIN quality; each
re-base is a `clock_rebase` event (`Processed.notes`) and is counted in `clock_rebases`.
A forward step has the same shape without the overlap: when every reporting channel jumps
ahead by more than the bound with nothing stamped inside the gap, the processor re-bases the
other way (the grid bridges the gap in under one publish period, flagged; no channel goes stale
and no SENSOR_FAULT floods). While that is undecided the grid waits; a sample inside the gap,
or `staleness_s` of held data without every channel, makes it an outage: processed as stamped.

Not thread-safe: the pipeline calls it from one worker thread at a time.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray

from chikyu_daq.config import Config
from chikyu_daq.params import chain_params, sensor_fault_spec
from dsp import kernel as K
from dsp.alarms import AlarmEvent, AlarmState, alarm_init, hysteresis_alarm
from dsp.align import AlignState, align, align_init
from dsp.chain import OPTIONAL_ROLES, ROLES, Block, init_state, process_block
from dsp.params import ALARM_NAMES

log = logging.getLogger(__name__)

#: Config role → dsp input role.
ROLE_INPUTS = {
    "q_return": "q_return_m3_h",
    "q_injection": "q_injection_m3_h",
    "rho_mix": "rho_mix_kg_m3",
    "p_collector": "p_collector_kpa",
    "p_mid": "p_mid_kpa",
    "p_upper": "p_upper_kpa",
    "p_discharge": "p_discharge_bar",
    "p_return_deck": "p_return_deck_bar",
    "torque_a": "torque_a_pct",
    "torque_b": "torque_b_pct",
    "t_deck": "t_deck_c",
}
UNCERTAIN = 1
BAD = 2
#: Result quality columns raised to at least UNCERTAIN where `clock_step` is set.
STEP_QUALITY = ("q_yield", "q_cumulative", "q_stability")
#: Bound on grid points per kernel call (1 h at 10 Hz) so replay memory stays flat.
MAX_POINTS = 36_000

Arrays = tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.uint8]]


@dataclass
class Processed:
    """Results of one advance: grid-rate columns plus the alarm events raised or cleared."""

    t_ns: NDArray[np.int64]
    columns: dict[str, NDArray[np.float64] | NDArray[np.uint8] | NDArray[np.int64]]
    events: list[AlarmEvent]
    #: Non-alarm events of this block for the recording (a `clock_rebase`).
    notes: list[dict[str, Any]] = field(default_factory=list)

    def __len__(self) -> int:
        return int(self.t_ns.shape[0])

    def at_period(self, period_ns: int) -> NDArray[np.intp]:
        """Indices of grid points on whole multiples of `period_ns` (the publish rate)."""
        return np.flatnonzero(self.t_ns % period_ns == 0)


@dataclass
class _FaultTracker:
    """SENSOR_FAULT(channel): seconds a role channel has been BAD without a break."""

    name: str
    state: AlarmState = field(default_factory=alarm_init)
    bad_since_ns: int = -1

    def step(self, t_ns: NDArray[np.int64], bad: NDArray[np.bool_]) -> NDArray[np.float64]:
        idx = np.arange(t_ns.shape[0])
        # start of the current BAD run at each point (-1: not in a run)
        last_good = np.maximum.accumulate(np.where(~bad, idx, -1))
        start_idx = last_good + 1
        start_t = np.where(start_idx < t_ns.shape[0], t_ns[np.minimum(start_idx, len(t_ns) - 1)], 0)
        if self.bad_since_ns >= 0:
            start_t = np.where(last_good < 0, self.bad_since_ns, start_t)
        seconds = np.where(bad, (t_ns - start_t) / 1e9, 0.0)
        if bad.shape[0]:
            self.bad_since_ns = int(start_t[-1]) if bad[-1] else -1
        return seconds


@dataclass
class _Ahead:
    """A candidate forward clock step: internal times before and after the jump."""

    from_ns: int
    first_ns: int
    last_ns: int = -1
    channels: set[str] = field(default_factory=set)
    held: list[tuple[str, NDArray[np.int64], NDArray[np.float64], NDArray[np.uint8]]] = field(
        default_factory=list
    )


class Processor:
    def __init__(self, cfg: Config, *, replay: bool = False) -> None:
        self.params = chain_params(cfg, replay=replay)
        proc = cfg.processing
        self.step_ns = round(1e9 / proc.grid_hz)
        self.publish_ns = round(1e9 / proc.publish_hz)
        self.stale_ns = round(proc.staleness_s * 1e9)
        self.lateness_ns = round(proc.lateness_s * 1e9)
        self.method = proc.align
        self.lag_ns = 0 if proc.align == "hold" else self.step_ns * 2
        roles = cfg.roles.model_dump()
        #: dsp input role → channel id
        self.inputs = {ROLE_INPUTS[r]: ch for r, ch in roles.items() if ch is not None}
        self.channels = set(self.inputs.values())
        self._pending: dict[str, list[Arrays]] = {ch: [] for ch in self.channels}
        self._align: dict[str, AlignState] = {ch: align_init() for ch in self.channels}
        self._state = init_state(self.params)
        self._fault_spec = sensor_fault_spec(cfg)
        self._faults = {ch: _FaultTracker(f"SENSOR_FAULT({ch})") for ch in sorted(self.channels)}
        self._assays: list[tuple[int, float, float]] = []
        self._next_ns: int | None = None
        self._newest_ns = -1  # internal timeline (wall + offset of the sample's epoch)
        self.late_samples = 0
        self.points_done = 0
        # clock re-basing (module docstring)
        self.step_bound_ns = round(cfg.clock.step_bound_s * 1e9)
        #: per epoch: (first internal time of its results, offset internal - wall)
        self._epochs: list[tuple[int, int]] = [(-(2**62), 0)]
        #: internal intervals [lo, hi] whose results are flagged `clock_step`
        self._flagged: list[tuple[int, int]] = []
        self._ch_epoch = dict.fromkeys(self.channels, 0)
        self._ch_last = dict.fromkeys(self.channels, -(2**62))
        self._notes: list[dict[str, Any]] = []
        self._ahead: _Ahead | None = None
        self.clock_rebases = 0

    # -- input ------------------------------------------------------------------------------
    def feed(
        self,
        channel: str,
        t_ns: NDArray[np.int64],
        value: NDArray[np.float64],
        quality: NDArray[np.uint8],
    ) -> None:
        """Queue samples of one channel (in arrival order, time-ordered but for clock steps);
        channels no role uses are ignored."""
        if channel not in self.channels or t_ns.shape[0] == 0:
            return
        t_ns = np.asarray(t_ns, np.int64)
        prev = np.concatenate(([self._ch_last[channel]], t_ns[:-1]))
        jumps = np.flatnonzero(t_ns < prev - self.step_bound_ns)
        self._ch_last[channel] = int(t_ns[-1])
        cuts = [0, *jumps.tolist(), t_ns.shape[0]]
        for k in range(len(cuts) - 1):
            a, b = cuts[k], cuts[k + 1]
            if k > 0:
                self._rebase(channel, int(prev[a]), int(t_ns[a]))
            if b > a:
                self._forward(channel, t_ns[a:b], value[a:b], quality[a:b])
        if self._ahead is not None:
            self._decide()

    def _forward(
        self,
        channel: str,
        t_ns: NDArray[np.int64],
        value: NDArray[np.float64],
        quality: NDArray[np.uint8],
    ) -> None:
        """Queue one time-ordered run of wall stamps, or hold what may follow a forward step.

        A sample more than `step_bound_s` past every sample so far starts a candidate step;
        samples after it are held (the grid waits) until every channel that reports has
        jumped too (a step: re-based) or one reports inside the gap or the held data span
        `staleness_s` (an outage: released as they are)."""
        start, newest_off = self._epochs[-1]
        if self._epochs[self._ch_epoch[channel]][1] > newest_off:
            # the clock stepped forward and this channel has not shown it yet: it joins the
            # newest epoch with its first sample stamped after the step
            join = int(np.searchsorted(t_ns + newest_off, start - self.step_bound_ns))
            if join:
                offset = self._epochs[self._ch_epoch[channel]][1]
                self._queue(channel, t_ns[:join] + offset, value[:join], quality[:join])
            if join == t_ns.shape[0]:
                return
            self._ch_epoch[channel] = len(self._epochs) - 1
            t_ns, value, quality = t_ns[join:], value[join:], quality[join:]
        internal = t_ns + self._epochs[self._ch_epoch[channel]][1]
        ahead = self._ahead
        if ahead is None:
            before = np.maximum(self._newest_ns, np.concatenate(([self._newest_ns], internal[:-1])))
            jump = np.flatnonzero((internal > before + self.step_bound_ns) & (before >= 0))
            cut = int(jump[0]) if jump.size else internal.shape[0]
            if cut:
                self._queue(channel, internal[:cut], value[:cut], quality[:cut])
            if cut == internal.shape[0]:
                return
            ahead = self._ahead = _Ahead(int(before[cut]), int(internal[cut]))
            t_ns, value, quality, internal = t_ns[cut:], value[cut:], quality[cut:], internal[cut:]
        pre = int(np.searchsorted(internal, ahead.from_ns + self.step_bound_ns, side="right"))
        post = int(np.searchsorted(internal, ahead.first_ns - self.step_bound_ns, side="left"))
        if pre:
            self._queue(channel, internal[:pre], value[:pre], quality[:pre])
        if post > pre:  # samples inside the gap: an outage, not a step
            self._release()
            self._queue(channel, internal[pre:], value[pre:], quality[pre:])
            return
        if post < internal.shape[0]:
            ahead.held.append((channel, t_ns[post:], value[post:], quality[post:]))
            ahead.channels.add(channel)
            ahead.last_ns = max(ahead.last_ns, int(internal[-1]))

    def _decide(self) -> None:
        ahead = self._ahead
        assert ahead is not None
        reporting = {ch for ch, t in self._ch_last.items() if t > -(2**62)}
        if reporting <= ahead.channels:
            self._step_forward(ahead)
        elif ahead.last_ns - ahead.first_ns > self.stale_ns:
            self._release()

    def _release(self) -> None:
        """Not a step: queue the held samples at their own stamps."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            for ch, t, v, q in ahead.held:
                self._queue(ch, t + self._epochs[self._ch_epoch[ch]][1], v, q)

    def _step_forward(self, ahead: _Ahead) -> None:
        """Every reporting channel jumped ahead together: the clock stepped forward."""
        self._ahead = None
        old = self._epochs[-1][1]
        delta = (ahead.first_ns - ahead.from_ns - self.step_ns) // self.publish_ns
        delta *= self.publish_ns
        if delta > 0:
            self._epochs.append((ahead.first_ns - delta, old - delta))
            self._flagged.append((ahead.from_ns, ahead.first_ns - delta))
            self.clock_rebases += 1
            step_s = (ahead.first_ns - ahead.from_ns) / 1e9
            self._notes.append(
                {
                    "type": "clock_rebase",
                    "t_ns": ahead.first_ns - old,
                    "channel": "*",
                    "step_s": step_s,
                    "from_ns": ahead.from_ns - old,
                    "offset_s": (old - delta) / 1e9,
                }
            )
            log.warning("clock stepped forward %.3f s: results re-based", step_s)
            for ch in ahead.channels:
                self._ch_epoch[ch] = len(self._epochs) - 1
        for ch, t, v, q in ahead.held:
            self._queue(ch, t + self._epochs[self._ch_epoch[ch]][1], v, q)

    def _rebase(self, channel: str, before_ns: int, after_ns: int) -> None:
        """`channel`'s stamps went back from `before_ns` to `after_ns`: a clock step.

        The channel joins the newest epoch when that keeps its internal time going forward
        (another channel showed this step first); else this is a new step and a new epoch.
        A poll that straddles the step is stamped at its midpoint, so one step may show as
        two smaller ones on that channel: two re-bases, each counted, still nothing late."""
        old = self._epochs[self._ch_epoch[channel]][1]
        newest_off = self._epochs[-1][1]
        if after_ns + newest_off > before_ns + old:
            self._ch_epoch[channel] = len(self._epochs) - 1
            return
        newest = max(self._newest_ns, before_ns + old)
        # the new epoch's first sample lands at least one grid step after the newest one
        need = newest - (after_ns + newest_off) + self.step_ns
        delta = -(-need // self.publish_ns) * self.publish_ns
        offset = newest_off + delta
        self._epochs.append((after_ns + offset, offset))
        self._ch_epoch[channel] = len(self._epochs) - 1
        self._flagged.append((newest, newest + delta))
        self.clock_rebases += 1
        step_s = (after_ns - before_ns) / 1e9
        note = {
            "type": "clock_rebase",
            "t_ns": after_ns,
            "channel": channel,
            "step_s": step_s,
            "from_ns": newest - newest_off,
            "offset_s": offset / 1e9,
        }
        self._notes.append(note)
        log.warning(
            "clock stepped back %.3f s (seen on %s): results re-based, %.0f s flagged clock_step",
            -step_s,
            channel,
            delta / 1e9,
        )

    def _queue(
        self,
        channel: str,
        t_ns: NDArray[np.int64],
        value: NDArray[np.float64],
        quality: NDArray[np.uint8],
    ) -> None:
        done = self._next_ns - self.step_ns if self._next_ns is not None else None
        if done is not None and t_ns[0] <= done:
            keep = t_ns > done
            self.late_samples += int(t_ns.shape[0] - keep.sum())
            t_ns, value, quality = t_ns[keep], value[keep], quality[keep]
            if t_ns.shape[0] == 0:
                return
        self._pending[channel].append((t_ns, value, quality))
        self._newest_ns = max(self._newest_ns, int(t_ns[-1]))

    def feed_blocks(self, blocks: dict[str, Arrays]) -> None:
        for ch, (t, v, q) in blocks.items():
            self.feed(ch, t, v, q)

    def add_assay(self, sampled_at_ns: int, rey_ppm: float, u_rey_ppm: float) -> None:
        """A lab result; its wall-clock sampling time is read in the newest clock epoch."""
        self._assays.append((sampled_at_ns + self._epochs[-1][1], rey_ppm, u_rey_ppm))

    # -- output -----------------------------------------------------------------------------
    def advance(self, until_ns: int | None = None) -> Processed | None:
        """Compute every grid point up to `until_ns` (wall time in the newest clock epoch;
        default: newest sample − lateness)."""
        if until_ns is not None:
            until_ns += self._epochs[-1][1]
        return self._advance(until_ns)

    def _advance(self, until_ns: int | None) -> Processed | None:
        if self._newest_ns < 0:
            return None
        limit = self._newest_ns - self.lateness_ns if until_ns is None else until_ns
        if self._next_ns is None:
            first = min(int(p[0][0][0]) for p in self._pending.values() if p)
            self._next_ns = -(-first // self.step_ns) * self.step_ns
        if limit < self._next_ns:
            return None
        n = (limit - self._next_ns) // self.step_ns + 1
        parts = []
        while n > 0:
            k = min(n, MAX_POINTS)
            grid = self._next_ns + self.step_ns * np.arange(k, dtype=np.int64)
            parts.append(self._compute(grid))
            self._next_ns += k * self.step_ns
            n -= k
        return parts[0] if len(parts) == 1 else _concat(parts)

    def flush(self) -> Processed | None:
        """Compute up to the newest sample: end of a replay or an orderly shutdown."""
        self._release()  # the end of the data: whatever was held is processed as stamped
        return self._advance(self._newest_ns) if self._newest_ns >= 0 else None

    def _compute(self, grid: NDArray[np.int64]) -> Processed:
        values: dict[str, NDArray[np.float64]] = {}
        quality: dict[str, NDArray[np.uint8]] = {}
        events: list[AlarmEvent] = []
        columns: dict[str, NDArray[np.float64] | NDArray[np.uint8] | NDArray[np.int64]] = {}
        aligned: dict[str, tuple[NDArray[np.float64], NDArray[np.uint8]]] = {}
        for ch in sorted(self.channels):
            pend = self._pending[ch]
            if pend:
                t = np.concatenate([p[0] for p in pend])
                v = np.concatenate([p[1] for p in pend])
                q = np.concatenate([p[2] for p in pend])
                pend.clear()
            else:
                t, v, q = np.zeros(0, np.int64), np.zeros(0), np.zeros(0, np.uint8)
            gv, gq, self._align[ch] = align(
                self._align[ch],
                t,
                v,
                q,
                grid,
                method=self.method,
                stale_ns=self.stale_ns,
                lag_ns=self.lag_ns,
            )
            aligned[ch] = (gv, gq)
        for role, ch in self.inputs.items():
            values[role], quality[role] = aligned[ch]
        at, ag, au = self._take_assays()
        block = Block(grid, values, quality, at, ag, au)
        rejected = int(self._state.rejected.sum())
        result, self._state = process_block(self.params, self._state, block)
        if int(self._state.rejected.sum()) > rejected:
            log.warning(
                "absurd or non-finite GOOD samples made BAD (per role, total): %s",
                self.rejected_inputs(),
            )
        events.extend(result.events)
        for ch, tracker in self._faults.items():
            bad = aligned[ch][1] >= BAD
            seconds = tracker.step(grid, bad)
            _, ev = hysteresis_alarm(tracker.name, grid, seconds, self._fault_spec, tracker.state)
            events.extend(ev)
        columns.update(result.as_dict())
        columns.pop("t_ns", None)
        events.sort(key=lambda e: e.t_ns)
        self.points_done += int(grid.shape[0])
        return self._to_wall(grid, columns, events)

    def _to_wall(
        self,
        grid: NDArray[np.int64],
        columns: dict[str, NDArray[np.float64] | NDArray[np.uint8] | NDArray[np.int64]],
        events: list[AlarmEvent],
    ) -> Processed:
        """Internal timeline → wall-clock stamps, flagging results across a clock step."""
        notes, self._notes = self._notes, []
        flag = np.zeros(grid.shape[0], np.uint8)
        if len(self._epochs) == 1:
            columns["clock_step"] = flag
            return Processed(grid, columns, events, notes)
        starts = np.array([s for s, _ in self._epochs], np.int64)
        offsets = np.array([o for _, o in self._epochs], np.int64)
        wall = grid - offsets[np.searchsorted(starts, grid, side="right") - 1]
        for lo, hi in self._flagged:
            flag[(grid >= lo) & (grid <= hi)] = 1
        columns["clock_step"] = flag
        for name in STEP_QUALITY:
            q = columns[name]
            columns[name] = np.where(flag == 1, np.maximum(q, UNCERTAIN), q).astype(np.uint8)
        ev_t = np.array([e.t_ns for e in events], np.int64)
        ev_wall = ev_t - offsets[np.searchsorted(starts, ev_t, side="right") - 1]
        events = [e._replace(t_ns=int(t)) for e, t in zip(events, ev_wall, strict=True)]
        return Processed(wall, columns, events, notes)

    def _take_assays(self) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.float64]]:
        if not self._assays:
            return np.zeros(0, np.int64), np.zeros(0), np.zeros(0)
        t, g, u = zip(*self._assays, strict=True)
        self._assays.clear()
        return np.array(t, np.int64), np.array(g, np.float64), np.array(u, np.float64)

    def rejected_inputs(self) -> dict[str, int]:
        """Per estimator input: GOOD samples rejected as non-finite or physically absurd."""
        names = ROLES + OPTIONAL_ROLES
        return {names[i]: int(n) for i, n in enumerate(self._state.rejected) if n}

    def active_alarms(self) -> list[str]:
        """Alarms active after the last computed grid point (the retained MQTT set)."""
        bits = int(self._state.si[K.S_BITS])
        names = [n for k, n in enumerate(ALARM_NAMES) if bits >> k & 1]
        names += [t.name for t in self._faults.values() if t.state.active[0]]
        return names


def _concat(parts: list[Processed]) -> Processed:
    t = np.concatenate([p.t_ns for p in parts])
    cols = {k: np.concatenate([p.columns[k] for p in parts]) for k in parts[0].columns}
    events = [e for p in parts for e in p.events]
    return Processed(t, cols, events, [n for p in parts for n in p.notes])


def warm_up(cfg: Config) -> float:
    """Load (or compile) every kernel the processor uses, before READY; returns seconds."""
    import time

    t0 = time.perf_counter()
    p = Processor(cfg)
    n = 40
    t = np.arange(n, dtype=np.int64) * 50_000_000 + 1_000_000_000
    for i, ch in enumerate(sorted(p.channels)):
        q = np.zeros(n, np.uint8)
        q[n // 2] = BAD
        p.feed(ch, t, np.full(n, 1000.0 + i), q)
    p.add_assay(int(t[1]), 2000.0, 100.0)
    p.flush()
    return time.perf_counter() - t0
