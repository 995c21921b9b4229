"""Every command that takes `--scenario` names a bad one and exits 2, without a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

CLI = [sys.executable, "-m", "chikyu_daq"]


@pytest.mark.parametrize(
    "command",
    [
        ["hil", "run", "--data-dir", "{tmp}"],
        ["hil", "synth", "--hours", "0.01", "--out", "{tmp}"],
        ["demo", "--data-dir", "{tmp}"],
    ],
    ids=lambda c: " ".join(c[:2]),
)
def test_a_missing_scenario_exits_2(command: list[str], tmp_path: Path) -> None:
    args = [a.replace("{tmp}", str(tmp_path / "data")) for a in command]
    out = subprocess.run(
        [*CLI, *args, "--scenario", str(tmp_path / "no_such.toml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2, out.stdout + out.stderr
    assert "no_such" in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "data").exists()  # nothing started, nothing recorded


@pytest.mark.parametrize(
    ("option", "value"), [("--hours", "0"), ("--hours", "-1"), ("--start", "yesterday")]
)
def test_hil_synth_names_a_bad_option_and_exits_2(option: str, value: str, tmp_path: Path) -> None:
    args = {"--scenario": "nominal", "--hours": "0.01", "--out": str(tmp_path / "data")}
    args[option] = value
    out = subprocess.run(
        [*CLI, "hil", "synth", *(x for kv in args.items() for x in kv)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 2, out.stdout + out.stderr
    assert option in out.stderr and "Traceback" not in out.stderr
    assert not (tmp_path / "data").exists()  # nothing recorded
