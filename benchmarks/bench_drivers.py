"""Driver throughput and rate fidelity against the emulators, as JSON.

    .venv/bin/python benchmarks/bench_drivers.py [--seconds 3] [--rates-seconds 10] [--out FILE|DIR]

1. Transactions per second through the driver (bus owner: schedule, read, decode, quality,
   stats, emit) against the emulated gateway, beside a bare pymodbus loop doing the same reads
   in the same run: the read (function, address, count, unit) is taken from the driver's own
   compiled plan of P-101A, the bare client gets the bus' timeout and retries, and each side
   keeps one connection for the whole run (connect time excluded). The sides take turns in
   short slices (ABBA...), so load from elsewhere on the host hits both alike; each round is
   `--seconds` per side. `driver_overhead` = 1 - median(driver) / median(bare) over rounds
   (target <= 20 %); beside it the per-round figures, the median over slice pairs, and client
   CPU microseconds per transaction (`time.process_time`: this process only, the emulators
   run in a child).
2. Achieved vs configured poll rates for the whole reference installation, and the delay from
   a batch's time stamp to the sink (p99, max): what `processing.lateness_s` must cover.
The emulators run in a child process (`hil serve`) so they do not share the driver's loop.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.publish import json_path  # noqa: E402
from chikyu_daq.config.model import load_config  # noqa: E402
from drivers.acquisition import Acquisition  # noqa: E402
from drivers.endpoints import override_buses  # noqa: E402
from drivers.regmap import ReadRequest, compile_device  # noqa: E402
from drivers.sample import Batch  # noqa: E402

#: the device both sides read, as fast as they can
DEVICE = "p101a"

SERVE = (
    "import asyncio,sys; from chikyu_daq.config.model import load_config; "
    "from chikyu_daq.cli.hil_serve import serve; "
    "asyncio.run(serve(load_config(sys.argv[1]), None, 0, []))"
)


def start_rig(cfg_path: Path) -> tuple[subprocess.Popen[str], dict[str, str]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVE, str(cfg_path)], stdout=subprocess.PIPE, text=True, cwd=REPO
    )
    assert proc.stdout is not None
    return proc, json.loads(proc.stdout.readline())


class Tally:
    """Transactions, wall seconds and client CPU seconds accumulated over timed slices."""

    def __init__(self) -> None:
        self.n, self.wall_s, self.cpu_s = 0, 0.0, 0.0

    def add(self, n: int, wall_s: float, cpu_s: float) -> None:
        self.n += n
        self.wall_s += wall_s
        self.cpu_s += cpu_s

    @property
    def tx_s(self) -> float:
        return self.n / self.wall_s

    @property
    def cpu_us(self) -> float:
        return self.cpu_s / self.n * 1e6


def the_read(cfg: Any) -> tuple[int, ReadRequest]:
    """(unit, request) the driver issues for DEVICE: the bare loop issues exactly this."""
    dev = cfg.devices[DEVICE]
    plan = compile_device(DEVICE, dev, cfg.maps[dev.map])
    assert len(plan.requests) == 1, "the comparison assumes one read per poll"
    return plan.unit, plan.requests[0].request


class Bare:
    """A bare pymodbus client issuing the driver's read in a loop, nothing else."""

    def __init__(self, cfg: Any, endpoint: str) -> None:
        from pymodbus.client import AsyncModbusTcpClient

        host, port = endpoint.rsplit(":", 1)
        self.unit, self.req = the_read(cfg)
        bus = cfg.buses[cfg.devices[DEVICE].bus]
        self.client = AsyncModbusTcpClient(
            host, port=int(port), timeout=bus.timeout_s, retries=bus.retries, reconnect_delay=0
        )
        c: Any = self.client
        self.read = {3: c.read_holding_registers, 4: c.read_input_registers}[self.req.function]

    async def start(self) -> None:
        assert await self.client.connect()

    async def slice(self, seconds: float, tally: Tally) -> None:
        read, req, unit = self.read, self.req, self.unit
        n, t0, c0 = 0, time.perf_counter(), time.process_time()
        while time.perf_counter() - t0 < seconds:
            rr = await read(req.address, count=req.count, device_id=unit)
            assert not rr.isError() and len(rr.registers) == req.count
            n += 1
        tally.add(n, time.perf_counter() - t0, time.process_time() - c0)

    async def stop(self) -> None:
        self.client.close()


