"""`chikyu-daq runs list` and `runs show RUN`: what the black box holds.

Plain functions with typer-annotated parameters; `cli.py` registers them. A run is named by its
id (a folder under `<data_dir>/runs/`) or by a path to its directory.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from chikyu_daq.store.reader import Run, RunError, list_runs, open_run

__all__ = ["runs_list", "runs_show"]

DataDirOption = Annotated[
    Path, typer.Option("--data-dir", "-d", help="Data directory (holds runs/).")
]


def _utc(t_ns: int | None) -> str:
    if t_ns is None:
        return "-"
    from datetime import UTC, datetime

    return datetime.fromtimestamp(t_ns / 1e9, tz=UTC).strftime("%Y-%m-%d %H:%M:%S")


def _resolve(run: str, data_dir: Path) -> Run:
    candidates = [Path(run), data_dir / "runs" / run]
    for p in candidates:
        if (p / "manifest.json").exists():
            return open_run(p)
    raise RunError(f"no run {run!r} (looked in {', '.join(str(c) for c in candidates)})")


def runs_list(data_dir: DataDirOption = Path("data")) -> None:
    """List recorded runs: id, start, state and size."""
    from rich.console import Console
    from rich.table import Table

    runs = list_runs(data_dir)
    if not runs:
        print(f"no runs under {data_dir / 'runs'}")
        return
    table = Table("run", "start (UTC)", "end (UTC)", "state", "MB")
    for r in runs:
        size = sum(p.stat().st_size for p in r.path.rglob("*") if p.is_file())
        state = "closed" if "end_utc" in r.manifest else "open or cut short"
        table.add_row(
            r.run_id,
            str(r.manifest.get("start_utc", "-")),
            str(r.manifest.get("end_utc", "-")),
            state,
            f"{size / 1e6:.1f}",
        )
    Console().print(table)


def runs_show(
    run: Annotated[str, typer.Argument(help="Run id or run directory.")],
    data_dir: DataDirOption = Path("data"),
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Show one run: manifest, time span, samples per channel, results and events."""
    try:
        r = _resolve(run, data_dir)
    except RunError as err:
        print(f"error: {err}")
        raise SystemExit(2) from None
    s = r.summary()
    if as_json:
        print(json.dumps({**s, "versions": r.manifest.get("versions", {})}, indent=2))
        return
    print(f"run        {s['run_id']}  ({'closed' if s['closed'] else 'open or cut short'})")
    print(f"path       {s['path']}")
    print(f"recorded   {s['start_utc']} .. {s['end_utc'] or '-'}")
    print(f"samples    {_utc(s['t_first_ns'])} .. {_utc(s['t_last_ns'])} UTC")
    print(f"raw        {s['raw_samples']} samples in {len(s['channels'])} channels")
    for name, n in sorted(s["channels"].items()):
        print(f"  {name:32s} {n}")
    print(f"results    {s['results_rows']} rows")
    print(f"events     {s['events']}")
    print(f"size       {s['bytes'] / 1e6:.1f} MB")
