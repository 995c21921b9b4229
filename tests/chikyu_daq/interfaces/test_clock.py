"""Clock health: the kernel's NTP state read for real, chrony's CSV, wall-clock steps."""

from __future__ import annotations

import subprocess
import sys

import pytest

from chikyu_daq.interfaces.clock import (
    CLOCK_STATES,
    StepDetector,
    parse_chrony_tracking,
    read_adjtimex,
)

S = 1_000_000_000


def test_adjtimex_reads_the_kernel_state() -> None:
    st = read_adjtimex()
    assert st["source"] == "adjtimex"
    assert st["state"] in CLOCK_STATES.values()
    assert isinstance(st["synced"], bool)
    # the kernel clamps maxerror at NTP_PHASE_LIMIT (16 s) and TAI-UTC is 37 s or unset (0)
    assert 0 <= st["maxerror_s"] <= 16.0
    assert st["tai_offset_s"] in (0, 37)
    assert abs(st["freq_ppm"]) <= 500.0 + 1e-9  # the kernel's MAXFREQ


# A fresh interpreter: an audit hook cannot be removed once added.
SPAWNS = """
import sys
from chikyu_daq.interfaces.clock import read_adjtimex
read_adjtimex()
spawned = []
sys.addaudithook(lambda event, args: spawned.append(args) if event == "subprocess.Popen" else None)
for _ in range(3):
    read_adjtimex()
print(len(spawned))
"""


def test_reading_the_kernel_state_again_starts_no_process() -> None:
    """The daemon reads it every `discipline_check_s` for its whole life: finding libc (an
    `ldconfig -p` child process each time) is done once."""
    out = subprocess.run([sys.executable, "-c", SPAWNS], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.split() == ["0"]


def test_chrony_tracking_csv() -> None:
    line = (
        "A29FC87B,ntp1.example.net,3,1653896212.345678,-0.000012345,0.000001234,"
        "0.000023456,-12.345,0.001,0.012,0.001234567,0.000345678,64.5,Normal\n"
    )
    st = parse_chrony_tracking(line)
    assert st == {
        "source": "chrony",
        "reference": "ntp1.example.net",
        "stratum": 3.0,
        "offset_s": -0.000012345,
        "rms_offset_s": 0.000023456,
        "freq_ppm": -12.345,
        "root_delay_s": 0.001234567,
        "root_dispersion_s": 0.000345678,
        "leap_status": "Normal",
        "synced": True,
    }
    unsynced = line.replace(",3,", ",0,").replace("Normal", "Not synchronised")
    assert parse_chrony_tracking(unsynced)["synced"] is False
    with pytest.raises(ValueError, match="14 columns"):
        parse_chrony_tracking("506 Cannot talk to daemon")


def test_step_detector_sees_steps_not_slew() -> None:
    wall, mono = [1_800_000_000 * S], [5 * S]
    det = StepDetector(0.5, wall=lambda: wall[0], mono=lambda: mono[0])
    wall[0] += S + 200_000  # one second later, slewed by 200 us: not a step
    mono[0] += S
    assert det.check() is None
    wall[0] -= 2 * S  # stepped back two seconds
    step = det.check()
    assert step is not None and step.step_s == pytest.approx(-2.0)
    assert det.check() is None and det.steps == 1
