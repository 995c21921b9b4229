"""The field engineer's first two commands, as a newcomer types them: `hil serve` emulates the
reference installation, `poll` reads every channel through the real transports."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from chikyu_daq.config.checks import channel_ids
from chikyu_daq.config.model import load_config
from hil.emulators.source import NOMINAL
from tests.servers import CLI, REPO, hil_serve

REFERENCE = REPO / "config" / "reference.toml"


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Path]:
    with hil_serve(REFERENCE, tmp_path / "rig.json") as eps:
        yield eps


def poll(endpoints: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`chikyu_daq poll` of the reference installation, served at `endpoints`."""
    cmd = [*CLI, "poll", "-c", str(REFERENCE), "--endpoints", str(endpoints), *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, cwd=REPO)


def test_serve_then_poll_reads_every_reference_channel_good(served: Path) -> None:
    res = poll(served, "--json", "--count", "2")
    assert res.returncode == 0, res.stderr
    rows = json.loads(res.stdout)["channels"]
    expected = set(channel_ids(load_config(REFERENCE)))
    assert set(rows) == expected and len(expected) == 80
    assert {r["quality"] for r in rows.values()} == {"GOOD"}
    # values survive the emulator's encoding and the driver's decoding to register resolution
    resolution = {
        "ai20.pt101": 250 / 27648,
        "ai20.pt201": 25 / 27648,
        "ai20.tt201": 50 / 27648,
        "p101a.torque": 0.1,
        "pt301.temperature": 0.01,
    }
    for ch, tol in resolution.items():
        assert rows[ch]["value"] == pytest.approx(NOMINAL[ch], abs=tol), ch
    for ch in ("ft201.volume_flow", "ft101.volume_flow", "pt301.pressure", "p101a.shaft_power"):
        assert rows[ch]["value"] == pytest.approx(NOMINAL[ch], rel=1e-6), ch
    assert rows["ft201.volume_flow"]["unit"] == "m3/h"


def test_poll_one_device_and_unknown_device(served: Path) -> None:
    ok = poll(served, "--device", "dt201")
    assert ok.returncode == 0, ok.stderr
    lines = [ln for ln in ok.stdout.splitlines() if ln.startswith("dt201.")]
    assert len(lines) == 10 and all(ln.rstrip().endswith("GOOD") for ln in lines)
    bad = poll(served, "--device", "dt999")
    assert bad.returncode != 0 and "dt999" in bad.stderr and "Traceback" not in bad.stderr
