"""Monte-Carlo campaign: full-scale plants with random truth and calibration errors, scored.

Each plant is a simulated normal day (``hil/scenarios/days/normal_day.toml``: seawater
circulation, intake start and riser filling, grade wander and steps, intake changes, a planned
stop and restart, heave) with its own seed: its true grain density, mud density, salinity,
roughness, slip and temperatures and every instrument's calibration error are drawn within
their stated uncertainty (``hil/plant/physics.py``). The recording is written by ``hil synth``'s
writer (``chikyu_daq/rig/synth.py``, with the lab's assays), then replayed on the simulation
clock with the installation's nominal config (``config/reference.toml``, unchanged). Fault
scenarios run the same way at full scale and report when their alarm was raised.

    PYTHONPATH=$PWD python benchmarks/bench_campaign.py --plants 50 --hours 24 \\
        --out benchmarks/results/campaign.json

The ship's lab is the scenario's (``lab_interval_s``, ``lab_delay_s``, ``lab_error_rel``; the
reference lab samples hourly and reports an hour later); ``--lab-delay-s`` sets the delay, and
the replay applies each result from when it was reported, as the live daemon does.

Targets (DESIGN "Quality bars"): dry solids within +-2 % of truth for every plant; REY truth
inside the 95 % interval in >= 95 % of plants with U95 <= 8 %; zero false alarms on normal
days; every fault scenario raises its alarm in time.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from benchmarks.publish import json_path  # noqa: E402
from chikyu_daq.config.model import Config, load_config  # noqa: E402
from chikyu_daq.replay.engine import ReplayOptions, replay  # noqa: E402
from chikyu_daq.rig.synth import record_synth  # noqa: E402
from hil.scenario import Scenario, load_scenario  # noqa: E402

DAY = REPO / "hil" / "scenarios" / "days" / "normal_day.toml"
FAULTS = ("plugging", "density_drift", "slugging", "pump_trip", "sensor_faults", "comms_outage")
START_NS = 1_769_904_000_000_000_000  # 2026-02-01


def run_one(sc: Scenario, hours: float, cfg: Config, seed: int, work: Path) -> dict[str, Any]:
    t0 = time.perf_counter()
    run_dir = record_synth(
        sc,
        hours,
        work / "runs",
        cfg,
        start_ns=START_NS,
        seed=seed,
        run_id=f"synth-{sc.name}-{seed}",
    ).path
    t1 = time.perf_counter()
    summary = replay(run_dir, ReplayOptions(out_dir=work / f"replay-{seed}", report=False))
    events = [
        json.loads(line)
        for line in (work / f"replay-{seed}" / "events.jsonl").read_text().splitlines()
    ]
    raises = [(e["alarm"], (e["t_ns"] - START_NS) / 1e9) for e in events if e["kind"] == "raise"]
    out = {
        "seed": seed,
        "synth_s": round(t1 - t0, 1),
        "replay_s": round(time.perf_counter() - t1, 1),
        "solids_error_pct": summary.get("solids_error_pct"),
        "solids_u95_pct": 100 * summary["u95_cum_solids_kg"] / summary["window_daq_solids_kg"],
        "rey_error_pct": summary.get("rey_error_pct"),
        "rey_u95_pct": 100 * summary["u95_cum_rey_kg"] / summary["window_daq_rey_kg"],
        "rey_truth_in_95": summary.get("truth_in_95"),
        "solids_truth_in_95": summary.get("solids_truth_in_95"),
        "referenced": summary["densitometer_referenced"],
        "rho_zero_kg_m3": summary["rho_zero_kg_m3"],
        "alarms": raises,
    }
    shutil.rmtree(run_dir, ignore_errors=True)
    shutil.rmtree(work / f"replay-{seed}", ignore_errors=True)
    return out


def stats(x: list[float]) -> dict[str, float]:
    a = np.asarray([v for v in x if v is not None], dtype=float)
    if a.size == 0:
        return {}
    return {
        "n": int(a.size),
        "mean": float(a.mean()),
        "std": float(a.std(ddof=1)) if a.size > 1 else 0.0,
        "min": float(a.min()),
        "max": float(a.max()),
        "p05": float(np.percentile(a, 5)),
        "p95": float(np.percentile(a, 95)),
    }


def day_scenario(name: str, seed: int, lab_delay_s: float | None = None) -> Scenario:
    """The campaign's day: the normal day, or another scenario at full scale with draws on
    (``nominal``: mud from the first second, no seawater phase, so no reference).
    ``lab_delay_s``: the ship's lab reports this long after sampling (default: the scenario's)."""
    if name == "normal_day":
        sc = load_scenario(DAY).model_copy(update={"seed": seed})
        update: dict[str, Any] = {}
    else:
        sc = load_scenario(name).at_full_scale().model_copy(update={"seed": seed})
        update = {"draws": True, "grade_wander_rel": 0.1}
    if lab_delay_s is not None:
        update["lab_delay_s"] = lab_delay_s
    return sc.model_copy(update={"plant": sc.plant.model_copy(update=update)})


def _plant(args: tuple[int, float, Path, str, float | None]) -> dict[str, Any]:
    seed, hours, work, day, lab_delay_s = args
    cfg = load_config(REPO / "config" / "reference.toml")
    sc = day_scenario(day, seed, lab_delay_s)
    sub = work / f"plant-{seed}"
    sub.mkdir(parents=True, exist_ok=True)
    return run_one(sc, hours, cfg, seed, sub)


def fault_runs(faults: tuple[str, ...], work: Path) -> dict[str, Any]:
    """Each fault scenario at full scale for its full duration: when was its alarm raised."""
    cfg = load_config(REPO / "config" / "reference.toml")
    out: dict[str, Any] = {}
    for name in faults:
        sc = load_scenario(name).at_full_scale()
        # twice the scenario: a late alarm is measured too (judged against its due time)
        r = run_one(sc, 2 * sc.duration_s / 3600.0, cfg, sc.seed, work)
        detected = {}
        for exp in sc.expect.alarms:
            label = f"{exp.name}({exp.channel})" if exp.channel else exp.name
            t = [s for a, s in r["alarms"] if a == label]
            detected[label] = {
                "raised_at_s": t[0] if t else None,
                "due_s": exp.latest_raise_s,
                "in_time": bool(t) and t[0] <= exp.latest_raise_s,
            }
        out[name] = {"detected": detected, "alarms": r["alarms"]}
        print(f"fault {name}: {detected}", file=sys.stderr, flush=True)
    return out


def summarize(p: list[dict[str, Any]], hours: float) -> dict[str, Any]:
    return {
        "plants": len(p),
        "hours_per_plant": hours,
        "solids_error_pct": stats([r["solids_error_pct"] for r in p]),
        "solids_within_2pct": sum(abs(r["solids_error_pct"]) <= 2.0 for r in p),
        "solids_u95_pct": stats([r["solids_u95_pct"] for r in p]),
        "solids_coverage_95": sum(bool(r["solids_truth_in_95"]) for r in p) / len(p),
        "rey_error_pct": stats([r["rey_error_pct"] for r in p]),
        "rey_u95_pct": stats([r["rey_u95_pct"] for r in p]),
        "rey_u95_max_pct": max(r["rey_u95_pct"] for r in p),
        "rey_coverage_95": sum(bool(r["rey_truth_in_95"]) for r in p) / len(p),
        "referenced": sum(bool(r["referenced"]) for r in p),
        "false_alarms_per_day": sum(len(r["alarms"]) for r in p) / (len(p) * hours / 24.0),
        "false_alarm_names": sorted({a for r in p for a, _ in r["alarms"]}),
    }


def campaign(
    plants: int,
    hours: float,
    faults: tuple[str, ...],
    seed0: int,
    workers: int,
    jsonl: Path,
    day: str = "normal_day",
    lab_delay_s: float | None = None,
) -> dict[str, Any]:
    from multiprocessing import get_context

    out: dict[str, Any] = {"plants": [], "faults": {}}
    jsonl.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="campaign-") as tmp:
        work = Path(tmp)
        out["faults"] = fault_runs(faults, work)
        jobs = [(seed0 + i, hours, work, day, lab_delay_s) for i in range(plants)]
        with get_context("spawn").Pool(workers) as pool, jsonl.open("w") as f:
            for r in pool.imap_unordered(_plant, jobs):
                out["plants"].append(r)
                f.write(json.dumps(r) + "\n")
                f.flush()
                print(
                    f"plant {len(out['plants'])}/{plants} seed {r['seed']}: "
                    f"solids {r['solids_error_pct']:+.2f} %, REY {r['rey_error_pct']:+.2f} % "
                    f"(U95 {r['rey_u95_pct']:.1f} %, in {r['rey_truth_in_95']}), "
                    f"alarms {r['alarms']}",
                    file=sys.stderr,
                    flush=True,
                )
    if out["plants"]:
        out["summary"] = summarize(out["plants"], hours)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--plants", type=int, default=50)
    ap.add_argument("--hours", type=float, default=24.0)
    ap.add_argument("--seed", type=int, default=1000)
    ap.add_argument("--faults", default=",".join(FAULTS), help="comma list, '' for none")
    ap.add_argument("--workers", type=int, default=1)
    ap.add_argument("--day", default="normal_day", help="normal_day, or a scenario (draws on)")
    ap.add_argument(
        "--lab-delay-s",
        type=float,
        help="the lab reports this long after sampling (default: the day scenario's)",
    )
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "campaign.json")
    ap.add_argument(
        "--summarize", type=Path, help="only summarise the plants of this JSONL (partial run)"
    )
    a = ap.parse_args()
    if a.summarize:
        plants = [json.loads(x) for x in a.summarize.read_text().splitlines() if x.strip()]
        print(json.dumps(summarize(plants, a.hours), indent=2))
        return
    faults = tuple(f for f in a.faults.split(",") if f)
    out = json_path(a.out, "campaign.json")
    t0 = time.perf_counter()
    res = campaign(
        a.plants,
        a.hours,
        faults,
        a.seed,
        a.workers,
        out.with_suffix(".plants.jsonl"),
        a.day,
        a.lab_delay_s,
    )
    res["wall_s"] = round(time.perf_counter() - t0, 1)
    res["command"] = " ".join(sys.argv)
    out.write_text(json.dumps(res, indent=2) + "\n")
    print(json.dumps(res.get("summary", {}), indent=2))


if __name__ == "__main__":
    main()
