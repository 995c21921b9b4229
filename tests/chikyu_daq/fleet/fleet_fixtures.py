"""A real Dask cluster (scheduler + workers as processes on loopback) and a small fleet archive."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from chikyu_daq.fleet.synth import synth_run
from tests.servers import free_port, wait_until

REPO = Path(__file__).resolve().parents[3]
#: Just before midnight UTC so that a run spans two day partitions.
START_NS = int(np.datetime64("2026-02-01T23:57:00", "ns").astype(np.int64))


@dataclass
class DaskProcs:
    address: str
    procs: list[subprocess.Popen[bytes]]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH")) if p)
    return env


def start_dask(workdir: Path, n_workers: int = 2) -> Iterator[DaskProcs]:
    """`dask scheduler` and `n_workers` `dask worker` processes (one thread, no nanny)."""
    from distributed import Client

    port = free_port()
    address = f"tcp://127.0.0.1:{port}"
    py = sys.executable
    cmds = [
        [py, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", str(port),
         "--no-dashboard", "--no-show"],
    ] + [
        [py, "-m", "distributed.cli.dask_worker", address, "--nthreads", "1", "--no-nanny",
         "--host", "127.0.0.1", "--no-dashboard", "--name", f"w{i}"]
        for i in range(n_workers)
    ]  # fmt: skip
    procs: list[subprocess.Popen[bytes]] = []
    try:
        for i, cmd in enumerate(cmds):
            log = (workdir / f"dask-{i}.log").open("ab")
            procs.append(
                subprocess.Popen(cmd, env=_env(), cwd=workdir, stdout=log, stderr=subprocess.STDOUT)
            )
            log.close()
        with Client(address, timeout="30s") as client:
            wait_until(lambda: len(client.scheduler_info()["workers"]) == n_workers, 60.0, 0.2)
        yield DaskProcs(address, procs)
    finally:
        for p in reversed(procs):
            p.kill()
            p.wait(timeout=10)


def fleet_archive(root: Path) -> list[Path]:
    """Three short runs of two vessels (CI riser), one across midnight, plus one broken run."""
    runs = [
        synth_run(root, "chikyu", hours=0.1, start_ns=START_NS, seed=1),
        synth_run(root, "chikyu", hours=0.05, start_ns=START_NS + 3600 * 10**9, seed=2),
        synth_run(root, "kaimei", hours=0.1, start_ns=START_NS + 60 * 10**9, seed=3),
    ]
    broken = root / "kaimei" / "runs" / "empty"
    broken.mkdir(parents=True)
    (broken / "manifest.json").write_text(
        (runs[2] / "manifest.json").read_text().replace(runs[2].name, "empty")
    )
    return runs


#: Seawater phases of `long_run` (start h, end h, density reading minus TEOS-10 in kg/m3); the
#: last is shorter than the automatic reference's window: only an operator's command learns it.
SEAWATER = ((0.0, 0.5, 1.5), (6.5, 7.0, -1.0), (52_680 / 3600, 52_920 / 3600, 0.5))
#: Operator-commanded seawater references of `long_run` (start s, seconds): one while mud is
#: lifted (refused) and done before the 4 h partition's learn point (its outcome is handed over),
#: one in the last seawater phase, open across the 16 h partition's learn point (52,801 s).
COMMANDS = ((9_180, 60.0), (52_700, 200.0))
#: The 13 h assay of `long_run` came this late (s): applied from 16.2 h, inside a partition.
LATE_ASSAY_S = 11_520
#: The drives' shaft power in `long_run` (kW each): the specific energy crosses partitions.
SHAFT_KW = 350.0
#: The return flowmeter is dead (BAD) from/to these hours of `long_run`.
FLOW_DEAD = (17.0, 19.5)  # from before the last partition's warm-up (~17.5 h)


def long_run(root: Path, cfg_dump: dict, hours: float, start_ns: int, rate_div: int = 1) -> Path:
    """A cheap long recording of the role channels (numpy, not the plant): flow and density
    drift, flow cut to 30 % for half an hour, a density dropout (BAD, NaN) and an assay every
    four hours (one applied late, as the daemon records it: `LATE_ASSAY_S`), so that gaps, alarms
    and grade steps all cross partition bounds; a dead return
    flowmeter for longer than a warm-up (`FLOW_DEAD`: the flow is held, the gap runs across a
    partition's learn point); and seawater
    circulating (no mud: return = injection flow, density a steady offset from TEOS-10) at the
    start and again from `SEAWATER[1]`, so that the seawater reference is learned once early
    on and relearned with another offset later, both long before most partitions start, and
    relearned a third time on an operator's command (`COMMANDS`); the drives' shaft power."""
    from chikyu_daq.store.events import SeawaterReference
    from chikyu_daq.store.writer import Recorder
    from dsp.seawater import deck_density
    from tests.chikyu_daq.live.test_processor import NOMINAL, RATES_HZ

    rng = np.random.default_rng(11)
    span = hours * 3600.0
    sw = [(a * 3600.0, b * 3600.0, off) for a, b, off in SEAWATER]
    rho_sw = float(
        deck_density(35.16, np.array([NOMINAL["ai20.tt201"]]), np.array([NOMINAL["ai20.pt201"]]),
                     9.5, 1.0)[0]
    )  # fmt: skip
    # one segment file per hour, as a daemon's recorder would leave them (a replay reads by time)
    with Recorder(root, run_id="long", manifest={"config": cfg_dump}, segment_s=0.001,
                  flush_s=0.001, autoflush=False) as rec:  # fmt: skip
        data = {}
        rates = {**RATES_HZ, "p101a.shaft_power": 5.0, "p101b.shaft_power": 5.0}
        levels = {**NOMINAL, "p101a.shaft_power": SHAFT_KW, "p101b.shaft_power": SHAFT_KW}
        for ch, full_hz in rates.items():
            # the densitometer at its own rate: a seawater reference needs every 1 s lane
            hz = full_hz if ch == "dt201.density" else full_hz / rate_div
            n = int(span * hz)
            s = np.arange(n) / hz
            t = start_ns + (s * 1e9).astype(np.int64) + rng.integers(0, 3_000_000, n)
            level = levels[ch] * (1 + 0.01 * np.sin(2 * np.pi * s / 7200.0))
            if ch == "dt201.density":
                level = level + 15.0 * np.sin(2 * np.pi * s / 30_000.0)
            if ch in ("ft201.volume_flow", "ft101.volume_flow"):
                level = np.where((s > 10 * 3600) & (s < 10.5 * 3600), 0.3 * level, level)
            v = level * (1 + 0.002 * rng.standard_normal(n))
            for a, b, off in sw:
                phase = (s >= a) & (s < b)
                if ch == "ft201.volume_flow":  # return = injection: no mud taken
                    v[phase] = v[phase] * NOMINAL["ft101.volume_flow"] / NOMINAL[ch]
                if ch == "dt201.density":  # steady, a known offset from TEOS-10
                    v[phase] = rho_sw + off + 0.3 * rng.standard_normal(int(phase.sum()))
            q = np.zeros(n, np.uint8)
            if ch == "dt201.density":
                bad = (s > 15 * 3600) & (s < 15 * 3600 + 300)
                v[bad], q[bad] = np.nan, 2
            if ch == "ft201.volume_flow":  # longer than a warm-up: the gap's start is handed over
                bad = (s >= FLOW_DEAD[0] * 3600) & (s < FLOW_DEAD[1] * 3600)
                v[bad], q[bad] = np.nan, 2
            data[ch] = (np.sort(t), v, q)
        for h in range(int(np.ceil(hours))):
            lo, hi = start_ns + h * 3600 * 10**9, start_ns + (h + 1) * 3600 * 10**9
            part = {}
            for ch, (t, v, q) in data.items():
                i, j = np.searchsorted(t, [lo, hi])
                part[ch] = (t[i:j], v[i:j], q[i:j])
            rec.write_raw(part)
            rec.flush()  # writing an hour takes far longer than segment_s: one segment each
        for k in range(int(hours // 4)):
            t = start_ns + (4 * k + 1) * 3600 * 10**9
            rec.write_event(
                {"type": "assay", "t_ns": t, "rey_ppm": 2000.0 + 150.0 * k, "u_rey_ppm": 60.0,
                 **({"applied_ns": t + LATE_ASSAY_S * 10**9} if k == 3 else {})}
            )  # fmt: skip
        for t_s, dur in COMMANDS:  # as the daemon records them: on the grid, as applied
            rec.write_event(SeawaterReference(start_ns + t_s * 10**9, dur, "sato", "test"))
    return rec.path
