"""`chikyu-daq` command line. Heavy imports stay inside commands so `--help` is instant."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from chikyu_daq.config.model import load_or_exit

app = typer.Typer(
    help="Chikyu DAQ: telemetry, yield estimation and HIL rig for rare-earth mud lifting.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
config_app = typer.Typer(help="Inspect and validate installation configs.", no_args_is_help=True)
app.add_typer(config_app, name="config")

ConfigOption = Annotated[Path, typer.Option("-c", "--config", help="Installation config (TOML).")]


@config_app.command("check")
def config_check(file: Annotated[Path, typer.Argument(help="Config file to validate.")]) -> None:
    """Validate FILE and print a summary of devices, channels and outputs."""
    from chikyu_daq.config.summary import print_summary

    cfg = load_or_exit(file)
    print_summary(cfg, str(file))


@app.command("run")
def run(
    config: ConfigOption,
    data_dir: Annotated[
        Path | None, typer.Option("--data-dir", help="Override [site] data_dir.")
    ] = None,
    endpoints: Annotated[
        str | None,
        typer.Option("--endpoints", help="Re-point buses (JSON or a `hil serve` endpoints file)."),
    ] = None,
    loop: Annotated[
        str | None,
        typer.Option(
            "--loop",
            help="Event loop: auto (uvloop if installed), uvloop or asyncio "
            "(default: $CHIKYU_DAQ_LOOP, else auto).",
        ),
    ] = None,
) -> None:
    """The shipboard daemon: poll, record, estimate, stream (systemd Type=notify)."""
    from chikyu_daq.live.daemon import run_daemon

    eps = None
    if endpoints:
        from chikyu_daq.cli.poll import load_endpoints

        eps = load_endpoints(endpoints, wait_s=10.0)
    raise SystemExit(run_daemon(config, data_dir=data_dir, endpoints=eps, loop=loop))


@app.command("demo")
def demo(
    duration: Annotated[float, typer.Option("--duration", help="Seconds to run.")] = 60.0,
    scenario: Annotated[str, typer.Option("--scenario", help="HIL scenario name.")] = "nominal",
    data_dir: Annotated[Path, typer.Option("--data-dir", help="Local data directory.")] = Path(
        "data/demo"
    ),
    influx: Annotated[
        bool, typer.Option("--influx", help="Also write to [outputs.influx].")
    ] = False,
    mqtt: Annotated[bool, typer.Option("--mqtt", help="Also publish to [outputs.mqtt].")] = False,
    config: Annotated[
        Path | None,
        typer.Option(
            "-c", "--config", help="Installation config for outputs (default: reference)."
        ),
    ] = None,
    ci_riser: Annotated[
        bool, typer.Option("--ci-riser", help="The scenario's short CI riser, not 5,700 m.")
    ] = False,
) -> None:
    """Emulated hardware, the real pipeline, a live dashboard; summary against plant truth."""
    from chikyu_daq.cli.hil import scenario_or_exit
    from chikyu_daq.rig.demo import demo_main, demo_scenario
    from chikyu_daq.rig.session import HilSession

    base = load_or_exit(config) if config else None
    full_scale = not ci_riser
    sc = demo_scenario(scenario_or_exit(scenario), full_scale=full_scale)
    session = HilSession(
        sc, data_dir=data_dir, duration_s=duration, cfg=base, influx=influx, mqtt=mqtt
    )
    raise SystemExit(demo_main(session, full_scale=full_scale))


def _register() -> None:
    from chikyu_daq.cli.alarms import alarms_ack, alarms_list, alarms_shelve, alarms_unshelve
    from chikyu_daq.cli.fleet import sweep_cmd
    from chikyu_daq.cli.hil import hil_run, hil_synth
    from chikyu_daq.cli.hil_serve import hil_serve
    from chikyu_daq.cli.import_export import export_cmd, import_app
    from chikyu_daq.cli.poll import poll
    from chikyu_daq.cli.reference import seawater_reference
    from chikyu_daq.cli.replay import replay_cmd
    from chikyu_daq.cli.runs import runs_list, runs_show
    from chikyu_daq.cli.spool import spool_check, spool_show

    app.command("poll")(poll)
    runs_app.command("list")(runs_list)
    runs_app.command("show")(runs_show)
    app.command("replay")(replay_cmd)
    app.command("sweep")(sweep_cmd)
    app.add_typer(import_app, name="import")
    app.command("export")(export_cmd)
    hil_app.command("serve")(hil_serve)
    hil_app.command("run")(hil_run)
    hil_app.command("synth")(hil_synth)
    spool_app.command("check")(spool_check)
    spool_app.command("show")(spool_show)
    alarms_app.command("list")(alarms_list)
    alarms_app.command("ack")(alarms_ack)
    alarms_app.command("shelve")(alarms_shelve)
    alarms_app.command("unshelve")(alarms_unshelve)
    app.command("seawater-reference")(seawater_reference)


runs_app = typer.Typer(help="Recorded runs: list and inspect.", no_args_is_help=True)
app.add_typer(runs_app, name="runs")
hil_app = typer.Typer(
    help="Hardware-in-the-loop: emulators, scenarios, scoring.", no_args_is_help=True
)
app.add_typer(hil_app, name="hil")
spool_app = typer.Typer(help="InfluxDB spool: check and inspect.", no_args_is_help=True)
app.add_typer(spool_app, name="spool")
alarms_app = typer.Typer(
    help="Alarms of the running daemon: list, acknowledge, shelve.", no_args_is_help=True
)
app.add_typer(alarms_app, name="alarms")
_register()


def main() -> None:
    app()