class Driver:
    """`Acquisition` polling DEVICE as fast as it can (poll_hz far above reach).

    Between slices its sink holds the batch at a closed gate, so the bus owner sits idle on its
    open connection (no read in flight) while the bare loop runs.
    """

    def __init__(self, cfg: Any, endpoints: dict[str, str]) -> None:
        dev = cfg.devices[DEVICE].model_copy(update={"poll_hz": 1e6})
        self.n = 0
        self.gate = asyncio.Event()
        self.gate.set()
        buses = override_buses(cfg.buses, {dev.bus: endpoints[dev.bus]})
        self.acq = Acquisition(buses, cfg.maps, cfg.sentences, {DEVICE: dev}, self.sink)
        self.task: asyncio.Task[None] | None = None

    async def sink(self, batch: Batch) -> None:
        await self.gate.wait()
        self.n += 1

    async def start(self) -> None:
        self.task = asyncio.create_task(self.acq.run())
        while self.acq.stats()["devices"][DEVICE]["polls_ok"] == 0:
            await asyncio.sleep(0.01)
        self.gate.clear()

    async def slice(self, seconds: float, tally: Tally) -> None:
        n0, t0, c0 = self.n, time.perf_counter(), time.process_time()
        self.gate.set()
        await asyncio.sleep(seconds)
        self.gate.clear()
        tally.add(self.n - n0, time.perf_counter() - t0, time.process_time() - c0)

    async def stop(self) -> None:
        assert self.task is not None
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        st = self.acq.stats()["devices"][DEVICE]
        assert st["polls_failed"] == 0 and st["state"] == "ok", st


async def throughput(
    cfg: Any, endpoints: dict[str, str], rounds: int, seconds: float, slice_s: float
) -> dict[str, Any]:
    """Bare vs driver on one persistent connection each, in alternating slices (ABBA...)."""
    unit, req = the_read(cfg)
    bare, drv = Bare(cfg, endpoints[cfg.devices[DEVICE].bus]), Driver(cfg, endpoints)
    await bare.start()
    await drv.start()
    per_round: list[tuple[Tally, Tally]] = []
    pairs: list[float] = []
    try:
        for r in range(rounds):
            tb, td = Tally(), Tally()
            for k in range(max(1, round(seconds / slice_s))):
                sb, sd = Tally(), Tally()
                if (r + k) % 2 == 0:
                    await bare.slice(slice_s, sb)
                    await drv.slice(slice_s, sd)
                else:
                    await drv.slice(slice_s, sd)
                    await bare.slice(slice_s, sb)
                pairs.append(1 - sd.tx_s / sb.tx_s)
                tb.add(sb.n, sb.wall_s, sb.cpu_s)
                td.add(sd.n, sd.wall_s, sd.cpu_s)
            per_round.append((tb, td))
    finally:
        await drv.stop()
        await bare.stop()
    b = statistics.median(tb.tx_s for tb, _ in per_round)
    d = statistics.median(td.tx_s for _, td in per_round)
    cpu_b = statistics.median(tb.cpu_us for tb, _ in per_round)
    cpu_d = statistics.median(td.cpu_us for _, td in per_round)
    return {
        "read": f"FC{req.function} unit {unit} address {req.address} count {req.count}"
        f" ({DEVICE}, {cfg.devices[DEVICE].map} map); one persistent connection per side",
        "method": f"{rounds} rounds x {seconds} s per side, alternating {slice_s} s slices",
        "bare_pymodbus_tx_s": [round(tb.tx_s, 1) for tb, _ in per_round],
        "driver_tx_s": [round(td.tx_s, 1) for _, td in per_round],
        "bare_median_tx_s": round(b, 1),
        "driver_median_tx_s": round(d, 1),
        "driver_overhead": round(1 - d / b, 4),
        "target_overhead_max": 0.20,
        "within_target": 1 - d / b <= 0.20,
        "driver_overhead_per_round": [round(1 - td.tx_s / tb.tx_s, 4) for tb, td in per_round],
        "driver_overhead_median_of_slice_pairs": round(statistics.median(pairs), 4),
        "driver_extra_us_per_tx": round(1e6 / d - 1e6 / b, 1),
        "bare_cpu_us_per_tx": round(cpu_b, 1),
        "driver_cpu_us_per_tx": round(cpu_d, 1),
        "driver_extra_cpu_us_per_tx": round(cpu_d - cpu_b, 1),
    }


