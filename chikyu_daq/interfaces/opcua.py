"""Read-only OPC UA server (asyncua): live channels, results and alarm states as variables.

Address space, in the configured namespace (`ns`), under Objects/Chikyu:

    Channels/<device>/<name>   Double: newest raw sample; SourceTimestamp = its t_ns (to the
                               microsecond, OPC UA DateTime's 100 ns ticks via datetime);
                               StatusCode from quality (GOOD→Good, UNCERTAIN→Uncertain, BAD→Bad)
    Results/<field>            Double: newest result row; status from `q_yield`/`q_stability`
    Alarms/<NAME>/State        String: lifecycle state (`chikyu_daq.alarms.states`)
    Alarms/<NAME>/Active, Acked, Shelved   Boolean; Alarms/<NAME>/Priority  String

Alarm states are plain variables, not OPC UA Part 9 condition instances: the server offers no
Acknowledge/Shelve methods, condition refresh or events, so a Part 9 client sees data, not
alarms. Nothing here is writable (the DAQ never takes orders over OPC UA). Values are copied
from the pipeline's live view every `update_s`, on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import math
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from asyncua import Server, ua

from chikyu_daq.config.model import OpcUa
from chikyu_daq.sinks.fanout import STABILITY_FIELDS, YIELD_FIELDS

if TYPE_CHECKING:
    from chikyu_daq.alarms.states import AlarmBook
    from chikyu_daq.live.pipeline import LiveView

log = logging.getLogger(__name__)

#: Quality code (DESIGN "Data model") → OPC UA status code.
STATUS = {
    0: ua.StatusCodes.Good,
    1: ua.StatusCodes.Uncertain,
    2: ua.StatusCodes.Bad,
}
RESULT_QUALITY = {
    **dict.fromkeys(YIELD_FIELDS, "q_yield"),
    **dict.fromkeys(STABILITY_FIELDS, "q_stability"),
}
POLICIES = {
    "None": ua.SecurityPolicyType.NoSecurity,
    "Basic256Sha256": ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
}


def source_time(t_ns: int) -> ua.DateTime:
    """UTC datetime of `t_ns` (microseconds: what OPC UA's DateTime carries through Python)."""
    return cast(ua.DateTime, datetime.fromtimestamp(t_ns // 1000 / 1e6, UTC))


def node_id(name: str, ns: int) -> ua.NodeId:
    return ua.NodeId(ua.String(name), ua.Int16(ns))


def status(code: int) -> ua.StatusCode:
    return ua.StatusCode(ua.UInt32(code))


def data_value(value: float, quality: int, t_ns: int) -> ua.DataValue:
    v = float(value)
    return ua.DataValue(
        ua.Variant(v, ua.VariantType.Double),
        StatusCode=status(STATUS.get(int(quality), ua.StatusCodes.Bad)),
        SourceTimestamp=source_time(t_ns),
        ServerTimestamp=cast(ua.DateTime, datetime.now(UTC)),
    )


class OpcUaServer:
    def __init__(self, cfg: OpcUa, view: LiveView, book: AlarmBook, channels: list[str]) -> None:
        self.cfg = cfg
        self.view = view
        self.book = book
        self.channels = channels
        self.server = Server()
        self.ns = 0
        self._vars: dict[str, Any] = {}
        self._alarm_vars: dict[str, dict[str, Any]] = {}
        self._written: dict[str, int] = {}
        self.updates = 0

    async def start(self) -> None:
        s = self.server
        await s.init()
        s.set_endpoint(self.cfg.endpoint)
        s.set_server_name("Chikyu DAQ")
        s.set_security_policy([POLICIES[self.cfg.security_policy]])
        if self.cfg.certificate_file and self.cfg.private_key_file:
            await s.load_certificate(self.cfg.certificate_file)
            await s.load_private_key(self.cfg.private_key_file)
        self.ns = await s.register_namespace(self.cfg.namespace)
        root = await s.nodes.objects.add_folder(self.ns, "Chikyu")
        chans = await root.add_folder(self.ns, "Channels")
        devices: dict[str, Any] = {}
        for ch in self.channels:
            dev, _, name = ch.partition(".")
            if dev not in devices:
                devices[dev] = await chans.add_folder(self.ns, dev)
            self._vars[ch] = await self._variable(devices[dev], f"{ch}", name)
        results = await root.add_folder(self.ns, "Results")
        for field in sorted(RESULT_QUALITY):
            self._vars[f"results.{field}"] = await self._variable(
                results, f"results.{field}", field
            )
        alarms = await root.add_folder(self.ns, "Alarms")
        for name in sorted(self.book.alarms):
            folder = await alarms.add_folder(self.ns, name)
            nodes = {}
            for leaf, init in (
                ("State", ""),
                ("Priority", ""),
                ("Active", False),
                ("Acked", True),
                ("Shelved", False),
            ):
                nid = node_id(f"alarms.{name}.{leaf}", self.ns)
                nodes[leaf] = await folder.add_variable(nid, leaf, init)
            self._alarm_vars[name] = nodes
        await s.start()
        log.info("OPC UA server on %s (security %s)", self.cfg.endpoint, self.cfg.security_policy)

    async def _variable(self, parent: Any, nid: str, name: str) -> Any:
        """A Double that says BadWaitingForInitialData until the first sample arrives."""
        var = await parent.add_variable(
            node_id(nid, self.ns), name, ua.Variant(math.nan, ua.VariantType.Double)
        )
        waiting = status(ua.StatusCodes.BadWaitingForInitialData)
        await self.server.write_attribute_value(
            var.nodeid, ua.DataValue(ua.Variant(), StatusCode=waiting)
        )
        return var

    async def run(self) -> None:
        while True:
            try:
                await self.update()
            except Exception:  # a bad value must not stop the server or the pipeline
                log.exception("OPC UA update failed")
            await asyncio.sleep(self.cfg.update_s)

    async def update(self) -> None:
        write = self.server.write_attribute_value
        for ch, s in list(self.view.latest.items()):
            var = self._vars.get(ch)
            if var is None or self._written.get(ch) == s.t_ns:
                continue
            await write(var.nodeid, data_value(s.value, s.quality, s.t_ns))
            self._written[ch] = s.t_ns
        r, t_ns = self.view.results, self.view.results_t_ns
        if t_ns and self._written.get("results") != t_ns:
            for field, qcol in RESULT_QUALITY.items():
                if field in r:
                    q = r.get(qcol, 2.0)
                    dv = data_value(r[field], int(q) if math.isfinite(q) else 2, t_ns)
                    await write(self._vars[f"results.{field}"].nodeid, dv)
            self._written["results"] = t_ns
        for name, nodes in self._alarm_vars.items():
            st = self.book.get(name)
            ts = source_time(st.last_change_ns) if st.last_change_ns else None
            for leaf, value in (
                ("State", st.state),
                ("Priority", st.priority),
                ("Active", st.active),
                ("Acked", st.acked),
                ("Shelved", st.shelve is not None),
            ):
                await write(nodes[leaf].nodeid, ua.DataValue(ua.Variant(value), SourceTimestamp=ts))
        self.updates += 1

    async def aclose(self) -> None:
        await self.server.stop()
