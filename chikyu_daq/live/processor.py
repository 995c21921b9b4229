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
`[clock] step_bound_s` within one channel is a step. The processor then re-bases: it keeps one
internal timeline that never goes back (stamps plus an offset, a whole number of grid steps,
so the DSP's integrals and windows see continuous time and nothing is late; the bridge between
the two sides is one or two grid steps), and stamps its results back in wall time. Channels
that have not shown the step yet keep the old offset until they do. Results whose wall time
is ambiguous (the new epoch re-covers stamps the old one already produced, and the bridge)
carry `clock_step = 1` and at least UNCERTAIN quality; each re-base is a `clock_rebase` event
(`Processed.notes`), counted in `clock_rebases`. The bridge's length depends on the newest
sample of any channel at the step, so a replay fed in bigger chunks may bridge a step or so
differently from the live daemon: equal results but for those points.

A forward step has the same shape without the overlap, and so has a stalled event loop or a
paused host (every poll late alike): only where (wall − monotonic) was seen jumping ahead near
that time (`expect_forward_step`: the pipeline checks every tick, replay reads the recorded
`clock_step` events) does a jump of every reporting channel by more than the bound make the
processor re-base the other way (the grid bridges the gap in one or two steps, flagged; no
channel goes stale and no SENSOR_FAULT floods).
While that is undecided the grid waits; two or more samples of a channel stamped inside the
gap (a failing link's polls), or `staleness_s` of held data without every channel, make it an
outage: processed as stamped.

A poll that straddles a step is stamped at its midpoint, inside the step: that one sample per
channel is not processed (counted in `late_samples`, still in the recording). To tell it from
the step, a channel's last sample after a jump back waits for the next one (so does the grid).

Not thread-safe: the pipeline calls it from one worker thread at a time.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

from chikyu_daq.config.model import Config
from chikyu_daq.config.params import chain_params, sensor_fault_spec
from chikyu_daq.store.events import ClockRebase, SeawaterReference
from drivers.sample import SampleBlock
from dsp.alarms import AlarmEvent, AlarmState, alarm_init, hysteresis_alarm
from dsp.align import AlignState, align, align_init
from dsp.chain import OPTIONAL_ROLES, ROLES, Block, init_state, process_block
from dsp.params import ALARM_NAMES, INPUT_RANGES, POWER_ROLES, REF_STATES, ROLE_BY_KEY
from dsp.quality import BAD, UNCERTAIN

log = logging.getLogger(__name__)

#: Result quality columns raised to at least UNCERTAIN where `clock_step` is set.
STEP_QUALITY = ("q_yield", "q_cumulative", "q_stability")
#: How far a forward-step hint (a wall − monotonic jump) may lie from the first sample after it:
#: the interfaces' clock check runs once a second, the pipeline's every tick.
FORWARD_HINT_NS = 2_000_000_000
#: Bound on grid points per kernel call (1 h at 10 Hz) so replay memory stays flat.
MAX_POINTS = 36_000


@dataclass
class Processed:
    """Results of one advance: grid-rate columns plus the alarm events raised or cleared."""

    t_ns: NDArray[np.int64]
    columns: dict[str, NDArray[np.float64] | NDArray[np.uint8] | NDArray[np.int64]]
    events: list[AlarmEvent]
    #: Non-alarm events of this block for the recording (a `clock_rebase`, an operator's
    #: `seawater_reference` as applied).
    notes: list[ClockRebase | SeawaterReference] = field(default_factory=list)

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
    """A candidate forward clock step: the newest internal time before it, and the samples
    held since (per channel, stamped on the internal timeline)."""

    from_ns: int
    held: dict[str, list[SampleBlock]] = field(default_factory=dict)


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
        self.inputs = {ROLE_BY_KEY[r]: ch for r, ch in roles.items() if ch is not None}
        self.channels = set(self.inputs.values())
        self._pending: dict[str, list[SampleBlock]] = {ch: [] for ch in self.channels}
        self._align: dict[str, AlignState] = {ch: align_init() for ch in self.channels}
        self._state = init_state(self.params)
        self._fault_spec = sensor_fault_spec(cfg)
        # the drives' shaft power has none of its own: the drive's torque (same device and
        # link) raises it, and a second alarm for one cause is a duplicate (EEMUA 191)
        watched = {ch for r, ch in self.inputs.items() if r not in POWER_ROLES}
        self._faults = {ch: _FaultTracker(f"SENSOR_FAULT({ch})") for ch in sorted(watched)}
        self._assays: list[tuple[int, float, float]] = []
        #: replay: assays the live daemon knew only from a later grid point (internal time)
        self._held: list[tuple[int, tuple[int, float, float]]] = []
        self._references: list[SeawaterReference] = []
        self._ref_state = 0.0
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
        self._ch_period = dict.fromkeys(self.channels, 0)  # newest sample interval
        self._ch_first: dict[str, int] = {}  # internal time of a channel's first sample
        self._notes: list[ClockRebase | SeawaterReference] = []
        self._ahead: _Ahead | None = None
        #: Wall times at which (wall − monotonic) was seen to jump ahead: only those make a
        #: forward jump of the stamps a clock step (a stalled poller looks the same).
        self._forward_hints: list[int] = []
        #: per channel: a last sample that jumped back, until the next one says how
        self._tentative: dict[str, SampleBlock] = {}
        self.clock_rebases = 0

    # -- input ------------------------------------------------------------------------------
    def feed(
        self,
        channel: str,
        t_ns: NDArray[np.int64],
        value: NDArray[np.float64],
        quality: NDArray[np.uint8],
        *,
        final: bool = False,
    ) -> None:
        """Queue samples of one channel (in arrival order, time-ordered but for clock steps);
        channels no role uses are ignored."""
        if channel not in self.channels or t_ns.shape[0] == 0:
            return
        t_ns = np.asarray(t_ns, np.int64)
        tentative = self._tentative.pop(channel, None)
        if tentative is not None:
            t_ns = np.concatenate((tentative[0], t_ns))
            value = np.concatenate((tentative[1], value))
            quality = np.concatenate((tentative[2], quality))
        last, bound = self._ch_last[channel], self.step_bound_ns
        while True:  # bounded: each pass removes a sample
            prev = np.concatenate(([last], t_ns[:-1]))
            back = t_ns < prev - bound
            # a poll straddling a backwards step is stamped inside it (at its midpoint): two
            # jumps back in a row. That sample is not processed (counted; still recorded).
            straddle = np.flatnonzero(back[:-1] & back[1:])
            if not straddle.size:
                break
            i = int(straddle[0])
            self.late_samples += 1
            t_ns, value, quality = np.delete(t_ns, i), np.delete(value, i), np.delete(quality, i)
        if back[-1] and not final:  # a jump back on the last sample: wait for the next one
            self._tentative[channel] = SampleBlock(t_ns[-1:], value[-1:], quality[-1:])
            t_ns, value, quality, prev = t_ns[:-1], value[:-1], quality[:-1], prev[:-1]
            if t_ns.shape[0] == 0:
                return
        jumps = np.flatnonzero(t_ns < prev - bound)
        gaps = np.diff(t_ns)
        if gaps.shape[0] and 0 < gaps[-1] <= 2 * bound:  # a sample interval, not a step
            self._ch_period[channel] = int(gaps[-1])
        self._ch_last[channel] = int(t_ns[-1])
        cuts = [0, *jumps.tolist(), t_ns.shape[0]]
        for k in range(len(cuts) - 1):
            a, b = cuts[k], cuts[k + 1]
            if k > 0:
                self._rebase(channel, int(prev[a]), int(t_ns[a]))
            if b > a:  # a re-based run lands past the bridge by design: not a forward step
                prior = last if k == 0 else None
                run = SampleBlock(t_ns[a:b], value[a:b], quality[a:b])
                self._forward(channel, run, prior=prior)

    def _forward(self, channel: str, run: SampleBlock, *, prior: int | None) -> None:
        """Queue one time-ordered run of wall stamps, or hold what may follow a forward step.

        A sample more than `step_bound_s` past every sample so far opens a candidate step;
        what follows it is held (the grid waits) and `_decide` judges it. Only a jump in the
        channel's own stamps counts (`prior`: its sample before these; None right after a
        re-base, which lands past a bridge by design): a device's first samples at start-up
        may well be ahead of the one device that answered before it."""
        t_ns, value, quality = run
        start, newest_off = self._epochs[-1]
        if self._epochs[self._ch_epoch[channel]][1] > newest_off:
            # the clock stepped forward and this channel has not shown it yet: it joins the
            # newest epoch with its first sample stamped after the step
            join = int(np.searchsorted(t_ns + newest_off, start - self.step_bound_ns))
            if join:
                offset = self._epochs[self._ch_epoch[channel]][1]
                self._queue(
                    channel, SampleBlock(t_ns[:join] + offset, value[:join], quality[:join])
                )
            if join == t_ns.shape[0]:
                return
            self._ch_epoch[channel] = len(self._epochs) - 1
            t_ns, value, quality = t_ns[join:], value[join:], quality[join:]
            prior = None
        internal = t_ns + self._epochs[self._ch_epoch[channel]][1]
        first = self._ch_first.setdefault(channel, int(internal[0]))
        ahead = self._ahead
        if ahead is None:
            if prior is None or prior <= -(2**62):
                own = np.concatenate(([np.iinfo(np.int64).max // 2], internal[:-1]))
            else:
                own = np.concatenate(([prior + internal[0] - t_ns[0]], internal[:-1]))
            before = np.maximum(self._newest_ns, own)
            # past the bound and this channel's own sample interval (a 2 Hz channel fed alone)
            reach = self.step_bound_ns + self._ch_period[channel]
            # and only once the grid runs or the channel has reported for `staleness_s` (a
            # replay's first chunk is fed whole before the grid runs): start-up (devices
            # connecting one by one) is no step
            running = self._next_ns is not None or own >= first + self.stale_ns
            ahead_of_all = (internal > before + reach) & running
            jump = np.flatnonzero(ahead_of_all & (internal > own + reach))
            shift = int(internal[0] - t_ns[0])  # this channel's epoch offset
            if not jump.size or not self._hinted(int(own[jump[0]]) - shift, int(t_ns[jump[0]])):
                self._queue(channel, SampleBlock(internal, value, quality))
                return
            ahead = self._ahead = _Ahead(int(before[jump[0]]))
        pre = int(np.searchsorted(internal, ahead.from_ns + self.step_bound_ns, side="right"))
        if pre:
            self._queue(channel, SampleBlock(internal[:pre], value[:pre], quality[:pre]))
        if pre < internal.shape[0]:
            held = SampleBlock(internal[pre:], value[pre:], quality[pre:])
            ahead.held.setdefault(channel, []).append(held)

    def expect_forward_step(self, t_wall_ns: int) -> None:
        """The host clock was seen stepping forward at `t_wall_ns` (wall − monotonic jumped
        ahead): the pipeline's per-tick check live, the recorded `clock_step` events in replay.
        Without such a hint a forward jump of every channel is an outage, processed as stamped:
        an event loop or host that stalls delays every poll alike and is not a clock step."""
        self._forward_hints.append(t_wall_ns)

    def _hinted(self, before_ns: int, after_ns: int) -> bool:
        """A forward step was seen between a channel's samples either side of its jump (wall
        times; a poll straddling the step is stamped inside it), give or take a check period."""
        lo = before_ns - FORWARD_HINT_NS
        hi = after_ns + (after_ns - before_ns) + FORWARD_HINT_NS
        near = [h for h in self._forward_hints if lo <= h <= hi]
        if near:
            self._forward_hints.remove(near[0])
        return bool(near)

    def _decide(self) -> None:
        """Step or outage, judged once every reporting channel has landed after the jump.

        The landing is the latest first held sample of any channel. A step leaves at most one
        sample per channel inside the gap (a poll that straddled it, stamped at its midpoint);
        a failing link stamps its failed polls there, so two or more make it an outage, as do
        `staleness_s` of held data with some channel still silent. Held, the grid waits."""
        ahead = self._ahead
        if ahead is None:
            return
        held = {ch: np.concatenate([h[0] for h in parts]) for ch, parts in ahead.held.items()}
        if not held:
            return
        landing = max(int(t[0]) for t in held.values()) - self.step_bound_ns
        reporting = {ch for ch, t in self._ch_last.items() if t > -(2**62)}
        landed = {ch for ch, t in held.items() if t[-1] >= landing}
        if len(reporting) < 2:  # one channel alone cannot tell a step from its own gap
            self._release()
        elif reporting <= landed:
            lone = {ch: int((t < landing).sum()) for ch, t in held.items()}
            if max(lone.values()) >= 2:
                self._release()
            else:
                first = min(int(t[t >= landing][0]) for t in held.values())
                self._step_forward(ahead, first, landing)
        elif max(int(t[-1]) for t in held.values()) - landing > self.stale_ns:
            self._release()

    def _release(self) -> None:
        """Not a step: queue the held samples at their own stamps."""
        ahead, self._ahead = self._ahead, None
        if ahead is not None:
            for ch, parts in ahead.held.items():
                for part in parts:
                    self._queue(ch, part)

    def _step_forward(self, ahead: _Ahead, first_ns: int, landing_ns: int) -> None:
        """Every reporting channel jumped ahead together: the clock stepped forward."""
        self._ahead = None
        old = self._epochs[-1][1]
        delta = (first_ns - ahead.from_ns - self.step_ns) // self.step_ns * self.step_ns
        if delta <= 0:  # under a grid step: processed as stamped
            self._ahead = ahead
            self._release()
            return
        self._epochs.append((first_ns - delta, old - delta))
        self._flagged.append((ahead.from_ns, first_ns - delta))
        self.clock_rebases += 1
        step_s = (first_ns - ahead.from_ns) / 1e9
        self._notes.append(
            ClockRebase(first_ns - old, "*", step_s, ahead.from_ns - old, (old - delta) / 1e9)
        )
        log.warning("clock stepped forward %.3f s: results re-based", step_s)
        for ch, parts in ahead.held.items():
            self._ch_epoch[ch] = len(self._epochs) - 1
            for internal, v, q in parts:
                keep = internal >= landing_ns
                # a poll straddling the step: stamped inside it, not processed (still recorded)
                self.late_samples += int((~keep).sum())
                if keep.any():
                    self._queue(ch, SampleBlock(internal[keep] - delta, v[keep], q[keep]))

    def _rebase(self, channel: str, before_ns: int, after_ns: int) -> None:
        """`channel`'s stamps went back from `before_ns` to `after_ns`: a clock step.

        The channel joins the newest epoch when that keeps its internal time going forward
        (another channel showed this step first); else this is a new step and a new epoch.
        (A poll straddling the step, stamped inside it, was already taken out by `feed`.)"""
        old = self._epochs[self._ch_epoch[channel]][1]
        newest_off = self._epochs[-1][1]
        if after_ns + newest_off > before_ns + old:
            self._ch_epoch[channel] = len(self._epochs) - 1
            return
        # the newest stamp before the step: of the channels still on this side of it (fed in
        # big chunks, those that showed the step first have already queued what follows it)
        e = self._ch_epoch[channel]
        same = [t for c, t in self._ch_last.items() if self._ch_epoch[c] == e and c != channel]
        newest = max([before_ns, *same]) + old
        # the new epoch's first sample lands a grid step after it, plus the step bound and this
        # channel's sample interval: room for faster channels that stamped later than it
        room = self.step_ns + self.step_bound_ns + self._ch_period[channel]
        need = newest - (after_ns + newest_off) + room
        delta = -(-need // self.step_ns) * self.step_ns
        offset = newest_off + delta
        self._epochs.append((after_ns + offset, offset))
        self._ch_epoch[channel] = len(self._epochs) - 1
        self._flagged.append((newest, newest + delta))
        self.clock_rebases += 1
        step_s = (after_ns - before_ns) / 1e9
        self._notes.append(
            ClockRebase(after_ns, channel, step_s, newest - newest_off, offset / 1e9)
        )
        log.warning(
            "clock stepped back %.3f s (seen on %s): results re-based, %.0f s flagged clock_step",
            -step_s,
            channel,
            delta / 1e9,
        )

    def _queue(self, channel: str, block: SampleBlock) -> None:
        t_ns, value, quality = block
        done = self._next_ns - self.step_ns if self._next_ns is not None else None
        if done is not None and t_ns[0] <= done:
            keep = t_ns > done
            self.late_samples += int(t_ns.shape[0] - keep.sum())
            t_ns, value, quality = t_ns[keep], value[keep], quality[keep]
            if t_ns.shape[0] == 0:
                return
        self._pending[channel].append(SampleBlock(t_ns, value, quality))
        self._newest_ns = max(self._newest_ns, int(t_ns[-1]))

    def feed_blocks(self, blocks: Mapping[str, SampleBlock]) -> None:
        for ch, (t, v, q) in blocks.items():
            self.feed(ch, t, v, q)

    def add_assay(
        self, sampled_at_ns: int, rey_ppm: float, u_rey_ppm: float, known_ns: int | None = None
    ) -> int:
        """A lab result; its wall-clock sampling time is read in the newest clock epoch. It
        applies by its sample time to the grid points not computed yet (DESIGN "Grade"), or,
        given `known_ns` (a replay: when the live daemon applied it), from that point on, as
        live; with the replay's interpolation every assay is known from the start. Returns the
        first grid point (wall) it applies to, what a recording keeps (`AssayEvent.applied_ns`)."""
        off = self._epochs[-1][1]
        assay = (sampled_at_ns + off, rey_ppm, u_rey_ppm)
        if known_ns is not None and known_ns > sampled_at_ns and not self.params.grade_interpolate:
            self._held.append((known_ns + off, assay))
            return known_ns
        self._assays.append(assay)
        return (
            max(sampled_at_ns, self._next_ns - off) if self._next_ns is not None else sampled_at_ns
        )

    def add_reference(self, ref: SeawaterReference) -> None:
        """An operator's seawater reference (wall time); applied from the first grid point not
        computed yet, and recorded as applied (`Processed.notes`). May be called from another
        thread than the one computing (the list is swapped whole when taken)."""
        self._references.append(ref)

    # -- output -----------------------------------------------------------------------------
    def advance(
        self, until_ns: int | None = None, *, whole_periods: bool = False
    ) -> Processed | None:
        """Compute every grid point up to `until_ns` (wall time in the newest clock epoch;
        default: newest sample − lateness); with `whole_periods`, only up to the last whole
        publish period, on the internal timeline (so a clock step cannot stall it)."""
        if until_ns is not None:
            self._decide()  # a forward step the fed samples show opens the epoch `until_ns` is in
            until_ns += self._epochs[-1][1]
        return self._advance(until_ns, whole_periods)

    def _advance(self, until_ns: int | None, whole_periods: bool = False) -> Processed | None:
        self._decide()
        if self._newest_ns < 0:
            return None
        limit = self._newest_ns - self.lateness_ns if until_ns is None else until_ns
        if whole_periods:
            limit = limit // self.publish_ns * self.publish_ns
        if self._tentative:  # a sample that jumped back may join the newest epoch: wait for it
            off = self._epochs[-1][1]
            limit = min(limit, min(int(t[0]) for t, _, _ in self._tentative.values()) + off - 1)
        if self._next_ns is None:
            first = min(int(p[0][0][0]) for p in self._pending.values() if p)
            self._next_ns = -(-first // self.step_ns) * self.step_ns
        if limit < self._next_ns:
            return None
        n = (limit - self._next_ns) // self.step_ns + 1
        parts = []
        while n > 0:
            k = min(n, MAX_POINTS, self._points_to_held())
            grid = self._next_ns + self.step_ns * np.arange(k, dtype=np.int64)
            parts.append(self._compute(grid))
            self._next_ns += k * self.step_ns
            n -= k
        return parts[0] if len(parts) == 1 else _concat(parts)

    def flush(self) -> Processed | None:
        """Compute up to the newest sample: end of a replay or an orderly shutdown."""
        for ch in list(self._tentative):
            self.feed(ch, *self._tentative.pop(ch), final=True)
        self._decide()
        self._release()  # the end of the data: whatever is still held is processed as stamped
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
        at, ag, au = self._take_assays(int(grid[0]))
        rt, re_ = self._take_references(int(grid[0]))
        block = Block(grid, values, quality, at, ag, au, rt, re_)
        rejected = int(self._state.rejected.sum())
        result, self._state = process_block(self.params, self._state, block)
        self._log_reference(result["ref_cmd_state"])
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

    def _points_to_held(self) -> int:
        """Grid points before the next held assay becomes known (a block ends there)."""
        nxt = self._next_ns if self._next_ns is not None else 0
        later = [k for k, _ in self._held if k > nxt]
        return -(-(min(later) - nxt) // self.step_ns) if later else MAX_POINTS

    def _take_assays(
        self, first_ns: int
    ) -> tuple[NDArray[np.int64], NDArray[np.float64], NDArray[np.float64]]:
        if self._held:  # known from a grid point up to this block's first one
            self._assays += [a for k, a in self._held if k <= first_ns]
            self._held = [(k, a) for k, a in self._held if k > first_ns]
        if not self._assays:
            return np.zeros(0, np.int64), np.zeros(0), np.zeros(0)
        t, g, u = zip(*self._assays, strict=True)
        self._assays.clear()
        return np.array(t, np.int64), np.array(g, np.float64), np.array(u, np.float64)

    def _take_references(self, first_ns: int) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
        refs, self._references = self._references, []
        off = self._epochs[-1][1]
        t0 = [max(r.t_ns + off, first_ns) for r in refs]  # earlier points are computed
        for r, t in zip(refs, t0, strict=True):
            self._notes.append(dataclasses.replace(r, t_ns=t - off))
        t1 = [t + r.end_ns - r.t_ns for r, t in zip(refs, t0, strict=True)]
        return np.array(t0, np.int64), np.array(t1, np.int64)

    def _log_reference(self, state: NDArray[np.float64]) -> None:
        """The commanded reference's progress, once per change of state."""
        prev = np.concatenate(([self._ref_state], state[:-1]))
        for code in state[state != prev]:
            log.warning("seawater reference (operator): %s", REF_STATES[int(code)])
        if state.shape[0]:
            self._ref_state = float(state[-1])

    def rejected_inputs(self) -> dict[str, int]:
        """Per estimator input: GOOD samples rejected as non-finite or physically absurd."""
        names = ROLES + OPTIONAL_ROLES
        return {names[i]: int(n) for i, n in enumerate(self._state.rejected) if n}

    def active_alarms(self) -> list[str]:
        """Alarms active after the last computed grid point (the retained MQTT set)."""
        bits = int(self._state.scalars["alarm_bits"][0])
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
    for ch in sorted(p.channels):
        # a value every role of the channel accepts: no "absurd GOOD samples" warning per start
        lo = max(INPUT_RANGES[r][0] for r, c in p.inputs.items() if c == ch)
        hi = min(INPUT_RANGES[r][1] for r, c in p.inputs.items() if c == ch)
        q = np.zeros(n, np.uint8)
        q[n // 2] = BAD
        p.feed(ch, t, np.full(n, (lo + hi) / 2), q)
    p.add_assay(int(t[1]), 2000.0, 100.0)
    p.flush()
    return time.perf_counter() - t0
