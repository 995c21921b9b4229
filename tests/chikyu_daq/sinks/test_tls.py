"""TLS and credentials against real servers: influxd 1.6.7 over https with auth, mosquitto over TLS
with a password file, and the v2 writer against a loopback https stub. Secrets never reach a log.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from aiohttp import web

from chikyu_daq.config.model import Influx, Mqtt
from chikyu_daq.sinks.assay import Assay
from chikyu_daq.sinks.influx.lineproto import encode_block
from chikyu_daq.sinks.influx.sink import (
    InfluxSink,
    RetryableError,
    Server,
    V2Writer,
    writer_from_config,
)
from chikyu_daq.sinks.mqtt import MqttPublisher
from tests.chikyu_daq.sinks.tls_pki import Pki, TlsInfluxd, TlsMosquitto, make_pki
from tests.servers import serving, until

pytestmark = pytest.mark.servers

T0 = 1_700_000_000_000_000_000
N = 50
INFLUX_USER = "daqadmin"
INFLUX_PASSWORD = "Infl-pw_7f2a!k9"  # distinctive, so a leak into a log is unmistakable
WRONG_PASSWORD = "Wr0ng-pw_c41d?z"
MQTT_USER = "daq"
MQTT_PASSWORD = "Mq-pw_93be#q1"
TOKEN = "tok-5d0c-Zx8Q"
SECRETS = (INFLUX_PASSWORD, WRONG_PASSWORD, MQTT_PASSWORD, TOKEN)
PW_ENV = "CHIKYU_TEST_INFLUX_PASSWORD"
PREFIX = "chikyu/tlsvessel"
ASSAY = {
    "sample_id": "MTS-26-0777",
    "sampled_at": (datetime.now(UTC) - timedelta(hours=1)).isoformat(),  # in the accepted window
    "rey_ppm": 2150.0,
    "u_rey_ppm": 120.0,
}


# -- fixtures ----------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return make_pki(tmp_path_factory.mktemp("pki"), "chikyu")


@pytest.fixture(scope="module")
def other_pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    """An unrelated CA: its root must not validate the servers' certificates."""
    return make_pki(tmp_path_factory.mktemp("pki-other"), "unrelated")


