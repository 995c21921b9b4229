"""Emulators on the wire, checked with hand-built frames and a third-party master (mbpoll).

Expected registers are the ICD's encodings written out here with struct, independently of the
drivers' codec that the emulators use.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import struct
import subprocess
import time

import pytest

from drivers.sentence import nmea_checksum
from hil.emulators import Rig
from hil.emulators.densitometer import DensitometerEmulator
from hil.emulators.unit import crc16
from tests.drivers.conftest import _no_modbus_writes  # noqa: F401  (session write check here too)
from tests.drivers.helpers import arun, reference_cfg


def f32(x: float) -> list[int]:
    return list(struct.unpack(">HH", struct.pack(">f", x)))


def pump_registers() -> list[int]:
    power = f32(315.25)  # ABCD
    hours = struct.unpack(">HH", struct.pack(">I", 123456))  # 12345.6 h / 0.1, CDAB
    return [0b11011, 1480, 4123, 785, *power, 650, 0, hours[1], hours[0]]


async def tcp_read(port: int, unit: int, fc: int, addr: int, count: int) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(struct.pack(">HHHBBHH", 7, 0, 6, unit, fc, addr, count))
    head = await asyncio.wait_for(reader.readexactly(6), 2.0)
    body = await asyncio.wait_for(reader.readexactly(struct.unpack(">H", head[4:])[0]), 2.0)
    writer.close()
    assert head[:2] == b"\x00\x07"
    return body  # unit, fc, ...


def regs(body: bytes) -> list[int]:
    assert body[2] == len(body) - 3
    return list(struct.unpack(f">{body[2] // 2}H", body[3:]))


def test_gateway_raw_frames_match_icd() -> None:
    cfg = reference_cfg()

    async def main() -> None:
        async with Rig(cfg) as rig:
            port = int(rig.endpoints["topside"].rsplit(":", 1)[1])
            assert regs(await tcp_read(port, 1, 3, 0, 10)) == pump_registers()
            assert regs(await tcp_read(port, 2, 3, 10, 90)) == [0] * 90
            assert await tcp_read(port, 1, 3, 99, 2) == bytes((1, 0x83, 2))  # 100+: exception 2
            ft = regs(await tcp_read(port, 12, 4, 0, 10))
            q = f32(330.0)
            assert ft[0:2] == [q[1], q[0]]  # CDAB
            assert ft[4:8] == list(struct.unpack(">4H", struct.pack(">d", 135802.5)))
            assert ft[8:] == [0, 5200]
            ai = regs(await tcp_read(port, 20, 4, 0, 8))
            # 62 bar of 0-250 -> 7.968 mA -> 6857 counts; spare inputs read 0 mA = -6912 counts
            assert ai[0] == round((4 + 16 * 62 / 250 - 4) / 16 * 27648) == 6857
            assert [struct.unpack(">h", struct.pack(">H", r))[0] for r in ai[3:]] == [-6912] * 5
            assert await tcp_read(port, 99, 3, 0, 1) == bytes((99, 0x83, 0x0B))  # no such unit
            assert (await tcp_read(port, 1, 6, 0, 1))[1] == 0x86  # a write is refused...
            gw = rig.emulators["topside"]
            assert gw.fc_log.writes() == 1  # ...and logged
            gw.fc_log.counts.clear()
            from hil.emulators.unit import GLOBAL_FC_LOG

            GLOBAL_FC_LOG[6] -= 1  # this test's own deliberate write, not the drivers'

    arun(main())


def test_rtu_raw_frames_and_faults() -> None:
    cfg = reference_cfg()

    async def ask(port: int, unit: int, timeout_s: float = 0.5) -> bytes:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        pdu = bytes((unit, 4)) + struct.pack(">HH", 0, 6)
        writer.write(b"\xff\x00" + pdu + crc16(pdu))  # line noise first: must resync
        try:
            return await asyncio.wait_for(reader.read(64), timeout_s)
        except TimeoutError:
            return b""
        finally:
            writer.close()

    async def main() -> None:
        async with Rig(cfg) as rig:
            port = int(rig.endpoints["subsea"].rsplit(":", 1)[1])
            frame = await ask(port, 31)
            assert frame[:3] == bytes((31, 4, 12)) and crc16(frame[:-2]) == frame[-2:]
            p = 101.325 + 1050 * 9.80665 * 5690 / 1000
            assert list(struct.unpack(">6H", frame[3:15]))[:3] == [*f32(p), 200]
            assert await ask(port, 34, 0.2) == b""  # nobody at 34
            rig.set_fault("pt302", "bad_checksum")
            bad = await ask(port, 32)
            assert bad[:2] == bytes((32, 4)) and crc16(bad[:-2]) != bad[-2:]
            rig.set_fault("pt302", "exception", code=2)
            rig.clear_fault("pt302", "bad_checksum")
            exc = await ask(port, 32)
            assert exc[:3] == bytes((32, 0x84, 2)) and crc16(exc[:-2]) == exc[-2:]

    arun(main())


SENTENCE = re.compile(
    rb"^\$PDNS,(\d+),(\d+\.\d\d),(-?\d+\.\d),(\d+),([0-9A-F]{4})\*([0-9A-F]{2})\r\n$"
)


def test_densitometer_stream_format_and_faults() -> None:
    cfg = reference_cfg()

    async def main() -> None:
        async with Rig(cfg, densitometer_period_s=0.02) as rig:
            host, port = rig.endpoints["densitometer"].removeprefix("socket://").split(":")
            reader, writer = await asyncio.open_connection(host, int(port))
            lines = [await asyncio.wait_for(reader.readline(), 2.0) for _ in range(3)]
            seqs = []
            for ln in lines:
                m = SENTENCE.match(ln)
                assert m, ln
                assert int(m[6], 16) == nmea_checksum(ln[1 : ln.index(b"*")])
                assert (m[2], m[3], m[4], m[5]) == (b"1050.00", b"18.4", b"52113", b"0000")
                seqs.append(int(m[1]))
            assert seqs == list(range(seqs[0], seqs[0] + 3))
            rig.set_fault("dt201", "status_bits", field="status", bits=0x14)
            rig.set_fault("dt201", "bad_checksum")
            for _ in range(3):  # the fault takes effect from the next emission on
                m = SENTENCE.match(await asyncio.wait_for(reader.readline(), 2.0))
            assert m and m[5] == b"0014"
            assert int(m[6], 16) != nmea_checksum(m[0][1 : m[0].index(b"*")])
            writer.close()
            assert rig.bytes_to_densitometers() == 0

    arun(main())


@pytest.mark.skipif(shutil.which("mbpoll") is None, reason="Debian mbpoll not installed")
def test_mbpoll_reads_icd_registers() -> None:
    """A third-party master (mbpoll) gets the ICD's raw registers from the emulated gateway."""
    cfg = reference_cfg()

    async def main() -> None:
        async with Rig(cfg) as rig:
            port = rig.endpoints["topside"].rsplit(":", 1)[1]

            def mbpoll(*args: str) -> subprocess.CompletedProcess[str]:
                return subprocess.run(
                    ["mbpoll", "-m", "tcp", "-0", "-1", "-p", port, *args, "127.0.0.1"],
                    capture_output=True, text=True, timeout=10, check=False,
                )  # fmt: skip

            out = await asyncio.to_thread(mbpoll, "-a", "1", "-r", "0", "-c", "10", "-t", "4:hex")
            got = [int(v, 16) for v in re.findall(r"^\[\d+\]:\s+0x([0-9A-F]+)", out.stdout, re.M)]
            assert got == pump_registers(), out.stdout
            out = await asyncio.to_thread(mbpoll, "-a", "20", "-r", "0", "-c", "8", "-t", "3")
            vals = [
                int(v)
                for v in re.findall(
                    r"^\[\d+\]:\s+\d+ \((-?\d+)\)|^\[\d+\]:\s+(\d+)", out.stdout, re.M
                )
                for v in v
                if v
            ]
            assert vals[0] == 6857 and vals[3:] == [-6912] * 5, out.stdout
            out = await asyncio.to_thread(mbpoll, "-a", "1", "-r", "100", "-c", "1", "-t", "4")
            assert out.returncode != 0 and "Illegal data address" in out.stderr + out.stdout
            assert rig.write_requests() == 0

    arun(main())


