"""CLI glue for fleet replay (`replay` with many runs) and `chikyu-daq sweep`."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Any

import typer

WorkersOption = Annotated[
    int | None, typer.Option("--workers", min=1, help="LocalCluster of N worker processes.")
]
SchedulerOption = Annotated[
    str | None, typer.Option("--scheduler", help="An existing Dask scheduler tcp://HOST:PORT.")
]


def iso_ns(text: str | None, flag: str) -> int | None:
    """Fleet windows are absolute (runs start at different times): ISO-8601 UTC only."""
    if text is None:
        return None
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(
            f"with many runs, expected an ISO-8601 time, got {text!r}", param_hint=flag
        ) from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return round(dt.timestamp() * 1e9)


def _default_out(kind: str) -> Path:
    return Path(f"{kind}-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}")


def _prepare(paths: list[Path], config: Path | None) -> tuple[list[Any], dict[str, Any] | None]:
    from chikyu_daq.config.model import load_or_exit
    from chikyu_daq.fleet.runs import FleetError, open_runs

    try:
        runs = open_runs(paths)
    except FleetError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    cfg = load_or_exit(config).model_dump(mode="json") if config else None
    return runs, cfg


def _warm_config(runs: list[Any], cfg: dict[str, Any] | None) -> dict[str, Any] | None:
    return cfg or next((r.manifest["config"] for r in runs if r.manifest.get("config")), None)


def fleet_replay(
    paths: list[Path],
    config: Path | None,
    out: Path | None,
    t_from: str | None,
    t_to: str | None,
    report: bool,
    workers: int | None,
    scheduler: str | None,
) -> None:
    from chikyu_daq.fleet.cluster import dask_client
    from chikyu_daq.fleet.replay_many import replay_fleet
    from chikyu_daq.fleet.runs import FleetError

    runs, cfg = _prepare(paths, config)
    lo, hi = iso_ns(t_from, "--from"), iso_ns(t_to, "--to")
    out = out or _default_out("fleet-replay")
    try:
        with dask_client(workers, scheduler, warm_config=_warm_config(runs, cfg)) as client:
            rows = replay_fleet(
                client, runs, out, config=cfg, t_from_ns=lo, t_to_ns=hi, report=report
            )
    except FleetError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    _finish(out / "fleet_summary.txt", rows, f"runs replayed; results in {out}")


def sweep_cmd(
    runs: Annotated[list[Path], typer.Argument(help="Runs: run folders, folder trees, lists.")],
    sets: Annotated[
        list[str],
        typer.Option("--set", help="KEY=V1,V2,... (dotted config key); repeat for a grid."),
    ],
    config: Annotated[
        Path | None, typer.Option("-c", "--config", help="Base config instead of the recorded.")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Output folder.")] = None,
    workers: WorkersOption = None,
    scheduler: SchedulerOption = None,
) -> None:
    """Replay RUNS over the grid of --set values on Dask; write a sensitivity table."""
    from chikyu_daq.config.model import ConfigError, fail_config
    from chikyu_daq.fleet.cluster import dask_client
    from chikyu_daq.fleet.overrides import grid, parse_set
    from chikyu_daq.fleet.runs import FleetError
    from chikyu_daq.fleet.sweep import check_grid, sweep

    opened, cfg = _prepare(runs, config)
    out = out or _default_out("sweep")
    try:
        cases = grid([parse_set(s) for s in sets])
        check_grid(opened, cfg, cases)
        with dask_client(workers, scheduler, warm_config=_warm_config(opened, cfg)) as client:
            rows, _, _ = sweep(client, opened, out, cases, config=cfg)
    except ConfigError as err:
        fail_config(err)
    except FleetError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    _finish(out / "sensitivity.txt", rows, f"replays done; tables in {out}")


def split_replay(
    paths: list[Path],
    config: Path | None,
    out: Path | None,
    part_h: float,
    workers: int | None,
    scheduler: str | None,
) -> None:
    """One long run in time partitions on Dask, stitched to equal a serial replay."""
    from chikyu_daq.fleet.cluster import dask_client
    from chikyu_daq.fleet.split import replay_split

    runs, cfg = _prepare(paths, config)
    if len(runs) != 1:
        print("error: --split replays one run", file=sys.stderr)
        raise SystemExit(2)
    out = out or runs[0].path / f"replay-split-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}"
    with dask_client(workers, scheduler, warm_config=_warm_config(runs, cfg)) as client:
        summary = replay_split(client, runs[0].path, out, part_s=part_h * 3600.0, config=cfg)
    print(json.dumps({k: v for k, v in summary.items() if k != "bounds_ns"}, indent=2))
    print(f"results in {out}")


def _finish(table: Path, rows: list[dict[str, Any]], what: str) -> None:
    """Print the readable table and the tally; a failed task makes the exit status 1."""
    print(table.read_text(encoding="utf-8"), end="")
    failed = sum(r["status"] != "ok" for r in rows)
    print(f"{len(rows) - failed} of {len(rows)} {what}")
    if failed:
        raise SystemExit(1)