@pytest.fixture(scope="module")
def tls_influxd(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[TlsInfluxd]:
    server = TlsInfluxd(tmp_path_factory.mktemp("influxd-tls"), pki, INFLUX_USER, INFLUX_PASSWORD)
    yield from serving(server)


@pytest.fixture(scope="module")
def tls_mosquitto(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[TlsMosquitto]:
    server = TlsMosquitto(tmp_path_factory.mktemp("mosquitto-tls"), pki, MQTT_USER, MQTT_PASSWORD)
    yield from serving(server)


def leaks(records: list[logging.LogRecord]) -> list[str]:
    """Log records (by logger and format) in which any of `SECRETS` shows up, however logged."""
    found = []
    for rec in records:
        try:
            message = rec.getMessage()
        except Exception:  # a malformed record still must not carry a secret
            message = str(rec.msg)
        text = " ".join([message, repr(rec.args), rec.exc_text or "", repr(rec.__dict__)])
        if any(secret in text for secret in SECRETS):
            found.append(f"{rec.name}: {rec.msg!r}")
    return found


@pytest.fixture(autouse=True)
def no_secret_in_logs(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    """Every test here runs with DEBUG logging captured; no secret may appear in any record."""
    caplog.set_level(logging.DEBUG)
    yield caplog
    # In teardown `caplog.records` holds only this phase's records: check every phase's.
    records = [r for when in ("setup", "call", "teardown") for r in caplog.get_records(when)]
    assert leaks(records) == []


def test_leak_check_catches_a_secret_in_args_or_exception() -> None:
    """The check above can fail: a secret passed as an argument or inside an exception counts."""
    logger = logging.getLogger("tls-leak-probe")
    args_rec = logger.makeRecord("p", logging.INFO, __file__, 1, "user %s", (MQTT_PASSWORD,), None)
    try:
        raise ValueError(f"token={TOKEN}")
    except ValueError:
        exc_rec = logger.makeRecord("p", logging.ERROR, __file__, 2, "failed", (), sys.exc_info())
    exc_rec.exc_text = logging.Formatter().formatException(exc_rec.exc_info)  # type: ignore[arg-type]
    clean = logger.makeRecord("p", logging.INFO, __file__, 3, "user %s", (MQTT_USER,), None)
    assert len(leaks([args_rec, exc_rec, clean])) == 2


# -- InfluxDB v1 over https with auth ------------------------------------------------------------
def influx_cfg(server: TlsInfluxd, db: str, ca: Path | None, **kw: Any) -> Influx:
    return Influx(
        enabled=True,
        dialect="v1",
        url=server.url,
        db=db,
        username=INFLUX_USER,
        password_env=PW_ENV,
        ca_file=str(ca) if ca is not None else None,
        **kw,
    )


def drain(sink: InfluxSink, timeout_s: float = 15.0) -> None:
    """Run the uploader until the spool is empty, then close it."""

    async def main() -> None:
        task = asyncio.create_task(sink.run())
        await until(sink.spool.empty, timeout_s)
        await sink.aclose()
        await task

    asyncio.run(main())


def spool_points(sink: InfluxSink, n: int = N) -> None:
    t = T0 + np.arange(n, dtype=np.int64) * 1_000_000
    sink.write_lines(
        encode_block("tls", {"vessel": "chikyu"}, t, {"v": np.arange(n, dtype=np.float64)})
    )


def stored(server: TlsInfluxd, db: str) -> list[list[Any]]:
    res = server.query('SELECT "v" FROM "tls"', db)["results"][0]
    assert "error" not in res, res
    return [v for s in res.get("series", []) for v in s["values"]]


def expected_rows(n: int = N) -> list[list[Any]]:
    return [[T0 + i * 1_000_000, float(i)] for i in range(n)]


def test_v1_https_with_password_from_env_delivers(
    tls_influxd: TlsInfluxd, pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tls_influxd.create_db("ok")
    monkeypatch.setenv(PW_ENV, INFLUX_PASSWORD)
    sink = InfluxSink.from_config(influx_cfg(tls_influxd, "ok", pki.ca_cert), tmp_path / "spool")
    spool_points(sink)

    drain(sink)
    assert stored(tls_influxd, "ok") == expected_rows()
    stats = sink.stats()
    assert stats["lines_sent"] == N and stats["influx_connected"] is True
    assert stats["batches_rejected"] == 0 and stats["retries"] == 0


def test_v1_https_password_from_file(
    tls_influxd: TlsInfluxd, pki: Pki, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tls_influxd.create_db("okfile")
    monkeypatch.delenv(PW_ENV, raising=False)
    secret = tmp_path / "influx.pw"
    secret.write_text(INFLUX_PASSWORD + "\n")
    cfg = influx_cfg(tls_influxd, "okfile", pki.ca_cert, password_file=str(secret))
    sink = InfluxSink.from_config(cfg, tmp_path / "spool")
    spool_points(sink)

    drain(sink)
    assert stored(tls_influxd, "okfile") == expected_rows()


@pytest.mark.parametrize("trust", ["unrelated-ca", "system-store"])
def test_v1_untrusted_certificate_is_retried_and_nothing_is_lost(
    tls_influxd: TlsInfluxd,
    pki: Pki,
    other_pki: Pki,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
    trust: str,
) -> None:
    db = f"untrusted_{trust.replace('-', '_')}"
    tls_influxd.create_db(db)
    monkeypatch.setenv(PW_ENV, INFLUX_PASSWORD)
    spool_dir = tmp_path / "spool"
    bad_ca = other_pki.ca_cert if trust == "unrelated-ca" else None
    sink = InfluxSink.from_config(influx_cfg(tls_influxd, db, bad_ca), spool_dir)
    spool_points(sink)

    async def refused() -> None:
        task = asyncio.create_task(sink.run())
        await until(lambda: sink.uploader.retries >= 2, 15)
        await sink.aclose(timeout_s=0.2)  # cannot drain: gives up, keeps the spool
        await task

    asyncio.run(refused())
    stats = sink.stats()
    assert "CERTIFICATE_VERIFY_FAILED" in sink.uploader.last_error
    assert stats["influx_connected"] is False and stats["lines_sent"] == 0
    assert stats["batches_rejected"] == 0 and stats["lines_rejected"] == 0
    assert stats["spool_pending_bytes"] > 0
    assert sink.spool.rejected() == []
    assert any(
        r.levelno == logging.WARNING and "CERTIFICATE_VERIFY_FAILED" in r.getMessage()
        for r in caplog.records
    )
    assert stored(tls_influxd, db) == []

    # The operator fixes ca_file: the same spool, reopened, delivers every point.
    fixed = InfluxSink.from_config(influx_cfg(tls_influxd, db, pki.ca_cert), spool_dir)

    drain(fixed)
    assert stored(tls_influxd, db) == expected_rows()
    assert fixed.stats()["lines_sent"] == N


def test_v1_wrong_password_keeps_data_and_says_so_loudly(
    tls_influxd: TlsInfluxd,
    pki: Pki,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """401 means the credentials are wrong for every batch: nothing is rejected, the data waits
    in the spool with an ERROR line per retry, and a corrected password delivers all of it."""
    tls_influxd.create_db("badpw")
    monkeypatch.setenv(PW_ENV, WRONG_PASSWORD)
    sink = InfluxSink.from_config(influx_cfg(tls_influxd, "badpw", pki.ca_cert), tmp_path / "sp")
    spool_points(sink)

    async def refused() -> None:
        task = asyncio.create_task(sink.run())
        await until(lambda: sink.stats()["retries"] >= 2, 15)
        await sink.aclose(timeout_s=1.0)
        await task

    asyncio.run(refused())
    stats = sink.stats()
    assert stats["lines_sent"] == 0 and stats["batches_rejected"] == 0
    assert sink.spool.rejected() == []
    assert "HTTP 401" in sink.uploader.last_error and WRONG_PASSWORD not in sink.uploader.last_error
    errors = [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("HTTP 401" in r.getMessage() and "data kept" in r.getMessage() for r in errors)
    assert stored(tls_influxd, "badpw") == []

    monkeypatch.setenv(PW_ENV, INFLUX_PASSWORD)
    fixed = InfluxSink.from_config(influx_cfg(tls_influxd, "badpw", pki.ca_cert), tmp_path / "sp")

    drain(fixed)
    assert len(stored(tls_influxd, "badpw")) == N


# -- InfluxDB v2 writer over https (loopback stub: influxd 1.6.7 has no /api/v2/write) ----------
def test_v2_writer_https_token_and_ca_file(pki: Pki, other_pki: Pki, tmp_path: Path) -> None:
    seen: list[tuple[str, str, int]] = []

    async def write(request: web.Request) -> web.Response:
        body = await request.read()
        seen.append((request.headers.get("Authorization", ""), request.query["bucket"], len(body)))
        return web.Response(status=204)

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/api/v2/write", write)
        runner = web.AppRunner(app)
        await runner.setup()
        server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_ctx.load_cert_chain(pki.server_cert, pki.server_key)
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ctx)
        await site.start()
        port = runner.addresses[0][1]
        url = f"https://127.0.0.1:{port}"
        token_file = tmp_path / "token"
        token_file.write_text(TOKEN + "\n")
        try:
            good = writer_from_config(
                Influx(enabled=True, url=url, bucket="b", org="o",
                       token_file=str(token_file), ca_file=str(pki.ca_cert))
            )  # fmt: skip
            assert isinstance(good, V2Writer)
            await good.write(b"m v=1 1\n")
            await good.aclose()
            bad = V2Writer(Server(url, str(other_pki.ca_cert)), "b", org="o", token=TOKEN)
            with pytest.raises(RetryableError, match="CERTIFICATE_VERIFY_FAILED"):
                await bad.write(b"m v=2 2\n")
            await bad.aclose()
        finally:
            await runner.cleanup()

    asyncio.run(main())
    assert len(seen) == 1, seen  # the untrusted attempt never reached the handler
    assert seen[0][0] == f"Token {TOKEN}" and seen[0][1] == "b"


# -- MQTT over TLS with a password file ---------------------------------------------------------
def mqtt_cfg(server: TlsMosquitto, password_file: Path, ca: Path) -> Mqtt:
    return Mqtt(
        enabled=True,
        host=server.host,
        port=server.port,
        username=MQTT_USER,
        password_file=str(password_file),
        tls=True,
        ca_file=str(ca),
        keepalive_s=5,
    )


def test_mqtt_tls_password_file_status_and_assay(
    tls_mosquitto: TlsMosquitto, pki: Pki, tmp_path: Path
) -> None:
    pw = tmp_path / "mqtt.pw"
    pw.write_text(MQTT_PASSWORD + "\n")
    assays: list[Assay] = []

    async def main() -> None:
        pub = MqttPublisher(
            mqtt_cfg(tls_mosquitto, pw, pki.ca_cert), PREFIX, on_assay=assays.append
        )
        pub.set_status({"run": "tls-1"})
        task = asyncio.create_task(pub.run())
        await until(lambda: pub.subscribed and not pub._dirty, 15)
        status = await asyncio.to_thread(
            tls_mosquitto.client, "mosquitto_sub", "-t", f"{PREFIX}/status", "-C", "1",
            "-W", "5", password=MQTT_PASSWORD,
        )  # fmt: skip
        assert json.loads(status) == {"run": "tls-1", "state": "online"}
        await asyncio.to_thread(
            tls_mosquitto.client, "mosquitto_pub", "-t", f"{PREFIX}/lab/assay", "-q", "1",
            "-m", json.dumps(ASSAY), password=MQTT_PASSWORD,
        )  # fmt: skip
        await until(lambda: len(assays) == 1, 10)
        assert pub.connects == 1 and pub.last_error == ""
        await pub.aclose()
        await task

    asyncio.run(main())
    assert assays[0].sample_id == "MTS-26-0777" and assays[0].rey_ppm == 2150.0
    final = tls_mosquitto.client(
        "mosquitto_sub", "-t", f"{PREFIX}/status", "-C", "1", "-W", "5", password=MQTT_PASSWORD
    )
    assert json.loads(final)["state"] == "offline"


@pytest.mark.parametrize("fault", ["wrong-password", "unrelated-ca"])
def test_mqtt_bad_credentials_or_ca_never_connect_but_keep_retrying(
    tls_mosquitto: TlsMosquitto,
    pki: Pki,
    other_pki: Pki,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    fault: str,
) -> None:
    pw = tmp_path / "mqtt.pw"
    pw.write_text((WRONG_PASSWORD if fault == "wrong-password" else MQTT_PASSWORD) + "\n")
    ca = other_pki.ca_cert if fault == "unrelated-ca" else pki.ca_cert

    def attempts() -> int:
        return sum(
            r.name == "chikyu_daq.sinks.mqtt" and "reconnecting" in r.getMessage()
            for r in caplog.records
        )

    async def main() -> None:
        pub = MqttPublisher(
            mqtt_cfg(tls_mosquitto, pw, ca), PREFIX + "/bad", backoff_min_s=0.05,
            backoff_max_s=0.2,
        )  # fmt: skip
        pub.set_status({"run": "never"})
        task = asyncio.create_task(pub.run())
        await until(lambda: attempts() >= 3, 15)
        assert not task.done()  # still trying, nothing raised
        stats = pub.stats()
        assert stats["mqtt_connected"] is False and stats["mqtt_connects"] == 0
        assert stats["mqtt_last_error"] != ""
        assert not any(secret in json.dumps(stats) for secret in SECRETS)
        if fault == "wrong-password":
            assert "authori" in stats["mqtt_last_error"].lower(), stats["mqtt_last_error"]
        else:
            assert "CERTIFICATE_VERIFY_FAILED" in stats["mqtt_last_error"]
        await pub.aclose()
        await asyncio.wait_for(task, 5)

    asyncio.run(main())
    # Nothing from the would-be publisher reached the broker.
    out = tls_mosquitto.client(
        "mosquitto_sub", "-t", f"{PREFIX}/bad/#", "-C", "1", "-W", "1", password=MQTT_PASSWORD,
        check=False,
    )  # fmt: skip
    assert out == ""
