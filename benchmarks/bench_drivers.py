"""Driver throughput and rate fidelity against the emulators, as JSON.

    .venv/bin/python benchmarks/bench_drivers.py [--seconds 3] [--rates-seconds 10] [--out FILE]

1. Transactions per second through the driver (bus owner: schedule, read, decode, quality,
   stats, emit) against the emulated gateway, beside a bare pymodbus loop doing the same reads
   in the same run: the read (function, address, count, unit) is taken from the driver's own
   compiled plan of P-101A and the bare client gets the bus' timeout/retries, one connection
   each, connect time excluded from both. Rounds alternate which side goes first (ABBA) so
   drift hits both; `driver_overhead` = 1 - median(driver) / median(bare) (target <= 20 %),
   with the per-round paired figures, their median, and client CPU microseconds per
   transaction (`time.process_time`, this process only: the emulators are a child) beside it.
2. Achieved vs configured poll rates for the whole reference installation.
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

from chikyu_daq.config import load_config  # noqa: E402
from drivers.acquisition import Acquisition  # noqa: E402
from drivers.endpoints import override_buses  # noqa: E402
from drivers.regmap import ReadRequest, compile_device  # noqa: E402
from drivers.sample import Batch  # noqa: E402

#: the device both sides read, as fast as they can
DEVICE = "p101a"

SERVE = (
    "import asyncio,sys; from chikyu_daq.config import load_config; "
    "from chikyu_daq.cmd_hil_serve import serve; "
    "asyncio.run(serve(load_config(sys.argv[1]), None, 0, []))"
)


def start_rig(cfg_path: Path) -> tuple[subprocess.Popen[str], dict[str, str]]:
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVE, str(cfg_path)], stdout=subprocess.PIPE, text=True, cwd=REPO
    )
    assert proc.stdout is not None
    return proc, json.loads(proc.stdout.readline())


class Run:
    """Transactions per second and client CPU microseconds per transaction of one timed run."""

    def __init__(self, n: int, wall_s: float, cpu_s: float) -> None:
        self.tx_s = n / wall_s
        self.cpu_us = cpu_s / n * 1e6 if n else float("nan")


def the_read(cfg: Any) -> tuple[int, ReadRequest]:
    """(unit, request) the driver issues for DEVICE: the bare loop issues exactly this."""
    dev = cfg.devices[DEVICE]
    plan = compile_device(DEVICE, dev, cfg.maps[dev.map])
    assert len(plan.requests) == 1, "the comparison assumes one read per poll"
    return plan.unit, plan.requests[0].request


async def bare_pymodbus(cfg: Any, host: str, port: int, seconds: float) -> Run:
    from pymodbus.client import AsyncModbusTcpClient

    unit, req = the_read(cfg)
    bus = cfg.buses[cfg.devices[DEVICE].bus]
    client = AsyncModbusTcpClient(
        host, port=port, timeout=bus.timeout_s, retries=bus.retries, reconnect_delay=0
    )
    read = {3: client.read_holding_registers, 4: client.read_input_registers}[req.function]
    await client.connect()
    n, t0, c0 = 0, time.perf_counter(), time.process_time()
    while time.perf_counter() - t0 < seconds:
        rr = await read(req.address, count=req.count, device_id=unit)
        assert not rr.isError() and len(rr.registers) == req.count
        n += 1
    run = Run(n, time.perf_counter() - t0, time.process_time() - c0)
    client.close()
    return run


async def driver(cfg: Any, endpoints: dict[str, str], seconds: float) -> Run:
    """One pump drive polled as fast as the bus owner can go (poll_hz far above reach)."""
    dev = cfg.devices[DEVICE].model_copy(update={"poll_hz": 1e6})
    n = 0

    async def sink(batch: Batch) -> None:
        nonlocal n
        n += 1

    buses = override_buses(cfg.buses, {dev.bus: endpoints[dev.bus]})
    acq = Acquisition(buses, cfg.maps, cfg.sentences, {DEVICE: dev}, sink)
    task = asyncio.create_task(acq.run())
    while acq.stats()["devices"][DEVICE]["polls_ok"] == 0:
        await asyncio.sleep(0.01)
    n0, t0, c0 = n, time.perf_counter(), time.process_time()
    await asyncio.sleep(seconds)
    run = Run(n - n0, time.perf_counter() - t0, time.process_time() - c0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    assert acq.stats()["devices"][DEVICE]["polls_failed"] == 0
    return run


async def rates(cfg: Any, endpoints: dict[str, str], seconds: float) -> dict[str, Any]:
    async def sink(batch: Batch) -> None:
        return None

    acq = Acquisition(
        override_buses(cfg.buses, endpoints), cfg.maps, cfg.sentences, cfg.devices, sink
    )
    task = asyncio.create_task(acq.run())
    await asyncio.sleep(1.0)  # connect and settle
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
    return out


async def main(args: argparse.Namespace) -> dict[str, Any]:
    cfg = load_config(args.config)
    proc, endpoints = start_rig(args.config)
    try:
        host, port = endpoints[cfg.devices[DEVICE].bus].rsplit(":", 1)
        unit, req = the_read(cfg)
        bare: list[Run] = []
        drv: list[Run] = []
        for i in range(args.rounds):
            if i % 2 == 0:
                bare.append(await bare_pymodbus(cfg, host, int(port), args.seconds))
                drv.append(await driver(cfg, endpoints, args.seconds))
            else:
                drv.append(await driver(cfg, endpoints, args.seconds))
                bare.append(await bare_pymodbus(cfg, host, int(port), args.seconds))
        b = statistics.median(r.tx_s for r in bare)
        d = statistics.median(r.tx_s for r in drv)
        paired = [1 - dr.tx_s / br.tx_s for br, dr in zip(bare, drv, strict=True)]
        cpu_b = statistics.median(r.cpu_us for r in bare)
        cpu_d = statistics.median(r.cpu_us for r in drv)
        result: dict[str, Any] = {
            "throughput": {
                "read": f"FC{req.function} unit {unit} address {req.address} count {req.count}"
                f" ({DEVICE}, {cfg.devices[DEVICE].map} map), one connection each side",
                "rounds": args.rounds,
                "seconds_per_run": args.seconds,
                "bare_pymodbus_tx_s": [round(r.tx_s, 1) for r in bare],
                "driver_tx_s": [round(r.tx_s, 1) for r in drv],
                "bare_median_tx_s": round(b, 1),
                "driver_median_tx_s": round(d, 1),
                "driver_overhead": round(1 - d / b, 4),
                "driver_overhead_per_round": [round(x, 4) for x in paired],
                "driver_overhead_median_of_rounds": round(statistics.median(paired), 4),
                "driver_extra_us_per_tx": round(1e6 / d - 1e6 / b, 1),
                "bare_cpu_us_per_tx": round(cpu_b, 1),
                "driver_cpu_us_per_tx": round(cpu_d, 1),
                "driver_extra_cpu_us_per_tx": round(cpu_d - cpu_b, 1),
                "target_overhead_max": 0.20,
                "within_target": 1 - d / b <= 0.20,
            },
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
    ap.add_argument("--rates-seconds", type=float, default=10.0)
    ap.add_argument("--out", type=Path)
    a = ap.parse_args()
    res = asyncio.run(main(a))
    text = json.dumps(res, indent=2)
    if a.out:
        a.out.write_text(text + "\n", encoding="utf-8")
    print(text)
