"""`chikyu-daq hil run` (a scored scenario) and `chikyu-daq hil synth` (a long recording)."""

from __future__ import annotations

import asyncio
import json
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    from hil.scenario import Scenario


def scenario_or_exit(name: str) -> Scenario:
    """The named scenario (or TOML path); a bad one prints why and exits 2, no traceback."""
    from hil.scenario import ScenarioError, load_scenario

    try:
        return load_scenario(name)
    except (ScenarioError, FileNotFoundError, KeyError) as err:
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None


def write_junit(path: Path, score: Any, elapsed_s: float) -> None:
    """One testsuite per scenario, one testcase per check, as CI systems read it."""
    suite = ET.Element(
        "testsuite",
        name=f"hil.{score.scenario}",
        tests=str(len(score.checks)),
        failures=str(sum(1 for ok, _ in score.checks.values() if not ok)),
        time=f"{elapsed_s:.1f}",
    )
    for name, (ok, detail) in score.checks.items():
        case = ET.SubElement(suite, "testcase", classname=f"hil.{score.scenario}", name=name)
        if not ok:
            ET.SubElement(case, "failure", message=detail).text = detail
        else:
            ET.SubElement(case, "system-out").text = detail
    path.parent.mkdir(parents=True, exist_ok=True)
    ET.ElementTree(suite).write(path, encoding="utf-8", xml_declaration=True)


def hil_run(
    scenario: Annotated[str, typer.Option("--scenario", help="Scenario name or TOML path.")],
    duration: Annotated[
        float | None,
        typer.Option("--duration", help="Seconds (default: the scenario's CI duration)."),
    ] = None,
    data_dir: Annotated[Path, typer.Option("--data-dir", help="Where the run is recorded.")] = Path(
        "data/hil"
    ),
    junit: Annotated[Path | None, typer.Option("--junit", help="Write JUnit XML here.")] = None,
    score_json: Annotated[Path | None, typer.Option("--json", help="Write the score here.")] = None,
    influx: Annotated[
        str | None,
        typer.Option("--influx", help="InfluxDB 1.x URL: raw, results and health go there too."),
    ] = None,
    influx_db: Annotated[
        str | None, typer.Option("--influx-db", help="Database (default hil_SCENARIO).")
    ] = None,
    mqtt: Annotated[
        str | None, typer.Option("--mqtt", help="MQTT broker HOST:PORT: publish as at sea.")
    ] = None,
    mqtt_prefix: Annotated[
        str | None, typer.Option("--mqtt-prefix", help="Topic prefix (default hil/SCENARIO).")
    ] = None,
) -> None:
    """Emulators + plant + the real pipeline; score against plant truth; exit 0 or 1.

    With `--influx`/`--mqtt` every output is on, as at sea (the fault campaign): the score then
    also says whether the pipeline survived to the end with no task failure or step fault.
    """
    from chikyu_daq.config.model import load_config
    from chikyu_daq.live.logs import setup_logging
    from chikyu_daq.live.processor import warm_up
    from chikyu_daq.rig.session import REFERENCE, HilSession, with_outputs

    setup_logging("WARNING")
    sc = scenario_or_exit(scenario)
    try:
        base = with_outputs(
            load_config(REFERENCE),
            name=sc.name,
            influx_url=influx,
            influx_db=influx_db,
            mqtt=mqtt,
            mqtt_prefix=mqtt_prefix,
        )
    except ValueError as err:  # pydantic's ValidationError included: it names the field
        print(f"error: {err}", file=sys.stderr)
        raise SystemExit(2) from None
    t0 = time.monotonic()
    session = HilSession(
        sc,
        data_dir=data_dir,
        duration_s=duration,
        cfg=base,
        influx=bool(influx),
        mqtt=bool(mqtt),
    )
    # Warm before the session, unlike `run` and `demo`: the score judges the live outputs second
    # by second (the fault campaign: every second on MQTT), and a background warm-up would
    # release the first seconds in one burst, coalesced to the newest value on MQTT.
    warm_up(session.cfg)
    score = asyncio.run(session.run())
    elapsed = time.monotonic() - t0
    for name, (ok, detail) in score.checks.items():
        print(f"{'PASS' if ok else 'FAIL'}  {name}: {detail}")
    print(
        f"{sc.name}: REY {score.daq_rey_kg:.4f} kg vs truth {score.truth_rey_kg:.4f} kg "
        f"({score.rey_error_pct:+.3f} %, U95 {score.u95_rey_kg:.4f} kg) — "
        f"{'PASSED' if score.passed else 'FAILED'}"
    )
    if junit:
        write_junit(junit, score, elapsed)
    if score_json:
        score_json.parent.mkdir(parents=True, exist_ok=True)
        score_json.write_text(json.dumps(score.as_dict(), indent=2) + "\n")
    raise SystemExit(0 if score.passed else 1)


def hil_synth(
    scenario: Annotated[str, typer.Option("--scenario", help="Scenario name or TOML path.")],
    hours: Annotated[float, typer.Option("--hours", help="Recording length in hours.")],
    out: Annotated[Path, typer.Option("--out", help="Data directory (the run goes to OUT/runs/).")],
    ci_riser: Annotated[
        bool, typer.Option("--ci-riser", help="Keep the scenario's short riser (default: 5,700 m).")
    ] = False,
    start: Annotated[
        str, typer.Option("--start", help="Start time, ISO UTC.")
    ] = "2026-02-01T00:00:00Z",
) -> None:
    """Write a synthetic recording with its truth, in the project's own run format."""
    from datetime import datetime

    from rich.progress import Progress

    from chikyu_daq.rig.session import scenario_config
    from chikyu_daq.rig.synth import record_synth

    if not hours > 0:
        print(f"error: --hours must be > 0, got {hours}", file=sys.stderr)
        raise SystemExit(2)
    try:
        start_ns = round(datetime.fromisoformat(start.replace("Z", "+00:00")).timestamp() * 1e9)
    except ValueError:
        print(
            f"error: --start must be ISO UTC (2026-02-01T00:00:00Z), got {start!r}", file=sys.stderr
        )
        raise SystemExit(2) from None
    sc = scenario_or_exit(scenario)
    if not ci_riser:
        sc = sc.at_full_scale()
    t0 = time.perf_counter()
    with Progress(transient=True, disable=not sys.stderr.isatty()) as bar:
        task = bar.add_task("synth", total=hours * 3600.0)
        run = record_synth(
            sc,
            hours,
            out / "runs",
            scenario_config(sc),
            start_ns=start_ns,
            run_id=f"synth-{sc.name}-{int(time.time())}",
            progress=lambda done_s: bar.update(task, completed=done_s),
        )
    wall = time.perf_counter() - t0
    doc = {"run": str(run.path), "samples": run.samples, "wall_s": round(wall, 2), **run.truth}
    print(json.dumps(doc, indent=2))