def test_pty_rtu_answers() -> None:
    cfg = reference_cfg()

    async def main() -> None:
        async with Rig(cfg, modes={"subsea": "pty"}) as rig:
            path = rig.endpoints["subsea"]
            fd = os.open(path, os.O_RDWR | os.O_NOCTTY)
            try:
                import tty

                tty.setraw(fd)
                pdu = bytes((33, 4)) + struct.pack(">HH", 2, 1)
                os.write(fd, pdu + crc16(pdu))
                loop = asyncio.get_running_loop()
                got = bytearray()
                deadline = time.monotonic() + 2.0
                ready = asyncio.Event()
                loop.add_reader(fd, ready.set)
                while len(got) < 7 and time.monotonic() < deadline:
                    await asyncio.wait_for(ready.wait(), 2.0)
                    ready.clear()
                    got += os.read(fd, 64)
                loop.remove_reader(fd)
            finally:
                os.close(fd)
            assert bytes(got[:5]) == bytes((33, 4, 2, 0x03, 0x20))  # 8.00 degC = 800

    arun(main())


def test_hostile_overrides_reach_the_wire() -> None:
    """`override` puts the absurd number itself on the wire; `send_raw` adds bytes verbatim."""
    cfg = reference_cfg()

    async def main() -> None:
        async with Rig(cfg, densitometer_period_s=0.02) as rig:
            port = int(rig.endpoints["topside"].rsplit(":", 1)[1])
            rig.set_fault("ft201", "override", field="volume_flow", value=float("inf"))
            ft = regs(await tcp_read(port, 12, 4, 0, 4))
            assert ft[0:2] == [0x0000, 0x7F80]  # +inf float32, CDAB
            assert ft[2:4] == [*reversed(f32(330.0 / 3600 / (3.141592653589793 * 0.01)))]
            rig.set_fault("p101a", "override", field="speed", value=-1e9)
            assert regs(await tcp_read(port, 1, 3, 1, 1)) == [0x8000]  # clipped to int16 min
            rig.set_fault("pt301", "override", field="pressure", value=float("nan"))
            sub = int(rig.endpoints["subsea"].rsplit(":", 1)[1])
            reader, writer = await asyncio.open_connection("127.0.0.1", sub)
            pdu = bytes((31, 4)) + struct.pack(">HH", 0, 2)
            writer.write(pdu + crc16(pdu))
            frame = await asyncio.wait_for(reader.readexactly(9), 2.0)
            writer.close()
            hi = struct.unpack(">H", frame[3:5])[0]
            assert hi & 0x7F80 == 0x7F80 and (hi & 0x7F or frame[5:7] != b"\0\0")  # a NaN

            host, dport = rig.endpoints["densitometer"].removeprefix("socket://").split(":")
            reader, writer = await asyncio.open_connection(host, int(dport))
            rig.set_fault("dt201", "override", field="density", value="1e308")
            emu = rig.emulators["densitometer"]
            assert isinstance(emu, DensitometerEmulator)
            for _ in range(3):  # the fault takes effect from the next emission on
                ln = await asyncio.wait_for(reader.readline(), 2.0)
            m = re.match(rb"^\$PDNS,\d+,1e308,18\.4,52113,0000\*([0-9A-F]{2})\r\n$", ln)
            assert m and int(m[1], 16) == nmea_checksum(ln[1 : ln.index(b"*")]), ln
            junk = b"$$$\x00\xff$PDNS,1*zz\r\n"
            emu.send_raw(junk)
            got, deadline = b"", time.monotonic() + 2.0
            while junk not in got and time.monotonic() < deadline:
                got += await asyncio.wait_for(reader.read(4096), 2.0)
            assert junk in got
            writer.close()
            assert rig.bytes_to_densitometers() == 0

    arun(main())
