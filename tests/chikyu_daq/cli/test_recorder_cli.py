"""`runs list` / `runs show` over a real run directory."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import typer
from typer.testing import CliRunner

from chikyu_daq.cli.runs import runs_list, runs_show
from chikyu_daq.store.writer import Recorder


def app() -> typer.Typer:
    a = typer.Typer()
    a.command("list")(runs_list)
    a.command("show")(runs_show)
    return a


def test_list_and_show(tmp_path: Path) -> None:
    rec = Recorder(tmp_path / "runs", run_id="r1", autoflush=False)
    t = 10**18 + np.arange(5, dtype=np.int64)
    rec.write_raw({"ft201.volume_flow": (t, t * 1.0, np.zeros(5, np.uint8))})
    rec.write_event({"kind": "reload"})
    rec.close()
    out = CliRunner().invoke(app(), ["list", "-d", str(tmp_path)])
    assert out.exit_code == 0 and "r1" in out.output and "closed" in out.output
    out = CliRunner().invoke(app(), ["show", "r1", "-d", str(tmp_path), "--json"])
    doc = json.loads(out.output)
    assert doc["raw_samples"] == 5 and doc["channels"] == {"ft201.volume_flow": 5}
    assert doc["events"] == 1 and doc["closed"] is True
    out = CliRunner().invoke(app(), ["show", "nope", "-d", str(tmp_path)])
    assert out.exit_code == 2 and "no run" in out.output
