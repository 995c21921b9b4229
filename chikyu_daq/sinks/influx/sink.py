"""InfluxDB sink: the disk spool drained by an uploader through a v1 or v2 dialect writer.

A writer is a tiny transport (`async write(body)`, `aclose()`, the httpx habit): `V1Writer` POSTs
gzip line protocol to `/write?db=&rp=&precision=ns` (InfluxDB 1.x, with user and password);
`V2Writer` uses influxdb-client's async write API (`/api/v2/write`, org/bucket/token: InfluxDB 2.x,
3.x, and 1.8+ with `bucket="db/rp"`, `token="user:password"`). https is verified, with `ca_file`
as the trust root when given. Errors of aiohttp and influxdb-client are translated where they
enter, into one tree:

    InfluxWriteError
     ├── RetryableError    network error, timeout, 429, 5xx; `.retry_after_s` from Retry-After
     │    └── AuthError    401/403: credentials are wrong for every batch, so the data waits
     │                     in the spool (logged as ERROR) instead of being rejected batch by batch
     ├── TooLargeError     413: the uploader splits the batch
     └── RejectedError     any other 4xx: `.status`, `.reason` (the server's message)

The `Uploader` sends the spool's oldest batch (<= batch_lines and batch_bytes), at most one
request per `min_interval_s` (1 s) while it keeps up and back to back through a backlog, commits
the cursor only after a 2xx, backs off with full jitter (honouring Retry-After) on retryable errors,
splits on 413 and moves rejected batches to the spool's `rejected/` folder with the reason and an
ERROR log line, then carries on with the next batch. Points are idempotent in InfluxDB (same
series and timestamp overwrite), so this at-least-once delivery stores every point exactly once.
Disk faults are the spool's to absorb (`chikyu_daq.sinks.influx.spool`); the uploader only retries a
rejected batch the disk could not keep, and before closing it sends what a full disk held in memory.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import email.utils
import gzip
import logging
import random
import ssl
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from chikyu_daq.config.model import Influx, resolve_secret
from chikyu_daq.sinks.influx.spool import Spool, SpoolRange
from chikyu_daq.supervise import Backoff

__all__ = [
    "AuthError",
    "InfluxSink",
    "InfluxWriteError",
    "LineWriter",
    "RejectedError",
    "RetryableError",
    "TooLargeError",
    "Uploader",
    "V1Writer",
    "V2Writer",
    "writer_from_config",
]

log = logging.getLogger(__name__)


class InfluxWriteError(Exception):
    """A write the server did not accept."""


class RetryableError(InfluxWriteError):
    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class AuthError(RetryableError):
    """The server refused our credentials: an installation fault, not a bad batch."""


class TooLargeError(InfluxWriteError):
    pass


class RejectedError(InfluxWriteError):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(f"HTTP {status}: {reason}")
        self.status = status
        self.reason = reason


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header (delta seconds or an HTTP date)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def classify(status: int, reason: str, retry_after: str | None) -> InfluxWriteError | None:
    """Map an HTTP status to the error tree; None for 2xx."""
    if 200 <= status < 300:
        return None
    if status == 413:
        return TooLargeError(f"HTTP 413: {reason}")
    if status == 429 or status >= 500:
        return RetryableError(f"HTTP {status}: {reason}", parse_retry_after(retry_after))
    if status in (401, 403):
        return AuthError(f"HTTP {status}: {reason}")
    return RejectedError(status, reason)


class LineWriter(Protocol):
    """Send one batch of line protocol (ns precision); raise from the error tree."""

    async def write(self, body: bytes) -> None: ...

    async def aclose(self) -> None: ...


@dataclass(frozen=True)
class Server:
    """Where a writer posts, either dialect: base URL, the CA bundle that signs its https
    certificate (None: the system's) and the time one request may take."""

    url: str
    ca_file: str | None = None
    timeout_s: float = 10.0


def _ssl_context(url: str, ca_file: str | None) -> ssl.SSLContext | None:
    if not url.startswith("https"):
        return None
    return ssl.create_default_context(cafile=ca_file)


class V1Writer:
    """InfluxDB 1.x `/write` (also VictoriaMetrics): db, rp, user, password; gzip bodies."""

    def __init__(
        self,
        server: Server | str,
        db: str,
        *,
        rp: str = "",
        username: str = "",
        password: str = "",
        gzip_level: int = 1,
    ) -> None:
        if not db:
            raise ValueError("V1Writer needs a database name")
        srv = Server(server) if isinstance(server, str) else server
        self.url = srv.url.rstrip("/")
        self.params = {"db": db, "precision": "ns"}
        if rp:
            self.params["rp"] = rp
        self._username = username
        self._password = password
        self._ssl = _ssl_context(srv.url, srv.ca_file)
        self._timeout_s = srv.timeout_s
        self._gzip_level = gzip_level
        self._session: Any = None

    async def write(self, body: bytes) -> None:
        import aiohttp

        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout_s)
            )
        data = await asyncio.to_thread(gzip.compress, body, self._gzip_level)
        headers = {"Content-Encoding": "gzip", "Content-Type": "text/plain; charset=utf-8"}
        if self._username:
            headers["Authorization"] = _basic_auth(self._username, self._password)
        try:
            async with self._session.post(
                f"{self.url}/write",
                params=self.params,
                data=data,
                headers=headers,
                ssl=self._ssl if self._ssl is not None else True,
            ) as resp:
                text = await resp.text(errors="replace")
                err = classify(
                    resp.status, _reason(text, resp.reason), resp.headers.get("Retry-After")
                )
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise RetryableError(f"{type(exc).__name__}: {exc}") from None
        if err is not None:
            raise err

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None


