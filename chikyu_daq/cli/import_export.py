"""`chikyu-daq import file|influx` and `chikyu-daq export`: runs to and from other historians."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Literal, cast

import typer

import_app = typer.Typer(
    help="Import recordings from other historians as runs.", no_args_is_help=True
)
ConfigOption = Annotated[
    Path, typer.Option("-c", "--config", help="Installation config the run replays with.")
]
DataDir = Annotated[Path, typer.Option("--out", help="Data directory (the run goes to OUT/runs/).")]
RunId = Annotated[str | None, typer.Option("--run-id", help="Run id (default: import-VESSEL-T).")]
Vessel = Annotated[str | None, typer.Option("--vessel", help="Vessel (default: the config's).")]


def _config(path: Path, vessel: str | None) -> Any:
    from chikyu_daq.config.model import load_or_exit

    cfg = load_or_exit(path)
    if vessel:
        cfg = cfg.model_copy(update={"site": cfg.site.model_copy(update={"vessel": vessel})})
    return cfg


def _done(run: Path, report: Any) -> None:
    d = report.as_dict()
    print(
        json.dumps(
            {
                "run": str(run),
                **{k: d[k] for k in ("rows_read", "rows_imported", "bad_rows", "time_unit")},
            },
            indent=2,
        )
    )
    for ex in d["examples"]:
        print(f"bad row: {ex}", file=sys.stderr)
    if d["bad_rows_total"]:
        print(f"warning: {d['bad_rows_total']} bad rows left out (see import_report.json)",
              file=sys.stderr)  # fmt: skip


@import_app.command("file")
def import_file_cmd(
    source: Annotated[
        Path, typer.Argument(help="Long CSV or Parquet: channel,time,value[,quality].")
    ],
    config: ConfigOption,
    out: DataDir,
    time_unit: Annotated[
        str, typer.Option("--time-unit", help="Epoch unit of numeric times: auto|s|ms|us|ns.")
    ] = "auto",
    events: Annotated[
        Path | None, typer.Option("--events", help="events.jsonl to carry over (assays).")
    ] = None,
    run_id: RunId = None,
    vessel: Vessel = None,
) -> None:
    """Turn a long-format CSV/Parquet file into a run directory."""
    from chikyu_daq.fleet.importer import SourceError, TimeUnit, import_file

    if time_unit not in ("auto", "s", "ms", "us", "ns"):
        raise typer.BadParameter("expected auto, s, ms, us or ns", param_hint="--time-unit")
    if not source.is_file():
        print(f"error: no such file: {source}", file=sys.stderr)
        raise SystemExit(2)
    cfg = _config(config, vessel)
    try:
        run, report = import_file(
            source,
            cfg,
            out,
            run_id=run_id,
            time_unit=cast(TimeUnit, time_unit),
            events=events,
        )
    except SourceError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    _done(run, report)


@import_app.command("influx")
def import_influx_cmd(
    config: ConfigOption,
    out: DataDir,
    t_from: Annotated[str, typer.Option("--from", help="ISO-8601 start (UTC).")],
    t_to: Annotated[str, typer.Option("--to", help="ISO-8601 end (UTC), exclusive.")],
    vessel: Vessel = None,
    run: Annotated[str | None, typer.Option("--run", help="Only this `run` tag.")] = None,
    dialect: Annotated[
        str | None,
        typer.Option("--dialect", help="v1 (InfluxQL /query) or v2 (Flux); default: config's."),
    ] = None,
    url: Annotated[str | None, typer.Option("--url", help="Default: [outputs.influx] url.")] = None,
    db: Annotated[str | None, typer.Option("--db", help="v1; default: config's db.")] = None,
    org: Annotated[str | None, typer.Option("--org", help="v2; default: config's org.")] = None,
    bucket: Annotated[
        str | None, typer.Option("--bucket", help="v2; default: config's bucket.")
    ] = None,
    slice_h: Annotated[
        float, typer.Option("--slice-h", min=0.001, help="Hours per query (memory bound).")
    ] = 1.0,
    run_id: RunId = None,
) -> None:
    """Query a vessel's raw measurements from InfluxDB into a run directory: 1.x (/query) or
    2.x (Flux; the token only from [outputs.influx] token_env/token_file)."""
    from chikyu_daq.cli.fleet import iso_ns
    from chikyu_daq.fleet.importer import SourceError, import_influx_v1, import_influx_v2

    cfg = _config(config, vessel)
    dialect = dialect or cfg.outputs.influx.dialect
    if dialect not in ("v1", "v2"):
        raise typer.BadParameter("expected v1 or v2", param_hint="--dialect")
    t0, t1 = iso_ns(t_from, "--from"), iso_ns(t_to, "--to")
    assert t0 is not None and t1 is not None
    common: dict[str, Any] = {
        "t0_ns": t0, "t1_ns": t1, "run": run, "url": url, "run_id": run_id,
        "slice_s": slice_h * 3600.0,
    }  # fmt: skip
    try:
        if dialect == "v1":
            path, report = import_influx_v1(cfg, out, db=db, **common)
        else:
            path, report = import_influx_v2(cfg, out, org=org, bucket=bucket, **common)
    except SourceError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    _done(path, report)


def export_cmd(
    run_dir: Annotated[Path, typer.Argument(help="Run directory.")],
    out: Annotated[Path, typer.Option("--out", help="Output .csv or .parquet file.")],
    time_format: Annotated[
        str, typer.Option("--time", help="iso (ns precision) or ns (epoch integers).")
    ] = "iso",
) -> None:
    """Write a run's raw samples as long CSV/Parquet (channel,time,value,quality)."""
    from chikyu_daq.fleet.importer import export_run
    from chikyu_daq.store.reader import RunError, open_run

    if time_format not in ("iso", "ns"):
        raise typer.BadParameter("expected iso or ns", param_hint="--time")
    try:
        run = open_run(run_dir)
    except RunError as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    fmt: Literal["iso", "ns"] = "iso" if time_format == "iso" else "ns"
    rows = export_run(run, out, time_format=fmt)
    print(f"{rows} rows to {out}")
