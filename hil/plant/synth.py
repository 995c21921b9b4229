"""``hil synth`` fast path: a long recording as columnar blocks, with its truth.

The plant runs on its fixed step (one kernel call per block); every device is sampled at its
ICD reference rate with realistic timestamps (Modbus: request/response midpoint, a few ms of
jitter; the subsea bus serialises its three units; the densitometer paces itself with a
slightly off crystal). Values come from the same :class:`SensorBank` as live serving; link
faults and qualities are applied as a correct driver would record them:

- timeouts, dropouts, exceptions, disconnects: BAD with value NaN, at the poll cadence;
- garbled densitometer sentences: no sample (the driver drops the sentence and counts it);
- flowmeter diagnostics bits 0-3: ``volume_flow`` BAD (value kept);
- densitometer status bit 2 or 4: density BAD, bit 0, 1 or 3: UNCERTAIN;
- AI-20 NAMUR NE43: <= 3.6 or >= 21.0 mA BAD (NaN), outside 4-20 mA otherwise UNCERTAIN
  and clamped to the range;
- subsea status bit 0 or 1, or a sample counter that did not move: pressure and temperature
  BAD (value kept); status bit 2: UNCERTAIN.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from drivers.sample import Blocks, Quality, SampleBlock
from hil.devices import AI_COUNTS_SPAN, DEVICES, ENDPOINTS
from hil.faults import FaultKind
from hil.plant import physics
from hil.plant.hydraulics import COL, OUT_COLUMNS, Hydraulics
from hil.plant.lab import LabAssay, applied_ns
from hil.plant.schedule import Schedule
from hil.plant.sensors import TRUTH_COLUMNS, SensorBank
from hil.plant.truth import TruthTotals
from hil.scenario import Scenario

__all__ = ["TRUTH_SERIES", "SynthBlock", "synth_blocks"]

_DISCRETE = frozenset({"cmd_a_rpm", "cmd_b_rpm", "trip_a", "trip_b"})
_SUBSEA_OFFSET_S = {"pt301": 0.0, "pt302": 0.033, "pt303": 0.066}
_DT_CLOCK_PPM = 20.0

TRUTH_SERIES = (
    "solids_in_kg",
    "rey_in_kg",
    "solids_delivered_kg",
    "rey_delivered_kg",
    "solids_riser_kg",
    "rey_riser_kg",
    "q_injection_m3_h",
    "q_return_m3_h",
    "cv_deck",
    "density_deck_kg_m3",
    "grade_deck_ppm",
    "grade_intake_ppm",
    "rey_rate_deck_kg_h",
)


@dataclass(frozen=True)
class SynthBlock:
    """One block of a synthetic recording.

    ``channels``: ``{channel_id: (t_ns int64, value float64, quality uint8)}``.
    ``truth``: 1 Hz series on whole seconds of the block, ``t_ns`` plus :data:`TRUTH_SERIES`
    (cumulative kg since the run started). ``totals``: exact truth at the block's end.
    """

    start_s: float
    end_s: float
    channels: Blocks
    truth: dict[str, np.ndarray]
    totals: TruthTotals
    #: lab assays sampled on deck in this block, each with when the DAQ could first apply it
    assays: tuple[LabAssay, ...] = ()


class _Synth:
    def __init__(
        self, scenario: Scenario, start_ns: int, seed: int, bit_channels: bool, grid_hz: float
    ) -> None:
        self.truth = physics.draw(scenario.plant, seed)
        p = self.truth.params
        self.p = p
        self.start_ns = int(start_ns)
        self.grid_hz = grid_hz
        self.bit_channels = bit_channels
        self.hyd = Hydraulics(p)
        self.schedule = Schedule(scenario)
        self.sensors = SensorBank(
            p,
            self.hyd.depth_order,
            self.schedule.faults,
            seed,
            pump_q_bep_m3_s=p.injection_m3_h / 7200.0,
            calibration=self.truth.calibration,
        )
        self.lab_rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, 3000])))
        # timing and link-fault streams apart, so any block size draws the same numbers
        self.rng = {
            dev: np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, 1000 + i])))
            for i, dev in enumerate(DEVICES)
        }
        self.link_rng = {
            (dev, k): np.random.Generator(
                np.random.PCG64(np.random.SeedSequence([seed, 2000 + i, k]))
            )
            for i, dev in enumerate(DEVICES)
            for k in range(len(self.schedule.faults))
        }
        self.steps = 0
        self.buf_t = np.zeros(0)
        self.buf = np.zeros((0, len(OUT_COLUMNS)))
        self.last_counter = {dev: math.nan for dev in _SUBSEA_OFFSET_S}
        self.steps_per_s = round(1.0 / p.dt_s)

    def run_plant_to(self, t_s: float, keep_from_s: float) -> None:
        target = math.ceil(t_s / self.p.dt_s - 1e-9)
        n = target - self.steps
        if n > 0:
            t_start = (self.steps + np.arange(n)) * self.p.dt_s
            out = self.hyd.advance(self.schedule.drive(t_start))
            self.steps = target
            self.buf = np.concatenate([self.buf, out])
            self.buf_t = self.buf[:, 0]
        keep = self.buf_t >= keep_from_s
        self.buf = self.buf[keep]
        self.buf_t = self.buf[:, 0]

    def truth_at(self, t: np.ndarray, columns: tuple[str, ...]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        idx = None
        for name in columns:
            col = self.buf[:, COL[name]]
            if name in _DISCRETE:
                if idx is None:
                    idx = np.clip(np.searchsorted(self.buf_t, t, side="right") - 1, 0, None)
                out[name] = col[idx]
            else:
                out[name] = np.interp(t, self.buf_t, col)
        return out

    def sample_times(self, dev: str, b0: float, b1: float) -> np.ndarray:
        rate = DEVICES[dev].rate_hz
        if dev == "dt201":
            period = (1.0 + _DT_CLOCK_PPM * 1e-6) / rate
            k = np.arange(math.ceil(b0 / period - 1e-9), math.ceil(b1 / period - 1e-9))
            jitter = self.rng[dev].normal(0.0, 0.0002, k.shape[0])
            return k * period + 0.05 + np.clip(jitter, -0.001, 0.001)
        k = np.arange(math.ceil(b0 * rate - 1e-9), math.ceil(b1 * rate - 1e-9))
        # midpoint of request and response: a few ms after the poll tick, never negative
        latency = 0.0025 + np.abs(self.rng[dev].normal(0.0, 0.0015, k.shape[0]))
        latency = np.minimum(latency, 0.25 / rate)
        return k / rate + _SUBSEA_OFFSET_S.get(dev, 0.0) + latency

    def link_faults(self, dev: str, t: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Masks of samples lost to the link: (BAD NaN, dropped entirely)."""
        bad = np.zeros(t.shape[0], dtype=bool)
        dropped = np.zeros(t.shape[0], dtype=bool)
        for k, f in enumerate(self.schedule.faults):
            if dev not in f.devices:
                continue
            rng = self.link_rng[(dev, k)]
            w = f.window(t)
            if not w.any():
                continue
            if f.kind in (FaultKind.DROPOUT, FaultKind.DISCONNECT):
                bad |= w
            elif f.kind in (FaultKind.TIMEOUT, FaultKind.MODBUS_EXCEPTION):
                bad[w] |= rng.random(int(w.sum())) < f.param("probability", 1.0)
            elif f.kind is FaultKind.GARBLED:
                dropped[w] |= rng.random(int(w.sum())) < f.param("probability", 0.3)
        return bad, dropped

    def qualities(self, dev: str, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        n = next(iter(values.values())).shape[0]
        q = {name: np.zeros(n, dtype=np.uint8) for name in values}
        if dev.startswith("ft"):
            diag = values["diagnostics"].astype(np.int64)
            q["volume_flow"][(diag & 0xF) != 0] = Quality.BAD
        elif dev == "dt201":
            st = values["status"].astype(np.int64)
            q["density"][(st & 0b01011) != 0] = Quality.UNCERTAIN
            q["density"][(st & 0b10100) != 0] = Quality.BAD
        elif dev == "ai20":
            for name, spec in DEVICES[dev].channels.items():
                assert spec.ai_range is not None
                lo, hi = spec.ai_range
                v = values[name]
                ma = 4.0 + 16.0 * np.round((v - lo) / (hi - lo) * AI_COUNTS_SPAN) / AI_COUNTS_SPAN
                bad = (ma <= 3.6) | (ma >= 21.0)
                unc = ~bad & ((ma < 4.0) | (ma > 20.0))
                q[name][unc] = Quality.UNCERTAIN
                q[name][bad] = Quality.BAD
                values[name] = np.where(bad, np.nan, np.clip(v, lo, hi))
        elif dev in _SUBSEA_OFFSET_S:
            st = values["status"].astype(np.int64)
            counter = values["sample_counter"]
            prev = np.concatenate([[self.last_counter[dev]], counter[:-1]])
            self.last_counter[dev] = float(counter[-1]) if n else self.last_counter[dev]
            frozen = counter == prev
            bad = ((st & 0b011) != 0) | frozen
            for name in ("pressure", "temperature"):
                q[name][(st & 0b100) != 0] = Quality.UNCERTAIN
                q[name][bad] = Quality.BAD
        return q

    def device_block(self, dev: str, b0: float, b1: float, cols: tuple[str, ...]) -> Blocks:
        t = self.sample_times(dev, b0, b1)
        values = self.sensors.measure(dev, t, self.truth_at(t, cols))
        quality = self.qualities(dev, values)
        bad, dropped = self.link_faults(dev, t)
        keep = ~dropped
        t_ns = (self.start_ns + np.round(t * 1e9).astype(np.int64))[keep]
        out: Blocks = {}
        for name, v in values.items():
            qual = np.where(bad, Quality.BAD, quality[name]).astype(np.uint8)
            out[f"{dev}.{name}"] = SampleBlock(t_ns, np.where(bad, np.nan, v)[keep], qual[keep])
        if self.bit_channels:
            self._add_bits(dev, out)
        return out

    @staticmethod
    def _add_bits(dev: str, out: Blocks) -> None:
        spec = DEVICES[dev]
        if spec.status is None:
            return
        t_ns, v, q = out[f"{dev}.{spec.status}"]
        bits = np.nan_to_num(v, nan=0.0).astype(np.int64)
        for i, name in enumerate(spec.bits):
            bit = np.where(np.isnan(v), np.nan, ((bits >> i) & 1).astype(np.float64))
            out[f"{dev}.{name}"] = SampleBlock(t_ns, bit, q.copy())

    def truth_series(self, b0: float, b1: float) -> dict[str, np.ndarray]:
        p = self.p
        t_s = np.arange(math.ceil(b0 - 1e-9), math.ceil(b1 - 1e-9), dtype=np.float64)
        row_idx = np.round((t_s - self.buf_t[0]) / p.dt_s).astype(np.int64)
        valid = row_idx >= 0
        rows = self.buf[np.clip(row_idx, 0, None)]

        def col(name: str, at_zero: float | None = None) -> np.ndarray:
            # before the first step (t = 0) totals are zero, the riser holds its initial
            # load and rates are those of the first step
            v = rows[:, COL[name]]
            return v if at_zero is None else np.where(valid, v, at_zero)

        cv = col("cv_deck")
        q_ret = col("q_ret_m3_s")
        grade = col("grade_deck_ppm")
        return {
            "t_ns": self.start_ns + np.round(t_s * 1e9).astype(np.int64),
            "solids_in_kg": col("solids_in_kg", 0.0),
            "rey_in_kg": col("rey_in_kg", 0.0),
            "solids_delivered_kg": col("solids_out_kg", 0.0),
            "rey_delivered_kg": col("rey_out_kg", 0.0),
            "solids_riser_kg": col("solids_riser_kg", self.hyd.solids_initial_kg),
            "rey_riser_kg": col("rey_riser_kg", self.hyd.rey_initial_kg),
            "q_injection_m3_h": col("q_inj_m3_s") * 3600.0,
            "q_return_m3_h": q_ret * 3600.0,
            "cv_deck": cv,
            "density_deck_kg_m3": physics.deck_density(p, t_s, cv, q_ret, col("p_deck_kpa_g")),
            "grade_deck_ppm": grade,
            "grade_intake_ppm": col("grade_in_ppm"),
            "rey_rate_deck_kg_h": p.rho_s_kg_m3 * cv * q_ret * 3600.0 * grade * 1e-6,
        }

    def lab(self, b0: float, b1: float) -> tuple[LabAssay, ...]:
        """The ship's lab (:mod:`hil.plant.lab`): a deck sample every ``lab_interval_s`` while
        solids arrive, assayed with a relative standard error of ``lab_error_rel`` (and reported
        with it), known to the DAQ from the first grid point ``lab_delay_s`` after sampling."""
        p = self.p
        k = np.arange(math.ceil(b0 / p.lab_interval_s), math.ceil(b1 / p.lab_interval_s))
        out = []
        for t_s in k * p.lab_interval_s:
            if t_s <= 0.0:
                continue
            row = self.truth_at(np.array([t_s]), ("cv_deck", "grade_deck_ppm"))
            err = self.lab_rng.standard_normal()  # drawn for every sample: block-invariant
            if row["cv_deck"][0] < 1e-4:
                continue  # seawater: nothing to assay
            g = float(row["grade_deck_ppm"][0]) * (1.0 + p.lab_error_rel * err)
            t_ns = self.start_ns + round(t_s * 1e9)
            known = applied_ns(t_ns, p.lab_delay_s, self.grid_hz)
            out.append(LabAssay(t_ns, g, p.lab_error_rel * g, known))
        return tuple(out)

    def totals_at(self, t_s: float) -> TruthTotals:
        i = int(np.argmin(np.abs(self.buf_t - t_s)))
        return TruthTotals.from_row(
            self.buf[i], self.hyd.solids_initial_kg, self.hyd.rey_initial_kg
        )


def synth_blocks(
    scenario: Scenario,
    hours: float,
    start_ns: int,
    block_s: float = 600.0,
    *,
    seed: int | None = None,
    bit_channels: bool = False,
    grid_hz: float = 10.0,
) -> Iterator[SynthBlock]:
    """Generate ``hours`` of recording in blocks of ``block_s`` simulated seconds.

    Deterministic for a given scenario, seed (default: the scenario's) and block size.
    ``bit_channels`` adds the named 0/1 status-bit channels a driver derives. ``grid_hz``: the
    replaying DAQ's ``processing.grid_hz`` (default: the reference config's), whose grid the
    lab's results are applied on.
    """
    if hours <= 0:
        raise ValueError(f"hours must be > 0, got {hours}")
    if block_s < 1.0 or block_s != round(block_s):
        raise ValueError(f"block_s must be a whole number of seconds >= 1, got {block_s}")
    if not set(ENDPOINTS["gateway"]) <= set(DEVICES):
        raise AssertionError("device catalogue inconsistent")
    s = _Synth(scenario, start_ns, scenario.seed if seed is None else seed, bit_channels, grid_hz)
    total_s = hours * 3600.0
    b0 = 0.0
    while b0 < total_s:
        b1 = min(b0 + block_s, total_s)
        s.run_plant_to(b1 + 1.0, keep_from_s=b0 - 1.0)
        channels: Blocks = {}
        for dev, cols in TRUTH_COLUMNS.items():
            channels.update(s.device_block(dev, b0, b1, cols))
        yield SynthBlock(b0, b1, channels, s.truth_series(b0, b1), s.totals_at(b1), s.lab(b0, b1))
        b0 = b1
