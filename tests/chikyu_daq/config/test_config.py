"""Config validation: the reference installation loads; every malformed variant exits 2, names
the offending key, and prints no traceback."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from chikyu_daq.config.checks import channel_ids
from chikyu_daq.config.model import load_config

REPO = Path(__file__).resolve().parents[3]
REFERENCE = (REPO / "config" / "reference.toml").read_text()

Edit = Callable[[str], str]
#: (case id, edit of the reference text, what the message must contain)
Case = tuple[str, Edit, str]


def load_toml(path: Path) -> dict[str, Any]:
    return tomllib.loads(path.read_text())


def sub(old: str, new: str) -> Edit:
    def edit(text: str) -> str:
        assert text.count(old) == 1, f"fixture drift: {old!r} is not unique in reference.toml"
        return text.replace(old, new)

    return edit


def after(anchor: str, extra: str) -> Edit:
    return sub(anchor, anchor + "\n" + extra)


def inside(anchor: str, old: str, new: str) -> Edit:
    """Replace `old` by `new` within the one place `anchor` stands."""
    return sub(anchor, anchor.replace(old, new))


#: The malformed variants as data: `[case_id]` with `find`/`replace` or `after`/`add`, `message`.
MALFORMED = Path(__file__).with_name("malformed_configs.toml")


def table_edit(row: dict[str, str]) -> Edit:
    """`find` replaced by `replace`, or the line `add` added after the line `after`."""
    return after(row["after"], row["add"]) if "after" in row else sub(row["find"], row["replace"])


def _influx_bucket_edit(text: str) -> str:
    text = sub('enabled = false\ndialect = "v2"', 'enabled = true\ndialect = "v2"')(text)
    return sub('bucket = "chikyu"\n', "")(text)


CASES: list[Case] = [
    *((case, table_edit(row), row["message"]) for case, row in load_toml(MALFORMED).items()),
    ("influx_v2_without_bucket", _influx_bucket_edit, "outputs.influx"),
]


def run_check(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chikyu_daq", "config", "check", str(path)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )


def test_reference_config_describes_the_icd() -> None:
    cfg = load_config(REPO / "config" / "reference.toml")
    assert set(cfg.devices) == {
        "p101a",
        "p101b",
        "ft101",
        "ft201",
        "ai20",
        "pt301",
        "pt302",
        "pt303",
        "dt201",
    }
    units = {d: cfg.devices[d].unit for d in cfg.devices}
    assert units == {
        "p101a": 1,
        "p101b": 2,
        "ft101": 11,
        "ft201": 12,
        "ai20": 20,
        "pt301": 31,
        "pt302": 32,
        "pt303": 33,
        "dt201": None,
    }
    pump = {
        f.name: (f.address, f.function, f.type, f.word_order, f.scale)
        for f in cfg.maps["pump_drive"].fields
    }
    assert pump["shaft_power"] == (4, 3, "float32", "ABCD", 1.0)
    assert pump["run_hours"] == (8, 3, "uint32", "CDAB", 0.1)
    assert pump["torque"] == (3, 3, "int16", None, 0.1)
    flow = {
        f.name: (f.address, f.function, f.type, f.word_order) for f in cfg.maps["flowmeter"].fields
    }
    assert flow["volume_flow"] == (0, 4, "float32", "CDAB")
    assert flow["totalizer"] == (4, 4, "float64", "ABCD")
    assert cfg.maps["flowmeter"].fields[4].scale == 10.0
    quartz = {
        f.name: (f.address, f.type, f.word_order) for f in cfg.maps["quartz_transmitter"].fields
    }
    assert quartz == {
        "pressure": (0, "float32", "ABCD"),
        "temperature": (2, "int16", None),
        "status": (3, "uint16", None),
        "sample_counter": (4, "uint32", "ABCD"),
    }
    ai = {
        f.name: (f.address, f.analog.eng_max if f.analog else None)
        for f in cfg.maps["analog_inputs"].fields
    }
    assert ai == {"pt101": (0, 250.0), "pt201": (1, 25.0), "tt201": (2, 50.0)}
    rates = {d: cfg.devices[d].poll_hz for d in cfg.devices}
    assert (
        rates["ai20"] == 50.0
        and rates["ft201"] == 10.0
        and rates["p101a"] == 5.0
        and rates["pt302"] == 10.0
    )
    ids = set(channel_ids(cfg))
    assert {"ft201.empty_pipe", "dt201.hold", "pt301.sample_counter", "p101b.at_speed"} <= ids


def test_config_check_summarises_reference() -> None:
    res = run_check(REPO / "config" / "reference.toml")
    assert res.returncode == 0, res.stderr
    for text in (
        "p101a.shaft_power",
        "CDAB",
        "ft201.volume_flow",
        "m3/h",
        "50 Hz",
        "dt201.density",
        "9 devices",
    ):
        assert text in res.stdout


@pytest.mark.parametrize(("case", "edit", "fragment"), CASES, ids=[c[0] for c in CASES])
def test_malformed_config_names_key(tmp_path: Path, case: str, edit: Edit, fragment: str) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(edit(REFERENCE))
    res = run_check(bad)
    assert res.returncode == 2, (res.stdout, res.stderr)
    assert "Traceback" not in res.stderr + res.stdout
    assert str(bad) in res.stderr
    assert fragment in res.stderr, res.stderr


def test_toml_syntax_error_gives_line(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    text = REFERENCE.replace("[devices.p101a]", "[devices.p101a]\npoll_hz = [5.0", 1)
    bad.write_text(text)
    line = text.splitlines().index("poll_hz = [5.0") + 1
    res = run_check(bad)
    assert res.returncode == 2
    assert f"{bad}:{line}" in res.stderr or f"{bad}:{line + 1}" in res.stderr, res.stderr


def test_missing_file(tmp_path: Path) -> None:
    res = run_check(tmp_path / "nope.toml")
    assert (
        res.returncode == 2 and "cannot read file" in res.stderr and "Traceback" not in res.stderr
    )


def test_case_count() -> None:
    assert len(CASES) >= 25
