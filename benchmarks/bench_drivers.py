"""Driver throughput and rate fidelity against the emulators, as JSON.

    .venv/bin/python benchmarks/bench_drivers.py [--seconds 3] [--rates-seconds 10] [--out FILE]

1. Transactions per second through the driver (bus owner: schedule, read, decode, quality,
   emit) against the emulated gateway, beside a bare pymodbus loop doing the same reads in the
   same run, alternated A/B so drift hits both; overhead = 1 - driver / bare (target <= 20 %).
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
from drivers.sample import Batch  # noqa: E402

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


async def bare_pymodbus(host: str, port: int, seconds: float) -> float:
    from pymodbus.client import AsyncModbusTcpClient

    client = AsyncModbusTcpClient(host, port=port, timeout=1, retries=0)
    await client.connect()
    n, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        rr = await client.read_holding_registers(0, count=10, device_id=1)
        assert not rr.isError()
        n += 1
    dt = time.perf_counter() - t0
    client.close()
    return n / dt


async def driver(cfg: Any, endpoints: dict[str, str], seconds: float) -> float:
    """One pump drive polled as fast as the bus owner can go (poll_hz far above reach)."""
    dev = cfg.devices["p101a"].model_copy(update={"poll_hz": 1e6})
    n = 0

    async def sink(batch: Batch) -> None:
        nonlocal n
        n += 1

    buses = override_buses(cfg.buses, {"topside": endpoints["topside"]})
    acq = Acquisition(buses, cfg.maps, cfg.sentences, {"p101a": dev}, sink)
    task = asyncio.create_task(acq.run())
    while acq.stats()["devices"]["p101a"]["polls_ok"] == 0:
        await asyncio.sleep(0.01)
    n0, t0 = n, time.perf_counter()
    await asyncio.sleep(seconds)
    rate = (n - n0) / (time.perf_counter() - t0)
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
    return rate


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
        host, port = endpoints["topside"].rsplit(":", 1)
        bare, drv = [], []
        for _ in range(args.rounds):
            bare.append(await bare_pymodbus(host, int(port), args.seconds))
            drv.append(await driver(cfg, endpoints, args.seconds))
        b, d = statistics.median(bare), statistics.median(drv)
        result: dict[str, Any] = {
            "throughput": {
                "read": "FC3 unit 1 address 0 count 10 (pump drive map)",
                "bare_pymodbus_tx_s": [round(x, 1) for x in bare],
                "driver_tx_s": [round(x, 1) for x in drv],
                "bare_median_tx_s": round(b, 1),
                "driver_median_tx_s": round(d, 1),
                "driver_overhead": round(1 - d / b, 4),
                "target_overhead_max": 0.20,
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
