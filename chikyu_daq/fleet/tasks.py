"""What one Dask task does: replay one run (optionally with overrides) into the fleet folder.

Tasks get paths and small JSON-able dicts, read their own Parquet and write their own files;
they return a summary row, small enough to gather on the client.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from chikyu_daq.config.model import Config, parse_config
from chikyu_daq.fleet import dataset
from chikyu_daq.fleet.overrides import apply
from chikyu_daq.fleet.runs import vessel_of
from chikyu_daq.replay.engine import ReplayOptions, recorded_config, replay
from chikyu_daq.store.reader import Run, open_run


def run_config(
    run: Run, config: Mapping[str, Any] | None, overrides: Mapping[str, Any] | None
) -> Config:
    """The config a run replays with: `config` (or the recorded one) plus `overrides`."""
    base = parse_config(dict(config), "--config") if config else recorded_config(run)
    if not overrides:
        return base
    return apply(base.model_dump(mode="json"), overrides)


def worker_name() -> str:
    """Where a task ran (the Dask worker address, else host:pid) — the summary shows it."""
    try:
        from distributed import get_worker

        return str(get_worker().address)
    except (ImportError, ValueError):
        return f"{socket.gethostname()}:{os.getpid()}"


def run_out_dir(out_root: Path, vessel: str, run_id: str, case: str = "") -> Path:
    base = out_root / "runs" / vessel / run_id
    return base / case if case else base


def replay_run(
    run_dir: str,
    out_root: str,
    *,
    config: Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
    case: str = "",
    t_from_ns: int | None = None,
    t_to_ns: int | None = None,
    report: bool = False,
    keep_results: bool = True,
) -> dict[str, Any]:
    """Replay one run; results go to the partitioned dataset (or are dropped for sweeps), the
    summary and events to `runs/<vessel>/<run>[/<case>]/`. Returns a fleet-summary row."""
    run = open_run(run_dir)
    vessel = vessel_of(run)
    cfg = run_config(run, config, overrides)
    out = run_out_dir(Path(out_root), vessel, run.run_id, case)
    opts = ReplayOptions(out_dir=out, t_from_ns=t_from_ns, t_to_ns=t_to_ns, report=report)
    summary = replay(run.path, opts, cfg=cfg)
    results = out / "results.parquet"
    if keep_results:
        dataset.write_partitions(results, Path(out_root), vessel, run.run_id)
    results.unlink(missing_ok=True)
    row = dataset.summary_row(vessel, run.run_id, str(run.path), summary, case)
    row["worker"] = worker_name()
    return row
