"""Fleet replay: every run one task; a partitioned results dataset and a fleet summary."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from chikyu_daq.fleet import dataset
from chikyu_daq.fleet.cluster import Job, run_jobs
from chikyu_daq.fleet.runs import vessel_of
from chikyu_daq.fleet.tasks import replay_run
from chikyu_daq.store.reader import Run


def replay_fleet(
    client: Any,
    runs: list[Run],
    out: Path,
    *,
    config: Mapping[str, Any] | None = None,
    t_from_ns: int | None = None,
    t_to_ns: int | None = None,
    report: bool = False,
) -> list[dict[str, Any]]:
    """Replay `runs` on `client`'s cluster into `out`; returns one summary row per run (failed
    runs included, with their error) and writes `fleet_summary.parquet` / `.txt`."""
    out.mkdir(parents=True, exist_ok=True)
    jobs = [
        Job(
            f"{vessel_of(r)}/{r.run_id}",
            replay_run,
            (str(r.path), str(out)),
            {
                "config": config,
                "t_from_ns": t_from_ns,
                "t_to_ns": t_to_ns,
                "report": report,
            },
        )
        for r in runs
    ]
    rows = []
    for run, outcome in zip(runs, run_jobs(client, jobs), strict=True):
        if outcome.error is None:
            rows.append(outcome.result)
        else:
            rows.append(
                dataset.failed_row(vessel_of(run), run.run_id, str(run.path), outcome.error)
            )
    dataset.write_summary(out, rows)
    return rows