def _basic_auth(username: str, password: str) -> str:
    token = base64.b64encode(f"{username}:{password}".encode()).decode("ascii")
    return f"Basic {token}"


def _reason(text: str, fallback: str | None) -> str:
    """The server's message: InfluxDB answers `{"error": "..."}` (v1) or `{"message": ...}`."""
    import json

    try:
        doc = json.loads(text)
        if isinstance(doc, dict):
            return str(doc.get("error") or doc.get("message") or text).strip()
    except ValueError:
        pass
    return (text or fallback or "").strip()


class V2Writer:
    """`/api/v2/write` through influxdb-client's async API (created lazily inside the loop)."""

    def __init__(self, server: Server, bucket: str, *, org: str = "", token: str = "") -> None:
        if not bucket:
            raise ValueError("V2Writer needs a bucket")
        self.url = server.url
        self.bucket = bucket
        self.org = org
        self._token = token
        self._ca_file = server.ca_file
        self._timeout_ms = int(server.timeout_s * 1000)
        self._client: Any = None
        self._write_api: Any = None

    async def write(self, body: bytes) -> None:
        import aiohttp
        from influxdb_client.client.exceptions import InfluxDBError
        from influxdb_client.client.influxdb_client_async import InfluxDBClientAsync
        from influxdb_client.domain.write_precision import WritePrecision

        if self._client is None:
            kwargs: dict[str, Any] = {}
            if self._ca_file:
                kwargs["ssl_ca_cert"] = self._ca_file
            self._client = InfluxDBClientAsync(
                url=self.url,
                token=self._token,
                org=self.org or "-",
                timeout=self._timeout_ms,
                enable_gzip=True,
                **kwargs,
            )
            self._write_api = self._client.write_api()
        try:
            await self._write_api.write(
                bucket=self.bucket,
                org=self.org or "-",
                record=body,
                write_precision=WritePrecision.NS,
            )
        except InfluxDBError as exc:
            status = int(getattr(exc, "status", 0) or 0)
            reason = getattr(exc, "message", None) or str(exc)
            err = classify(status, reason, getattr(exc, "retry_after", None)) if status else None
            raise (err or RetryableError(f"influxdb-client: {reason}")) from None
        except (aiohttp.ClientError, TimeoutError, OSError) as exc:
            raise RetryableError(f"{type(exc).__name__}: {exc}") from None

    async def aclose(self) -> None:
        if self._client is not None:
            with contextlib.suppress(Exception):
                await self._client.close()
            self._client = None


