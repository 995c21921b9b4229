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

REPO = Path(__file__).resolve().parents[2]
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
