"""Counters the daemon publishes about its own acquisition (DESIGN "Pipeline": health is telemetry).

Plain mutable records owned by one bus task each; `snapshot()` copies them into JSON-able dicts.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from drivers.sample import Batch, Quality


@dataclass
class DeviceStats:
    polls_ok: int = 0
    polls_failed: int = 0
    timeouts: int = 0
    exceptions: int = 0
    last_exception_code: int = 0
    bad_replies: int = 0
    missed_deadlines: int = 0
    backoffs: int = 0
    bad_frames: int = 0
    seq_gaps: int = 0
    lost_sentences: int = 0
    #: sequence jumps too large to be lost sentences (a stray sentence, a device restart)
    seq_resyncs: int = 0
    frozen_counter: int = 0
    silences: int = 0
    state: str = "init"
    latency_n: int = 0
    latency_sum_ms: float = 0.0
    latency_max_ms: float = 0.0
    latency_last_ms: float = 0.0
    #: values screened out as BAD: field -> reason -> count (`drivers.validity`)
    bad_values: dict[str, dict[str, int]] = field(default_factory=dict)

    def latency(self, ms: float) -> None:
        self.latency_n += 1
        self.latency_sum_ms += ms
        self.latency_last_ms = ms
        self.latency_max_ms = max(self.latency_max_ms, ms)

    def snapshot(self) -> dict[str, Any]:
        # a shallow copy: `dataclasses.asdict` deep-copies field by field, ~10x the cost, once
        # a second per device for the health record
        d = dict(vars(self))
        d["bad_values"] = {f: dict(reasons) for f, reasons in self.bad_values.items()}
        d["latency_mean_ms"] = self.latency_sum_ms / self.latency_n if self.latency_n else 0.0
        return d


@dataclass
class BusStats:
    connected: bool = False
    connects: int = 0
    connect_failures: int = 0
    link_errors: int = 0
    last_error: str = ""


@dataclass
class AcquisitionStats:
    buses: dict[str, BusStats] = field(default_factory=dict)
    devices: dict[str, DeviceStats] = field(default_factory=dict)
    #: channel -> samples per quality code [good, uncertain, bad]
    channels: dict[str, list[int]] = field(default_factory=dict)
    batches: int = 0
    backpressure_waits: int = 0

    def count(self, batch: Batch) -> None:
        self.batches += 1
        channels = self.channels
        for ch, s in batch.samples.items():
            c = channels.get(ch)
            if c is None:
                c = channels[ch] = [0, 0, 0]
            c[s[2]] += 1  # s.quality

    def snapshot(self) -> dict[str, Any]:
        names = {int(q): q.name.lower() for q in Quality}
        return {
            "batches": self.batches,
            "backpressure_waits": self.backpressure_waits,
            "buses": {k: dict(vars(v)) for k, v in self.buses.items()},
            "devices": {k: v.snapshot() for k, v in self.devices.items()},
            "channels": {ch: {names[q]: c[q] for q in names} for ch, c in self.channels.items()},
        }
