"""Spool recovery: a stored cursor that does not match the files is repaired to the safe side
(resend, never skip), counted and logged; `chikyu-daq spool check|show` report it; the uploader
keeps delivering to a real influxd while segments are deleted and the disk refuses rejects."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from chikyu_daq.sinks.influx.sink import InfluxSink, Uploader, V1Writer
from chikyu_daq.sinks.influx.spool import Spool
from tests.chikyu_daq.fsfaults import fill, read_only, tmpfs
from tests.chikyu_daq.spooling import drain, lines
from tests.servers import Influxd, wait_until

REPO = Path(__file__).resolve().parents[4]


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, bytes, int]:
    d = tmp_path_factory.mktemp("template") / "spool"
    unsent, seg = make_sent_some(d)
    return d, unsent, seg


def sent_some(template: tuple[Path, bytes, int], d: Path) -> tuple[bytes, int]:
    """A copy of the template spool (built once: fsyncs are slow on a shared disk)."""
    shutil.copytree(template[0], d, dirs_exist_ok=True)
    return template[1], template[2]


def make_sent_some(d: Path) -> tuple[bytes, int]:
    """A closed spool of 200 lines in ~9 segments with the first 40 sent: (unsent, cursor seg)."""
    s = Spool(d, 1 << 20, segment_bytes=200)
    for k in range(20):
        s.append(lines(10 * k, 10 * k + 10))
    sent = b""
    while len(sent) < len(lines(0, 40)):
        batch = s.next_range(5, 1 << 20)
        assert batch is not None
        sent += batch.data
        s.commit(batch)
    s.close()
    cur = json.loads((d / "cursor.json").read_text())
    return lines(0, 200)[len(sent) :], int(cur["segment"])


BAD_CURSORS = {
    "garbage": "garbage{",
    "zero_bytes": "\0" * 64,
    "zeroed": '{"segment": 0, "offset": 0}',
    "segment_99999_no_offset": '{"segment": 99999}',
    "segment_99999": '{"segment": 99999, "offset": 0}',
    "segment_1e999": '{"segment": 1e999, "offset": 0}',
    "offset_1e999": '{"segment": SEG, "offset": 1e999}',
    "negative_offset": '{"segment": SEG, "offset": -5}',
    "offset_past_end": '{"segment": SEG, "offset": 1000000000}',
    "offset_mid_line": '{"segment": SEG, "offset": 3}',
    "strings": '{"segment": "SEG", "offset": "0"}',
    "bool": '{"segment": true, "offset": 0}',
    "list": "[1, 2]",
    "deep_nesting": "[" * 100_000,
}


@pytest.mark.parametrize("text", BAD_CURSORS.values(), ids=BAD_CURSORS.keys())
def test_bad_cursor_is_repaired_to_resend_never_skip(
    template: tuple[Path, bytes, int], tmp_path: Path, text: str, caplog: pytest.LogCaptureFixture
) -> None:
    unsent, seg = sent_some(template, tmp_path)
    (tmp_path / "cursor.json").write_text(text.replace("SEG", str(seg)))
    s = Spool(tmp_path, 1 << 20, segment_bytes=200)  # raised, or skipped lines, before
    assert s.stats().cursor_repairs == 1
    assert "cursor.json" in caplog.text and "repaired" in caplog.text
    got = drain(s, 40)
    assert got.endswith(unsent)  # nothing unsent is skipped ...
    assert lines(0, 200).endswith(got)  # ... and what comes again is whole lines, in order
    s.close()
    again = Spool(tmp_path, 1 << 20)
    assert again.stats().cursor_repairs == 0 and drain(again, 40) == b""


def test_valid_cursor_is_not_repaired(template: tuple[Path, bytes, int], tmp_path: Path) -> None:
    unsent, _ = sent_some(template, tmp_path)
    s = Spool(tmp_path, 1 << 20, segment_bytes=200)
    assert s.stats().cursor_repairs == 0
    assert drain(s, 40) == unsent  # exactly: no resend either


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "chikyu_daq", "spool", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
        check=False,
    )


def test_spool_check_and_show_through_the_cli(
    template: tuple[Path, bytes, int], tmp_path: Path
) -> None:
    d = tmp_path / "spool"
    unsent, _ = sent_some(template, d)
    ok = cli("check", str(d))
    assert ok.returncode == 0, ok.stdout + ok.stderr
    n_unsent = unsent.count(b"\n")
    assert f"{n_unsent} lines" in ok.stdout and "healthy" in ok.stdout
    assert f"{len(unsent)} bytes" in ok.stdout and "valid" in ok.stdout
    # Break it: a torn tail, a rejected batch, a cursor past the unsent segments.
    segs = sorted((d / "segments").glob("*.lp"))
    with open(segs[-1], "ab") as f:
        f.write(b"m v=9")
    (d / "rejected").mkdir(exist_ok=True)
    (d / "rejected" / "x.lp").write_bytes(lines(0, 3))
    (d / "rejected" / "x.reason").write_text("HTTP 400: field type conflict\n")
    (d / "cursor.json").write_text('{"segment": 99999, "offset": 0}')
    bad = cli("check", str(d), "--json")
    assert bad.returncode == 1
    doc = json.loads(bad.stdout)
    assert doc["cursor_valid"] is False and doc["torn_bytes"] == 5
    assert (doc["rejected_batches"], doc["rejected_lines"]) == (1, 3)
    assert doc["pending_lines"] >= unsent.count(b"\n")  # as the repaired cursor would send
    assert doc["lag_s"] >= 0
    show = cli("show", str(d))
    assert show.returncode == 0
    rows = [ln.split() for ln in show.stdout.splitlines() if ln[:1] in "│|"]
    table = [[c for c in r if c not in "│|"] for r in rows]
    assert [int(r[0]) for r in table] == [int(p.stem) for p in segs]
    assert [int(r[1]) for r in table] == [p.stat().st_size for p in segs]
    assert "INVALID" in show.stdout and "refused     1 batches, 3 lines" in show.stdout


def test_spool_check_on_a_directory_that_is_no_spool(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from chikyu_daq.cli.root import app

    out = CliRunner().invoke(app, ["spool", "check", str(tmp_path / "nothing")])
    assert out.exit_code == 2 and "not a spool" in out.output


@pytest.mark.servers
def test_uploader_survives_deleted_segments_and_a_read_only_reject(
    influxd: Influxd, tmp_path: Path
) -> None:
    influxd.create_db("t")
    d = tmp_path / "spool"
    spool = Spool(d, 64 << 20, segment_bytes=4096, retry_s=0.05)
    sink = InfluxSink(spool, Uploader(spool, V1Writer(influxd.url, "t"), backoff_max_s=0.2))

    def block(a: int, b: int) -> bytes:
        return b"".join(b"m v=%d %d\n" % (i, 10**18 + i) for i in range(a, b))

    for k in range(10):
        sink.write_lines(block(100 * k, 100 * k + 100))
    victims = sorted((d / "segments").glob("*.lp"))[1:3]
    lost = sum(p.read_bytes().count(b"\n") for p in victims)
    for p in victims:  # deleted under the open spool, before the uploader reads them
        p.unlink()

    async def main() -> None:
        task = asyncio.create_task(sink.run())
        await asyncio.to_thread(wait_until, spool.empty, 20)  # raised FileNotFoundError before
        assert spool.stats().lost_lines == lost and sink.stats()["lines_lost"] == lost
        with read_only(d):  # the server refuses a batch and the disk cannot keep it
            sink.write_lines(b'm v="text" %d\n' % (10**18 + 5000))
            await asyncio.to_thread(
                wait_until, lambda: spool.stats().health["spool_errors_erofs"] >= 1, 20
            )
            assert not task.done()
        await asyncio.to_thread(wait_until, lambda: len(spool.rejected()) == 1, 20)
        sink.write_lines(block(3000, 3010))
        await asyncio.to_thread(wait_until, spool.empty, 20)
        assert not task.done()
        await sink.aclose()
        await task

    asyncio.run(main())
    rows = influxd.query('SELECT count("v") FROM "m"', "t")["results"][0]["series"][0]["values"]
    assert int(rows[0][1]) == 1000 - lost + 10


@pytest.mark.servers
def test_lines_held_in_memory_are_sent_before_close(influxd: Influxd, tmp_path: Path) -> None:
    influxd.create_db("t")
    with tmpfs(tmp_path / "fs", "2m") as fs:
        spool = Spool(fs / "spool", 1 << 20, retry_s=3600.0)  # only a forced retry can help
        sink = InfluxSink(spool, Uploader(spool, V1Writer(influxd.url, "t"), backoff_max_s=0.2))
        body = b"".join(b"m v=%d %d\n" % (i, 10**18 + i) for i in range(2000))

        async def main() -> None:
            task = asyncio.create_task(sink.run())
            sink.write_lines(body[: body.index(b"\n") + 1])
            await asyncio.to_thread(wait_until, lambda: sink.stats()["lines_sent"] == 1, 10)
            filler = fill(fs)
            assert sink.write_lines(body)  # raised ENOSPC before
            assert spool.stats().memory_bytes == len(body)
            filler.unlink()
            await sink.aclose()
            await task

        asyncio.run(main())
    rows = influxd.query('SELECT count("v") FROM "m"', "t")["results"][0]["series"][0]["values"]
    assert int(rows[0][1]) == 2000


def test_cursor_into_a_segment_deleted_at_rest_skips_nothing_new(tmp_path: Path) -> None:
    s = Spool(tmp_path, 1 << 20)
    s.append(lines(0, 10))
    batch = s.next_range(4, 1 << 20)
    assert batch is not None
    s.commit(batch)  # the cursor points into the open segment
    s.close()
    for p in (tmp_path / "segments").glob("*.lp"):
        p.unlink()
    s2 = Spool(tmp_path, 1 << 20)
    assert s2.stats().lost_lines == 6
    s2.append(lines(10, 20))
    assert drain(s2, 40) == lines(10, 20)
