"""Parameter sweeps: every run × every case of a `--set` grid as Dask tasks, and a sensitivity
table (REY total per case, its change from the run's baseline, and each parameter's effect)."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from chikyu_daq.fleet import dataset
from chikyu_daq.fleet.cluster import Job, run_jobs
from chikyu_daq.fleet.overrides import apply
from chikyu_daq.fleet.runs import vessel_of
from chikyu_daq.fleet.tasks import replay_run, run_config
from chikyu_daq.store.reader import Run

BASELINE = "baseline"


def case_id(overrides: Mapping[str, Any]) -> str:
    """A short stable folder name for one grid case."""
    text = json.dumps(dict(overrides), sort_keys=True)
    return "case-" + hashlib.sha1(text.encode()).hexdigest()[:10]


def check_grid(
    runs: list[Run], config: Mapping[str, Any] | None, cases: list[dict[str, Any]]
) -> None:
    """Validate every case against every run's config before anything is submitted, so a typo
    or an out-of-range value is one clear error (ConfigError naming the key), not N failed tasks."""
    for run in runs:
        base = run_config(run, config, None).model_dump(mode="json")
        for case in cases:
            apply(base, case)


def sweep(
    client: Any,
    runs: list[Run],
    out: Path,
    cases: list[dict[str, Any]],
    *,
    config: Mapping[str, Any] | None = None,
) -> tuple[list[dict[str, Any]], pa.Table, pa.Table]:
    """Replay each run once as recorded (or with `config`) and once per case; results are not
    kept, only summaries. Returns (summary rows, sensitivity table, effects table) and writes
    `sweep_summary.*`, `sensitivity.parquet`/`.txt` and `effects.parquet` under `out`."""
    out.mkdir(parents=True, exist_ok=True)
    check_grid(runs, config, cases)
    plan: list[tuple[Run, str, dict[str, Any]]] = []
    for run in runs:
        plan.append((run, BASELINE, {}))
        plan.extend((run, case_id(c), c) for c in cases)
    jobs = [
        Job(
            f"{vessel_of(r)}/{r.run_id}/{cid}",
            replay_run,
            (str(r.path), str(out)),
            {"config": config, "overrides": ov, "case": cid, "keep_results": False},
        )
        for r, cid, ov in plan
    ]
    rows: list[dict[str, Any]] = []
    for (run, cid, _), oc in zip(plan, run_jobs(client, jobs, what="sweep"), strict=True):
        if oc.error is None:
            rows.append(oc.result)
        else:
            rows.append(
                dataset.failed_row(vessel_of(run), run.run_id, str(run.path), oc.error, cid)
            )
    dataset.write_summary(out, rows, "sweep_summary")
    keys = list(cases[0]) if cases else []
    sens = sensitivity(rows, plan, keys)
    eff = effects(sens, keys)
    pq.write_table(sens, out / "sensitivity.parquet")
    pq.write_table(eff, out / "effects.parquet")
    (out / "sensitivity.txt").write_text(readable_sensitivity(sens, eff, keys), encoding="utf-8")
    return rows, sens, eff


def sensitivity(
    rows: list[dict[str, Any]], plan: list[tuple[Run, str, dict[str, Any]]], keys: list[str]
) -> pa.Table:
    """One row per (run, case): the parameter values, REY, and its change from the baseline."""
    base: dict[str, float] = {}
    for row in rows:
        if row["case"] == BASELINE and row["status"] == "ok":
            base[row["run_id"] + "\0" + row["vessel"]] = float(row["cum_rey_kg"])
    out: list[dict[str, Any]] = []
    for row, (_, cid, ov) in zip(rows, plan, strict=True):
        if cid == BASELINE:
            continue
        b = base.get(row["run_id"] + "\0" + row["vessel"], math.nan)
        rey = float(row["cum_rey_kg"]) if row["status"] == "ok" else math.nan
        out.append(
            {
                "vessel": row["vessel"],
                "run_id": row["run_id"],
                "case": cid,
                "status": row["status"],
                **{k: ov[k] for k in keys},
                "cum_rey_kg": rey,
                "u95_cum_rey_kg": row["u95_cum_rey_kg"],
                "baseline_rey_kg": b,
                "d_rey_kg": rey - b,
                "d_rey_pct": 100.0 * (rey - b) / b if b else math.nan,
            }
        )
    return pa.Table.from_pylist(out)


def effects(sens: pa.Table, keys: list[str]) -> pa.Table:
    """Main effect of each parameter per run: mean REY change at each of its values, averaged
    over the other parameters' values (for a one-parameter sweep, simply the change)."""
    cols = sens.to_pydict()
    acc: dict[tuple[str, str, str, str], list[float]] = {}
    for i in range(sens.num_rows):
        if cols["status"][i] != "ok":
            continue
        for k in keys:
            key = (cols["vessel"][i], cols["run_id"][i], k, json.dumps(cols[k][i]))
            acc.setdefault(key, []).append(cols["d_rey_pct"][i])
    out: dict[str, list[Any]] = {
        "vessel": [], "run_id": [], "parameter": [], "value": [], "mean_d_rey_pct": [], "cases": []
    }  # fmt: skip
    order = sorted(acc, key=lambda a: (a[0], a[1], keys.index(a[2]), _sort_key(a[3])))
    for vessel, run_id, k, value in order:
        d = acc[(vessel, run_id, k, value)]
        out["vessel"].append(vessel)
        out["run_id"].append(run_id)
        out["parameter"].append(k)
        out["value"].append(value)
        out["mean_d_rey_pct"].append(sum(d) / len(d))
        out["cases"].append(len(d))
    return pa.table(out)


def _sort_key(value_json: str) -> tuple[int, float, str]:
    v = json.loads(value_json)
    return (0, float(v), "") if isinstance(v, int | float) else (1, 0.0, str(v))


def readable_sensitivity(sens: pa.Table, eff: pa.Table, keys: list[str]) -> str:
    """Text tables: every case (REY and its change), then each parameter's effect."""
    c = sens.to_pydict()
    head = ["vessel", "run", *keys, "REY kg", "dREY kg", "dREY %"]
    body = [
        [
            c["vessel"][i],
            c["run_id"][i],
            *(str(c[k][i]) for k in keys),
            f"{c['cum_rey_kg'][i]:.4f}",
            f"{c['d_rey_kg'][i]:+.4f}",
            f"{c['d_rey_pct'][i]:+.3f}",
        ]
        for i in range(sens.num_rows)
    ]
    e = eff.to_pydict()
    body2 = [
        [
            e["vessel"][i],
            e["run_id"][i],
            e["parameter"][i],
            e["value"][i],
            f"{e['mean_d_rey_pct'][i]:+.3f}",
            str(e["cases"][i]),
        ]
        for i in range(eff.num_rows)
    ]
    return (
        _table(head, body)
        + "\n"
        + _table(["vessel", "run", "parameter", "value", "mean dREY %", "cases"], body2)
    )


def _table(head: list[str], body: list[list[str]]) -> str:
    width = [max([len(h), *(len(r[i]) for r in body)]) for i, h in enumerate(head)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, width, strict=True))]
    lines += ["  ".join(x.ljust(w) for x, w in zip(r, width, strict=True)) for r in body]
    return "\n".join(lines) + "\n"
