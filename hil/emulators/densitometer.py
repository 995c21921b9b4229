"""DT-201 emulator: device-paced NMEA-style sentences over TCP or a pseudo-terminal.

Sentences are encoded from the config's `SentenceMap` (field positions and formats); decimals
per field come from the ICD (density 2 places, temperature 1). Any byte received is counted in
`rx_bytes`: the DAQ must never send one. A diagnostic `$PDNSD` goes out once a minute, and
optionally an unknown sentence type, to exercise the parser's "ignore" path. For hostile-input
tests the `override` fault puts a field's literal text (or a number's repr) in every sentence,
and `send_raw` writes any bytes between sentences.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections.abc import Callable

from drivers.sentence import frame_sentence
from drivers.spec import SentenceMap
from hil.emulators.links import Link, LinkServer, Mode
from hil.emulators.source import ValueSource
from hil.faults import FaultSet

#: ICD decimals per float field name.
DECIMALS: dict[str, int] = {"density": 2, "temperature": 1}


class DensitometerEmulator(LinkServer):
    def __init__(
        self,
        device_id: str,
        smap: SentenceMap,
        source: ValueSource,
        *,
        mode: Mode = "tcp",
        host: str = "127.0.0.1",
        port: int = 0,
        period_s: float = 0.5,
        diag_period_s: float = 60.0,
        unknown_every: int = 0,
        clock_s: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(mode=mode, host=host, port=port)
        self.device_id = device_id
        self.smap = smap
        self.source = source
        self.period_s = period_s
        self.diag_period_s = diag_period_s
        self.unknown_every = unknown_every
        self.clock_s = clock_s
        self.faults = FaultSet()
        self.seq = 0
        self.sent = 0
        self._task: asyncio.Task[None] | None = None
        self._rng = random.Random(0xD7)
        self._t_start = 0.0

    def set_fault(self, device_id: str, kind: str, **params: object) -> None:
        if device_id != self.device_id:
            raise KeyError(device_id)
        if kind == "disconnect":
            self.disconnect(float(params.get("down_s", 0.0)))  # type: ignore[arg-type]
            return
        self.faults.set(kind, **params)

    def clear_fault(self, device_id: str, kind: str | None = None) -> None:
        self.faults.clear(kind)

    def on_data(self, link: Link, data: bytes) -> None:
        """Nothing to do: the count in rx_bytes is the evidence."""

    def sentence_body(self, t_s: float) -> str:
        values = self.source.values(t_s)
        parts: dict[int, str] = {}
        ov = self.faults.get("override")
        for f in self.smap.fields:
            if ov is not None and ov["field"] in (f.name, f"{self.device_id}.{f.name}"):
                val = ov["value"]
                parts[f.position] = val if isinstance(val, str) else repr(float(val))
                continue
            if f.name == self.smap.sequence_field:
                parts[f.position] = str(self.seq)
                continue
            v = values.get(f"{self.device_id}.{f.name}", 0.0)
            v = 0.0 if math.isnan(v) else v
            if f.format == "hex":
                sb = self.faults.get("status_bits")
                raw = int(v) | (int(sb["bits"]) if sb and sb["field"] == f.name else 0)
                parts[f.position] = f"{raw & 0xFFFF:04X}"
            elif f.format == "int":
                parts[f.position] = str(round(v))
            else:
                parts[f.position] = f"{v:.{DECIMALS.get(f.name, 2)}f}"
        n = max(parts) + 1 if parts else 0
        return ",".join([self.smap.tag, *(parts.get(i, "") for i in range(n))])

    def _wire(self, body: str) -> bytes:
        line = frame_sentence(body)
        if "bad_checksum" in self.faults:
            cs = int(line[-4:-2], 16) ^ 0x5A
            line = line[:-4] + f"{cs:02X}".encode() + b"\r\n"
        if "truncated" in self.faults:
            line = line[: len(line) // 2]
        if "garbled" in self.faults:
            noise = bytes(self._rng.choice(b"0123456789ABCDEF,.*#!~ ") for _ in range(8))
            i = self._rng.randrange(1, len(line) - 2)
            line = line[:i] + noise + line[i:]
        return line

    def send_raw(self, data: bytes) -> None:
        """Put `data` on the wire now, between sentences, as it is (hostile byte streams)."""
        for link in list(self.links):
            link.write(data)

    def emit(self) -> None:
        """Produce one period's output (also callable directly by tests)."""
        t_s = self.clock_s()
        if "no_reply" in self.faults:
            return
        skip = self.faults.get("seq_skip")
        if skip is not None:
            self.seq = (self.seq + int(skip["n"])) % self.smap.sequence_modulo
            self.faults.clear("seq_skip")
        out = self._wire(self.sentence_body(t_s))
        self.sent += 1
        if "frozen_counter" not in self.faults:
            self.seq = (self.seq + 1) % self.smap.sequence_modulo
        if self.unknown_every and self.sent % self.unknown_every == 0:
            out += frame_sentence("GPZDA,120000.00,01,02,2026,00,00")
        if self.diag_period_s and t_s - self._t_start >= self.diag_period_s:
            self._t_start = t_s
            out += frame_sentence(f"PDNSD,87.5,1325,{int(t_s) % 10_000_000}")
        for link in list(self.links):
            link.write(out)

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        next_t = loop.time()
        while True:
            self.emit()
            next_t += self.period_s
            now = loop.time()
            if next_t < now:
                next_t = now + self.period_s
            await asyncio.sleep(next_t - now)

    async def start(self) -> None:
        await super().start()
        self._t_start = self.clock_s()
        self._task = asyncio.create_task(self._run(), name=f"emulator {self.device_id}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await super().stop()