def writer_from_config(cfg: Influx) -> LineWriter:
    """The dialect writer for `cfg`, secrets resolved now (never logged)."""
    password = resolve_secret(cfg.password_env, cfg.password_file) or ""
    server = Server(cfg.url, cfg.ca_file, cfg.timeout_s)
    if cfg.dialect == "v1":
        return V1Writer(server, cfg.db, rp=cfg.rp, username=cfg.username, password=password)
    token = resolve_secret(cfg.token_env, cfg.token_file) or ""
    if not token and cfg.username:
        token = f"{cfg.username}:{password}"  # InfluxDB 1.8+ compatibility API
    return V2Writer(server, cfg.bucket, org=cfg.org, token=token)


class Uploader:
    """Drains a `Spool` into a writer; one instance per spool, `run()` in its own task."""

    def __init__(
        self,
        spool: Spool,
        writer: LineWriter,
        *,
        batch_lines: int = 5000,
        batch_bytes: int = 1_000_000,
        backoff_min_s: float = 0.2,
        backoff_max_s: float = 30.0,
        idle_poll_s: float = 0.5,
        min_interval_s: float = 1.0,
    ) -> None:
        self.spool = spool
        self.writer = writer
        self.batch_lines = batch_lines
        self.batch_bytes = batch_bytes
        self.backoff = Backoff(backoff_min_s, backoff_max_s)
        self.idle_poll_s = idle_poll_s
        self.min_interval_s = min_interval_s
        self._next_send = 0.0  # time.monotonic() before which no request starts (keeping up)
        self.lines_sent = 0
        self.batches_sent = 0
        self.batches_rejected = 0
        self.retries = 0
        self.splits = 0
        self.last_error = ""
        self.spool_errors = 0
        self.connected = False
        self._wake: asyncio.Event | None = None
        self._stop: asyncio.Event | None = None
        self._done: asyncio.Event | None = None
        self._closing = False

    def notify(self) -> None:
        """New lines were spooled: send them without waiting for the idle poll."""
        if self._wake is not None:
            self._wake.set()

    async def run(self) -> None:
        """Upload until `aclose()`; never raises for server or disk trouble."""
        self._wake, self._stop, self._done = asyncio.Event(), asyncio.Event(), asyncio.Event()
        try:
            while not self._stop.is_set():
                await self._hold()
                try:
                    batch = await asyncio.to_thread(self._next_batch)
                except OSError as exc:  # the spool absorbs disk faults; this is a last guard
                    self.spool_errors += 1
                    self.last_error = f"spool: {exc}"
                    log.error("influx uploader: spool read failed (%s); retrying", exc)
                    await self._pause(self.idle_poll_s)
                    continue
                if batch is None:
                    if self._closing:
                        # lines a full disk held in memory: on disk now, so sent before closing
                        if await asyncio.to_thread(self.spool.retry_now):
                            continue
                        break
                    self._wake.clear()
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._wake.wait(), self.idle_poll_s)
                    continue
                started = time.monotonic()
                await self._send(batch)
                if batch.lines < self.batch_lines and len(batch.data) < self.batch_bytes // 2:
                    self._next_send = started + self.min_interval_s  # drained: keeping up
        finally:
            self._done.set()

    async def _hold(self) -> None:
        """Keeping up, send at most once per `min_interval_s`: at live rates each request (a
        spool read, a gzip, an HTTP round trip, a cursor fsync) costs about as much CPU as a
        second of lines, so the lines of that second go in one. Closing cuts the wait short; a
        backlog (a batch at least half full) is not held at all."""
        assert self._wake is not None
        while not self._closing:
            left = self._next_send - time.monotonic()
            if left <= 0:
                return
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), left)

    def _next_batch(self) -> SpoolRange | None:
        """In a worker thread: the periodic fsync, then the next lines to send (one thread
        hand-off per turn, not two)."""
        self.spool.sync_if_due()
        return self.spool.next_range(self.batch_lines, self.batch_bytes)

    async def _send(self, batch: SpoolRange) -> None:
        assert self._stop is not None
        while not self._stop.is_set():
            try:
                await self.writer.write(batch.data)
            except TooLargeError as exc:
                if batch.lines < 2:
                    await self._reject(batch, str(exc))
                    return
                self.splits += 1
                for half in batch.split():
                    await self._send(half)
                return
            except RejectedError as exc:
                await self._reject(batch, str(exc))
                return
            except RetryableError as exc:
                self.connected = False
                self.retries += 1
                self.last_error = str(exc)
                delay = random.uniform(0.0, self.backoff.next())  # full jitter
                if exc.retry_after_s is not None:
                    delay = max(delay, min(exc.retry_after_s, 300.0))
                level = logging.ERROR if isinstance(exc, AuthError) else logging.WARNING
                log.log(
                    level, "influx write failed (%s); data kept, retrying in %.2f s", exc, delay
                )
                await self._pause(delay)
                continue
            self.connected = True
            self.backoff.reset()
            await asyncio.to_thread(self.spool.commit, batch)
            self.lines_sent += batch.lines
            self.batches_sent += 1
            return

    async def _reject(self, batch: SpoolRange, reason: str) -> None:
        self.connected = True
        self.last_error = reason
        path = await asyncio.to_thread(self.spool.reject, batch, reason)
        if path is None:  # the disk refused to keep it: unsent, so it is tried again later
            log.error("influx REJECTED %d lines (%s); cannot keep them yet", batch.lines, reason)
            await self._pause(self.backoff.next())
            return
        self.batches_rejected += 1
        log.error("influx REJECTED %d lines (%s); kept in %s", batch.lines, reason, path)

    async def _pause(self, delay: float) -> None:
        assert self._stop is not None
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._stop.wait(), delay)

    async def aclose(self, timeout_s: float = 5.0) -> None:
        """Send what is spooled for up to `timeout_s`, then stop and close the writer."""
        self._closing = True
        if self._done is not None and self._stop is not None:
            self.notify()
            try:
                await asyncio.wait_for(asyncio.shield(self._done.wait()), timeout_s)
            except TimeoutError:
                self._stop.set()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._done.wait(), 2.0)
        await self.writer.aclose()

    def stats(self) -> dict[str, float | int | bool]:
        """Self-metrics for the `daq` measurement."""
        s = self.spool.stats()
        return {
            "spool_bytes": s.spool_bytes,
            "spool_pending_bytes": s.pending_bytes,
            "spool_lag_s": s.lag_s,
            "lines_spooled": s.lines_appended,
            "lines_sent": self.lines_sent,
            "lines_rejected": s.rejected_lines,
            "lines_dropped": s.dropped_lines,
            "batches_sent": self.batches_sent,
            "batches_rejected": self.batches_rejected,
            "retries": self.retries,
            "batch_splits": self.splits,
            "influx_connected": self.connected,
            "lines_lost": s.lost_lines,
            "spool_memory_bytes": s.memory_bytes,
            "spool_cursor_repairs": s.cursor_repairs,
            "spool_read_errors": self.spool_errors,
            # health: spool_ok, spool_errors, spool_errors_<errno>, ... (numbers only)
            **{k: v for k, v in s.health.items() if isinstance(v, int | float)},
        }


class InfluxSink:
    """What the pipeline holds: spool lines now (never blocks on the network), upload later."""

    def __init__(self, spool: Spool, uploader: Uploader) -> None:
        self.spool = spool
        self.uploader = uploader

    @classmethod
    def from_config(cls, cfg: Influx, spool_dir: str | Path) -> InfluxSink:
        spool = Spool(spool_dir, int(cfg.spool_quota_mb * 1024 * 1024), cfg.overflow)
        uploader = Uploader(
            spool, writer_from_config(cfg), batch_lines=cfg.batch_lines, batch_bytes=cfg.batch_bytes
        )
        return cls(spool, uploader)

    def write_lines(self, lines: bytes) -> bool:
        """Spool encoded lines; False if the overflow policy dropped them (counted)."""
        ok = self.spool.append(lines)
        self.uploader.notify()
        return ok

    async def run(self) -> None:
        await self.uploader.run()

    async def aclose(self, timeout_s: float = 5.0) -> None:
        await self.uploader.aclose(timeout_s)
        self.spool.close()

    def stats(self) -> dict[str, float | int | bool]:
        return self.uploader.stats()
