"""One HIL session: a scenario's plant behind the emulators, the real pipeline in front, scored.

    session = HilSession(load_scenario("nominal"), data_dir=Path("data"), duration_s=240)
    score = await session.run()

The plant runs on the wall clock (the same clock the drivers stamp samples with). A sync task
steps it, mirrors its link faults (dropouts, disconnects, garbled frames...) onto the emulators,
records the truth, and plays the ship's lab as the scenario's plant defines it (`lab_interval_s`,
`lab_delay_s`, `lab_error_rel`; hil/plant/lab.py): it samples the mud on deck every interval and
posts the assay (the deck's grade, reported with the lab's uncertainty) the delay later, as the
lab would over MQTT. The DAQ config is the
reference installation with the scenario's geometry (its nominal constants, never the
plant's), so only the plant knows the truth and only the DAQ's own estimate is scored.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from chikyu_daq.config.model import Config, load_config
from chikyu_daq.live.pipeline import Pipeline
from chikyu_daq.live.processor import Processed
from chikyu_daq.store.events import AlarmEdge
from chikyu_daq.supervise import describe
from drivers.endpoints import override_buses
from hil.emulators.rig import Rig
from hil.faults import WIRE_FAULTS as FAULT_KINDS
from hil.plant import Plant, RealClock
from hil.scenario import Scenario

log = logging.getLogger(__name__)

REFERENCE = Path(__file__).resolve().parent.parent.parent / "config" / "reference.toml"
SYNC_S = 0.1
#: Plant link-fault kinds → emulator fault kinds.
LINK_FAULTS = {
    "dropout": "no_reply",
    "timeout": "late_reply",
    "modbus_exception": "exception",
    "disconnect": "disconnect",
    "garbled": "garbled",
}


def scenario_config(scenario: Scenario, base: Config | None = None) -> Config:
    """The installation config for a scenario's plant: its geometry, and nothing else.

    Geometry is what the installation knows from its drawings (the CI scenarios' short riser);
    the physical constants (ρw, ρs, ρb, g, friction) stay the installation's nominal values,
    whatever the plant's truth is, so the DAQ is scored on its own estimate.
    """
    cfg = base or load_config(REFERENCE)
    p = scenario.plant
    depths = p.transmitter_depths_m
    physics = cfg.physics.model_copy(
        update={
            "return_id_m": p.return_id_m,
            "injection_hd_m": p.injection_dh_m,
            "riser_length_m": p.riser_length_m,
            "depth_collector_m": depths["pt301"],
            "depth_mid_m": depths["pt302"],
            "depth_upper_m": depths["pt303"],
        }
    )
    return cfg.model_copy(update={"physics": physics})


def with_outputs(
    cfg: Config,
    *,
    name: str,
    influx_url: str | None = None,
    influx_db: str | None = None,
    mqtt: str | None = None,
    mqtt_prefix: str | None = None,
) -> Config:
    """`cfg` with InfluxDB (v1 `/write`) and/or MQTT (`HOST:PORT`) on, one db, prefix and
    client id per `name`, so that several sessions can share one server (the fault campaign).

    Raises `ValueError` naming the option for a malformed `HOST:PORT`."""
    from chikyu_daq.config.model import Influx, Mqtt

    update: dict[str, Any] = {}
    if influx_url:
        update["influx"] = Influx.model_validate(
            {"enabled": True, "dialect": "v1", "url": influx_url, "db": influx_db or f"hil_{name}"}
        )
    if mqtt:
        host, _, port = mqtt.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"--mqtt: expected HOST:PORT, got {mqtt!r}")
        update["mqtt"] = Mqtt.model_validate(
            {
                "enabled": True,
                "host": host,
                "port": int(port),
                "prefix": mqtt_prefix or f"hil/{name}",
                "client_id": f"chikyu-hil-{name}",
            }
        )
    return cfg.model_copy(update={"outputs": cfg.outputs.model_copy(update=update)})


@dataclass
class AlarmOutcome:
    name: str
    channel: str | None
    latest_raise_s: float
    raised_at_s: float | None

    @property
    def ok(self) -> bool:
        return self.raised_at_s is not None and self.raised_at_s <= self.latest_raise_s

    @property
    def label(self) -> str:
        return f"{self.name}({self.channel})" if self.channel else self.name


#: The scalar head of `score.json`, in order (the alarms, checks and final stats follow).
SCORE_HEAD = (
    "scenario", "passed", "duration_s", "run_dir", "daq_rey_kg", "truth_rey_kg", "u95_rey_kg",
    "rey_error_pct", "truth_in_interval",
)  # fmt: skip


@dataclass
class Score:
    scenario: str
    duration_s: float
    run_dir: str
    daq_rey_kg: float
    truth_rey_kg: float
    u95_rey_kg: float
    expected: list[AlarmOutcome] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    checks: dict[str, tuple[bool, str]] = field(default_factory=dict)
    #: `Pipeline.stats()` after the stop: task restarts, step faults, sinks' final counters.
    final_stats: dict[str, Any] = field(default_factory=dict)

    @property
    def rey_error_pct(self) -> float:
        return 100.0 * (self.daq_rey_kg - self.truth_rey_kg) / self.truth_rey_kg

    @property
    def truth_in_interval(self) -> bool:
        return abs(self.daq_rey_kg - self.truth_rey_kg) <= self.u95_rey_kg

    @property
    def passed(self) -> bool:
        return all(ok for ok, _ in self.checks.values())

    def as_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in SCORE_HEAD} | {
            "expected_alarms": [
                {"alarm": a.label, "latest_raise_s": a.latest_raise_s, "raised_at_s": a.raised_at_s}
                for a in self.expected
            ],
            "unexpected_alarms": self.unexpected,
            "checks": {k: {"ok": ok, "detail": d} for k, (ok, d) in self.checks.items()},
            "final_stats": _json_safe(self.final_stats),
        }


def _json_safe(d: Any) -> Any:
    """Stats as strict JSON: non-finite floats become null."""
    if isinstance(d, dict):
        return {str(k): _json_safe(v) for k, v in d.items()}
    if isinstance(d, list | tuple):
        return [_json_safe(v) for v in d]
    if isinstance(d, float) and not np.isfinite(d):
        return None
    return d


class HilSession:
    def __init__(
        self,
        scenario: Scenario,
        *,
        data_dir: Path,
        duration_s: float | None = None,
        cfg: Config | None = None,
        on_processed: Callable[[Processed], None] | None = None,
        influx: bool | None = False,
        mqtt: bool | None = False,
    ) -> None:
        self.scenario = scenario
        self.duration_s = duration_s or scenario.ci_duration_s
        self.cfg = scenario_config(scenario, cfg)
        self.data_dir = data_dir
        self.clock = RealClock()
        self.plant = Plant(scenario, self.clock)
        self.rig = Rig(self.cfg, source=self)
        self._applied: dict[tuple[str, str], dict[str, Any]] = {}
        self._truth_t: list[int] = []
        self._truth_rey: list[float] = []
        self._lab_queue: list[tuple[float, int, float, float]] = []
        self._next_lab_s = scenario.plant.lab_interval_s
        self._on_processed = on_processed
        self._influx, self._mqtt = influx, mqtt
        self.pipeline: Pipeline | None = None
        self.write_requests = 0
        #: Seconds into the session at which the pipeline ended by itself (None: it did not).
        self.ended_at_s: float | None = None
        self.pipeline_error = ""

    # ValueSource for the emulators: the plant's readings at the shared clock's time.
    def values(self, t_s: float) -> dict[str, float]:
        self.plant.advance_to(self.clock.now_s())
        return self.plant.readings()

    async def run(self) -> Score:
        async with self.rig:
            buses = override_buses(self.cfg.buses, self.rig.endpoints)
            self.pipeline = Pipeline(
                self.cfg,
                data_dir=self.data_dir,
                buses=buses,
                on_processed=self._on_processed,
                influx_enabled=self._influx,
                mqtt_enabled=self._mqtt,
            )
            task = asyncio.create_task(self.pipeline.run())
            syncer = asyncio.create_task(self._sync_loop())
            try:
                t0 = time.monotonic()
                end = t0 + self.duration_s
                while time.monotonic() < end and not task.done():
                    await asyncio.sleep(min(0.2, max(0.0, end - time.monotonic())))
                if task.done():
                    self.ended_at_s = time.monotonic() - t0
            finally:
                syncer.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await syncer
                self.pipeline.request_stop()
                try:
                    await task
                except Exception as exc:
                    self.pipeline_error = f"{type(exc).__name__}: {exc}"
                    log.exception("pipeline failed")
            self.write_requests = self.rig.write_requests()
        return self.score()

    async def _sync_loop(self) -> None:
        while True:
            self.plant.advance_to(self.clock.now_s())
            self._truth_t.append(self.clock.now_ns())
            self._truth_rey.append(self.plant.truth().rey_delivered_kg)
            self._apply_faults()
            self._play_lab()
            await asyncio.sleep(SYNC_S)

    def _apply_faults(self) -> None:
        want: dict[tuple[str, str], dict[str, Any]] = {}
        now = self.plant.t_s
        for f in self.plant.active_faults():
            kind = LINK_FAULTS.get(f.kind.value)
            if kind is None:
                continue
            params = {k: v for k, v in f.params.items() if k in FAULT_KINDS[kind]}
            if kind == "disconnect":
                params["down_s"] = (f.end_s - now) if f.end_s is not None else 3600.0
            for dev in f.devices:
                if dev in self.rig.device_bus:
                    want[(dev, kind)] = params
        for key in set(self._applied) - set(want):
            self.rig.clear_fault(*key)
            log.info("fault cleared: %s %s", *key)
        for key, params in want.items():
            if key not in self._applied:
                self.rig.set_fault(key[0], key[1], **params)
                log.info("fault injected: %s %s %s", key[0], key[1], params)
        self._applied = want

    def _play_lab(self) -> None:
        """Sample the mud on deck every interval; deliver the result after the lab delay."""
        now = self.plant.t_s
        lab = self.scenario.plant
        if now >= self._next_lab_s:
            self._next_lab_s += lab.lab_interval_s
            grade = self.plant.state()["grade_deck_ppm"]
            self._lab_queue.append(
                (now + lab.lab_delay_s, self.clock.now_ns(), grade, lab.lab_error_rel * grade)
            )
        due = [a for a in self._lab_queue if a[0] <= now]
        if due and self.pipeline is not None:
            for _, t_ns, grade, u in due:
                self.pipeline.inject_assay(t_ns, grade, u, sample_id=f"HIL-{t_ns}")
            self._lab_queue = [a for a in self._lab_queue if a[0] > now]

    # -- scoring ----------------------------------------------------------------------------
    def score(self) -> Score:
        from chikyu_daq.store.reader import open_run

        assert self.pipeline is not None
        run = open_run(self.pipeline.outputs.recorder.path)  # type: ignore[union-attr]
        res = run.results()
        t = res["t_ns"]
        none = np.full(len(t), np.nan)
        cum = res.get("cum_rey_kg", none)
        # integration starts at the first grid point with a valid rate (cum is 0 before it)
        ok = np.isfinite(cum) & np.isfinite(res.get("rey_kg_h", none))
        daq = truth = u95 = float("nan")
        if ok.any():  # none when the pipeline died before its first rate
            t_a, t_b = int(t[ok][0]), int(t[ok][-1])
            daq = float(cum[ok][-1] - cum[ok][0])
            u95 = float(res["u95_cum_rey_kg"][ok][-1])
            tt = np.array(self._truth_t, np.int64)
            tr = np.array(self._truth_rey)
            truth = float(np.interp(t_b, tt, tr) - np.interp(t_a, tt, tr))
        score = Score(self.scenario.name, self.duration_s, str(run.path), daq, truth, u95)
        start_ns = self.clock.start_ns
        raised: dict[str, float] = {}
        for ev in run.records():
            if isinstance(ev, AlarmEdge) and ev.kind == "raise":
                raised.setdefault(ev.alarm, (ev.t_ns - start_ns) / 1e9)
        matched: set[str] = set()
        for exp in self.scenario.expect.alarms:
            if exp.latest_raise_s > self.duration_s:
                continue
            label = f"{exp.name}({exp.channel})" if exp.channel else exp.name
            hits = [
                k for k in raised if k == label or (exp.channel is None and k.startswith(exp.name))
            ]
            at = min((raised[k] for k in hits), default=None)
            matched.update(hits)
            score.expected.append(AlarmOutcome(exp.name, exp.channel, exp.latest_raise_s, at))
        if not self.scenario.expect.allow_other_alarms:
            score.unexpected = sorted(set(raised) - matched)
        for a in score.expected:
            when = "never" if a.raised_at_s is None else f"at {a.raised_at_s:.1f} s"
            score.checks[f"alarm {a.label}"] = (
                a.ok,
                f"raised {when}, due by {a.latest_raise_s:g} s",
            )
        score.checks["no unexpected alarms"] = (
            not score.unexpected,
            ", ".join(score.unexpected) or "none",
        )
        acc = self.scenario.expect.accuracy
        if acc.rey_error_pct_max is not None:
            score.checks["cumulative REY error"] = (
                abs(score.rey_error_pct) <= acc.rey_error_pct_max,
                f"{score.rey_error_pct:+.3f} % (limit ±{acc.rey_error_pct_max:g} %)",
            )
        if acc.truth_in_interval:
            score.checks["truth inside 95 % interval"] = (
                score.truth_in_interval,
                f"|{daq:.4f} - {truth:.4f}| vs U95 {u95:.4f} kg",
            )
        score.checks["no Modbus writes"] = (
            self.write_requests == 0,
            f"{self.write_requests} writes",
        )
        self._check_survival(score)
        return score

    def _check_survival(self, score: Score) -> None:
        """Degrade, never die: the pipeline ran to the end, and nothing in it failed."""
        assert self.pipeline is not None
        p = self.pipeline
        if self.ended_at_s is None and not self.pipeline_error:
            alive = (True, f"ran the full {self.duration_s:g} s")
        else:
            why = self.pipeline_error or (describe(p.fatal) if p.fatal else "")
            alive = (False, f"ended at {self.ended_at_s or 0:.1f} s {why}".strip())
        score.checks["pipeline alive to the end"] = alive
        stats = score.final_stats = p.stats()
        failed = {k: v for k, v in stats["tasks"].items() if v["failures"]}
        details = [
            f"task {k}: {v['failures']} failures ({v['last_error']})" for k, v in failed.items()
        ]
        details += [f"{k}: {v['count']} ({v['last_error']})" for k, v in stats["faults"].items()]
        score.checks["no task failures or step faults"] = (
            not details,
            "; ".join(details) or "none",
        )
