"""`chikyu-daq replay RUN_DIR`: the recorded run through the same processor, as fast as possible.

Given many runs (a folder tree, several paths, a list file) or `--workers`/`--scheduler`, the
runs are replayed as a fleet on Dask instead (`chikyu_daq.fleet`).
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import typer


def parse_time(text: str | None, start_ns: int) -> int | None:
    """ISO-8601 UTC, or seconds from the start of the run (`600`, `+600`)."""
    if text is None:
        return None
    try:
        return start_ns + round(float(text) * 1e9)
    except ValueError:
        pass
    try:
        dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise typer.BadParameter(f"expected ISO time or seconds, got {text!r}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return round(dt.timestamp() * 1e9)


def replay_cmd(
    runs: Annotated[
        list[Path],
        typer.Argument(
            help="Run directory (data/runs/<run id>); or many: runs, folder trees, list files."
        ),
    ],
    config: Annotated[
        Path | None, typer.Option("-c", "--config", help="Replay with this config instead.")
    ] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Output folder.")] = None,
    t_from: Annotated[str | None, typer.Option("--from", help="ISO time or seconds.")] = None,
    t_to: Annotated[str | None, typer.Option("--to", help="ISO time or seconds.")] = None,
    speed: Annotated[str, typer.Option("--speed", help="'max' or N x real time.")] = "max",
    influx: Annotated[
        bool, typer.Option("--influx", help="Also write to the config's InfluxDB.")
    ] = False,
    mqtt: Annotated[
        bool, typer.Option("--mqtt", help="Also publish to the config's MQTT broker.")
    ] = False,
    report: Annotated[
        bool | None,
        typer.Option("--report/--no-report", help="Write report.png (default: one run only)."),
    ] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", min=1, help="Fleet: LocalCluster of N processes.")
    ] = None,
    scheduler: Annotated[
        str | None, typer.Option("--scheduler", help="Fleet: Dask scheduler tcp://HOST:PORT.")
    ] = None,
    split_h: Annotated[
        float | None,
        typer.Option("--split", min=0.01, help="One long run: partitions of H hours on Dask."),
    ] = None,
) -> None:
    """Replay RUN_DIR: results.parquet, events.jsonl, summary.json and report.png in --out.

    Many runs (or --workers/--scheduler): a Dask task per run; --out gets results/ (Parquet,
    partitioned vessel=/run=/day=), runs/<vessel>/<run>/ (summary, events) and fleet_summary."""
    from rich.progress import Progress

    fleet = len(runs) != 1 or workers or scheduler or split_h
    if fleet or not (runs[0] / "manifest.json").is_file():
        if speed != "max" or influx or mqtt or ((t_from or t_to) and split_h):
            raise typer.BadParameter(
                "--speed, --influx and --mqtt need one run replayed alone; "
                "--from/--to do not go with --split"
            )
        if split_h:
            from chikyu_daq.cli.fleet import split_replay

            split_replay(runs, config, out, split_h, workers, scheduler)
            return
        from chikyu_daq.cli.fleet import fleet_replay

        fleet_replay(runs, config, out, t_from, t_to, bool(report), workers, scheduler)
        return
    run_dir = runs[0]

    from chikyu_daq.config.model import load_or_exit
    from chikyu_daq.replay.engine import ReplayOptions, replay
    from chikyu_daq.store.reader import RunError, open_run

    try:
        run = open_run(run_dir)
    except RunError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    cfg = load_or_exit(config) if config else None
    rng = run.time_range()
    start = rng[0] if rng else 0
    try:
        factor = None if speed == "max" else float(speed)
    except ValueError:
        raise typer.BadParameter("expected 'max' or a number", param_hint="--speed") from None
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    opts = ReplayOptions(
        out_dir=out or run.path / f"replay-{stamp}",
        t_from_ns=parse_time(t_from, start),
        t_to_ns=parse_time(t_to, start),
        speed=factor,
        influx=influx,
        mqtt=mqtt,
        report=report is not False,
    )
    with Progress(transient=True, disable=not sys.stderr.isatty()) as bar:
        task = bar.add_task("replay", total=1.0)
        summary = replay(run.path, opts, cfg=cfg, progress=lambda f: bar.update(task, completed=f))
    keys = (
        "run_id",
        "duration_s",
        "grid_points",
        "cum_rey_kg",
        "u95_cum_rey_kg",
        "alarms_raised",
        "config_differences",
        "speed_x_realtime",
    )
    print(json.dumps({k: summary.get(k) for k in keys}, indent=2, default=str))
    print(f"results in {opts.out_dir}")