async def rates(cfg: Any, endpoints: dict[str, str], seconds: float) -> dict[str, Any]:
    """Achieved rates, and how long after its time stamp each batch reaches the sink: the
    delay `processing.lateness_s` must cover for no sample to arrive late."""
    delay: dict[str, list[float]] = {}
    measuring = False

    async def sink(batch: Batch) -> None:
        if measuring:
            now = time.time_ns()
            t = max(s.t_ns for s in batch.samples.values())
            delay.setdefault(batch.device, []).append((now - t) / 1e6)

    acq = Acquisition(
        override_buses(cfg.buses, endpoints), cfg.maps, cfg.sentences, cfg.devices, sink
    )
    task = asyncio.create_task(acq.run())
    await asyncio.sleep(1.0)  # connect and settle
    measuring = True
    before = acq.stats()["devices"]
    t0 = time.perf_counter()
    await asyncio.sleep(seconds)
    after = acq.stats()["devices"]
    dt = time.perf_counter() - t0
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    out = {}
    for dev_id, dev in cfg.devices.items():
        configured = dev.poll_hz if dev.poll_hz else 2.0  # DT-201 sends every 500 ms
        got = (after[dev_id]["polls_ok"] - before[dev_id]["polls_ok"]) / dt
        out[dev_id] = {
            "configured_hz": configured,
            "achieved_hz": round(got, 3),
            "ratio": round(got / configured, 4),
            "missed_deadlines": after[dev_id]["missed_deadlines"]
            - before[dev_id]["missed_deadlines"],
            "failed": after[dev_id]["polls_failed"] - before[dev_id]["polls_failed"],
            "latency_mean_ms": round(after[dev_id]["latency_mean_ms"], 3),
        }
        d = sorted(delay.get(dev_id, []))
        if d:
            out[dev_id]["stamp_to_sink_ms_p99"] = round(d[int(0.99 * (len(d) - 1))], 2)
            out[dev_id]["stamp_to_sink_ms_max"] = round(d[-1], 2)
    every = sorted(x for v in delay.values() for x in v)
    if every:
        out["all_devices"] = {
            "stamp_to_sink_ms_p99": round(every[int(0.99 * (len(every) - 1))], 2),
            "stamp_to_sink_ms_max": round(every[-1], 2),
            "lateness_s": cfg.processing.lateness_s,
        }
    return out


async def main(args: argparse.Namespace) -> dict[str, Any]:
    cfg = load_config(args.config)
    proc, endpoints = start_rig(args.config)
    try:
        result: dict[str, Any] = {
            "throughput": await throughput(
                cfg, endpoints, args.rounds, args.seconds, args.slice_seconds
            ),
            "rates": await rates(cfg, endpoints, args.rates_seconds),
            "host": {"cpus": os.cpu_count(), "python": sys.version.split()[0]},
        }
        return result
    finally:
        proc.terminate()
        proc.wait(timeout=10)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", type=Path, default=REPO / "config" / "reference.toml")
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--slice-seconds", type=float, default=0.5)
    ap.add_argument("--rates-seconds", type=float, default=10.0)
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    res = asyncio.run(main(a))
    text = json.dumps(res, indent=2)
    if a.out:
        out = json_path(a.out, "drivers.json")
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text + "\n", encoding="utf-8")
    print(text)
