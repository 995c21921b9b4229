"""The live plant: hydraulics, schedule, sensors and faults behind one object.

The emulators hold one :class:`Plant` and one clock. Before answering a request they call
:meth:`Plant.advance_to` (or :meth:`Plant.sync` with the shared clock), then read
:meth:`Plant.readings` for values and :meth:`Plant.fault_flags` for what to break. Stepping
is a fixed ``dt_s`` grid, so the result of a run depends on the seed and the scenario only,
never on how often it was polled: catching up a long gap is one kernel call.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import numpy as np

from hil.devices import DEVICES
from hil.faults import ActiveFault, fault_flags
from hil.plant import physics
from hil.plant.clock import Clock
from hil.plant.hydraulics import OUT_COLUMNS, Hydraulics
from hil.plant.schedule import Schedule
from hil.plant.sensors import SensorBank
from hil.plant.truth import TruthTotals
from hil.scenario import Scenario

__all__ = ["Plant"]


class Plant:
    """Deterministic plant for one scenario; not thread-safe (one owner steps it).

    Plant time starts one step in (``dt_s``), so there is always a state to read.
    """

    def __init__(
        self, scenario: Scenario, clock: Clock | None = None, *, seed: int | None = None
    ) -> None:
        self.scenario = scenario
        self.clock = clock
        run_seed = scenario.seed if seed is None else seed
        self.truth_draw = physics.draw(scenario.plant, run_seed)
        self.params = self.truth_draw.params
        self.hydraulics = Hydraulics(self.params)
        self.schedule = Schedule(scenario)
        self.sensors = SensorBank(
            self.params,
            self.hydraulics.depth_order,
            self.schedule.faults,
            run_seed,
            pump_q_bep_m3_s=scenario.plant.injection_m3_h / 7200.0,
            calibration=self.truth_draw.calibration,
        )
        self._steps = 0
        self._row = np.zeros(len(OUT_COLUMNS))
        self.step(1)

    @property
    def t_s(self) -> float:
        """Simulation time of the current state, seconds since the run started."""
        return float(self._row[0])

    def step(self, n: int = 1) -> None:
        """Advance ``n`` fixed steps."""
        if n <= 0:
            return
        dt = self.params.dt_s
        t_start = (self._steps + np.arange(n)) * dt
        out = self.hydraulics.advance(self.schedule.drive(t_start))
        self._steps += n
        self._row = out[-1]

    def advance_to(self, t_s: float) -> None:
        """Step until the plant is at the last grid time not after ``t_s``."""
        target = math.floor(t_s / self.params.dt_s + 1e-9)
        self.step(target - self._steps)

    def sync(self) -> None:
        """Catch up with the shared clock."""
        if self.clock is None:
            raise RuntimeError("Plant.sync needs a clock; pass one to Plant(...)")
        self.advance_to(self.clock.now_s())

    def state(self) -> dict[str, float]:
        """True plant values now (hydraulics output columns; SI, kPa, m3/s, kg)."""
        return {name: float(v) for name, v in zip(OUT_COLUMNS, self._row, strict=True)}

    def readings(self, devices: Iterable[str] | None = None) -> dict[str, float]:
        """``{channel_id: value}`` as the devices would report now (engineering units).

        Value-level faults are applied; link-level ones are in :meth:`fault_flags`.
        """
        t = np.array([self.t_s])
        truth = {name: self._row[i : i + 1] for i, name in enumerate(OUT_COLUMNS)}
        out: dict[str, float] = {}
        for dev in DEVICES if devices is None else devices:
            for name, v in self.sensors.measure(dev, t, truth).items():
                out[f"{dev}.{name}"] = float(v[0])
        return out

    def active_faults(self) -> list[ActiveFault]:
        return [f for f in self.schedule.faults if f.active(self.t_s)]

    def fault_flags(self) -> dict[str, set[str]]:
        """``{target: {fault kind, ...}}`` active now, e.g. ``{"pt302": {"dropout"}}``."""
        return fault_flags(self.schedule.faults, self.t_s)

    def truth(self) -> TruthTotals:
        h = self.hydraulics
        return TruthTotals.from_row(self._row, h.solids_initial_kg, h.rey_initial_kg)
