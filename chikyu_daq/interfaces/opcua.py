"""OPC UA server (asyncua): live channels, results, and alarms as Part 9 conditions.

Address space, in the configured namespace (`ns`), under Objects/Chikyu:

    Channels/<device>/<name>   Double: newest raw sample; SourceTimestamp = its t_ns (to the
                               microsecond, OPC UA DateTime's 100 ns ticks via datetime);
                               StatusCode from quality (GOOD→Good, UNCERTAIN→Uncertain, BAD→Bad)
    Results/<field>            Double: newest result row; status from `q_yield`/`q_stability`
    Alarms/<NAME>/State        String: lifecycle state (`chikyu_daq.alarms.states`)
    Alarms/<NAME>/Active, Acked, Shelved   Boolean; Alarms/<NAME>/Priority  String
    Conditions/<NAME>          AlarmConditionType instance (Part 9): ActiveState, AckedState,
                               EnabledState (False while out of service), SuppressedState,
                               ShelvingState/CurrentState, MaxTimeShelved, Severity (priority),
                               Retain (active or unacknowledged)

Every lifecycle change of an alarm fires its condition's event from the Server object (so
ConditionRefresh, asyncua's own, re-sends the retained ones). Acknowledge (on the instance or
AcknowledgeableConditionType's method with the condition as object) is routed to the daemon's
alarm manager, the same as the CLI and MQTT, operator `opcua`, the comment as reason (required);
so are ShelvedStateMachineType's TimedShelve2 (ShelvingTime ms, Comment), OneShotShelve2 and
Unshelve2 (Comment), called with the condition's ShelvingState as object (the manager enforces
`max_shelve_s`, shown as MaxTimeShelved); the comment-less TimedShelve/OneShotShelve/Unshelve
are refused (BadInvalidArgument: a shelve needs a reason). With `commands = false` (the
default) every command is refused with BadUserAccessDenied. Not modelled: UnshelveTime, latched,
Confirm, Enable/Disable and Suppress methods (out of service and suppression come from config).
Nothing else is writable. Values are copied from the pipeline's live view every `update_s`,
on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from asyncua import Server, ua

from chikyu_daq.config.model import OpcUa
from chikyu_daq.sinks.fanout import STABILITY_FIELDS, YIELD_FIELDS

if TYPE_CHECKING:
    from chikyu_daq.alarms.states import AlarmBook, AlarmStatus
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
#: Alarm priority → Part 9 Severity (1-1000).
SEVERITY = {"low": 250, "medium": 500, "high": 750, "critical": 1000}
#: Our shelve → ShelvingState's CurrentState (ShelvedStateMachineType's state names).
SHELVING = {None: "Unshelved", False: "TimedShelved", True: "OneShotShelved"}
#: An alarm command (`AlarmManager.command`'s document) → its reply.
Command = Callable[[dict[str, Any]], dict[str, Any]]
#: Part 9 shelving methods with a comment (ShelvedStateMachineType's, called with the
#: condition's ShelvingState as object) → the alarm manager's action.
SHELVE_METHODS = {
    ua.ObjectIds.ShelvedStateMachineType_TimedShelve2: "shelve",
    ua.ObjectIds.ShelvedStateMachineType_OneShotShelve2: "one_shot",
    ua.ObjectIds.ShelvedStateMachineType_Unshelve2: "unshelve",
}
#: The instance's methods without a comment: refused, a shelve needs a reason.
REFUSED_METHODS = ("TimedShelve", "OneShotShelve", "Unshelve")
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
    def __init__(
        self,
        cfg: OpcUa,
        view: LiveView,
        book: AlarmBook,
        channels: list[str],
        command: Command | None = None,
    ) -> None:
        """`command`: the alarm manager's, used only if `cfg.commands` (else refused)."""
        self.cfg = cfg
        self.command = command if cfg.commands else None
        self.view = view
        self.book = book
        self.channels = channels
        self.server = Server()
        self.ns = 0
        self._vars: dict[str, Any] = {}
        self._alarm_vars: dict[str, dict[str, Any]] = {}
        #: per alarm: its condition node, event generator, and the change last sent
        self._conds: dict[str, tuple[Any, Any]] = {}
        self._cond_by_node: dict[ua.NodeId, str] = {}
        self._shelving_by_node: dict[ua.NodeId, str] = {}
        self._cond_sent: dict[str, tuple[Any, ...]] = {}
        self._written: dict[str, int] = {}
        self.updates = 0

    async def start(self) -> None:
        s = self.server
        s.iserver.bind_condition_methods = True  # ConditionRefresh(2), asyncua's, re-sends
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
        await self._conditions(root)
        await s.start()
        log.info("OPC UA server on %s (security %s)", self.cfg.endpoint, self.cfg.security_policy)

    async def _conditions(self, root: Any) -> None:
        """An AlarmConditionType instance per alarm, its event generator and methods."""
        s, folder = self.server, await root.add_folder(self.ns, "Conditions")
        ctype = ua.NodeId(ua.Int32(ua.ObjectIds.AlarmConditionType))
        for name in sorted(self.book.alarms):
            nid = node_id(f"conditions.{name}", self.ns)
            cond = await folder.add_object(nid, name, objecttype=ctype)
            gen = await s.get_event_generator(ctype)  # emitted by the Server object
            ev = gen.event
            ev.NodeId, ev.SourceNode, ev.SourceName = cond.nodeid, cond.nodeid, name
            ev.ConditionName = name
            # on the node only: asyncua cannot encode a Duration (a Double subtype) in an event
            max_ms = self.book.max_shelve_s * 1000.0
            await self._write_child(cond, "MaxTimeShelved", max_ms, ua.VariantType.Double)
            await self._write_child(cond, "ConditionName", name, ua.VariantType.String)
            s.link_method(await cond.get_child("0:Acknowledge"), self._acknowledge)
            shelving = await cond.get_child("0:ShelvingState")
            for method in REFUSED_METHODS:
                s.link_method(await shelving.get_child(f"0:{method}"), _refuse_shelving)
            self._conds[name] = (cond, gen)
            self._cond_by_node[cond.nodeid] = name
            self._shelving_by_node[shelving.nodeid] = name
        ack_type = ua.NodeId(ua.Int32(ua.ObjectIds.AcknowledgeableConditionType_Acknowledge))
        s.link_method(s.get_node(ack_type), self._acknowledge)
        for mid, action in SHELVE_METHODS.items():
            s.link_method(s.get_node(ua.NodeId(ua.Int32(mid))), self._shelver(action))

    async def _write_child(self, node: Any, path: str, value: Any, vt: ua.VariantType) -> None:
        child = await node.get_child([f"0:{p}" for p in path.split("/")])
        await self.server.write_attribute_value(child.nodeid, ua.DataValue(ua.Variant(value, vt)))

    async def _acknowledge(self, parent: ua.NodeId, *args: ua.Variant) -> ua.StatusCode:
        """Part 9 Acknowledge(EventId, Comment) → the alarm manager's `ack`."""
        if len(args) != 2:
            return status(ua.StatusCodes.BadArgumentsMissing)
        doc = {"action": "ack", "alarm": self._cond_by_node.get(parent)}
        return await self._command(
            doc, args[1].Value, ua.StatusCodes.BadConditionBranchAlreadyAcked
        )

    def _shelver(self, action: str) -> Callable[..., Any]:
        """TimedShelve2(ShelvingTime ms, Comment), OneShotShelve2(Comment), Unshelve2(Comment)
        → the alarm manager's `shelve` (with `duration_s`, or `one_shot`) or `unshelve`."""

        async def call(parent: ua.NodeId, *args: ua.Variant) -> ua.StatusCode:
            if len(args) != (2 if action == "shelve" else 1):
                return status(ua.StatusCodes.BadArgumentsMissing)
            doc: dict[str, Any] = {"alarm": self._shelving_by_node.get(parent)}
            if action == "shelve":
                doc.update(action="shelve", duration_s=float(args[0].Value) / 1000.0)
            elif action == "one_shot":
                doc.update(action="shelve", one_shot=True)
            else:
                doc.update(action="unshelve")
            return await self._command(doc, args[-1].Value, ua.StatusCodes.BadConditionNotShelved)

        return call

    async def _command(self, doc: dict[str, Any], comment: Any, refused: int) -> ua.StatusCode:
        """An operator command from a client, the same as the CLI's and MQTT's: operator
        `opcua`, the comment as reason (required); refused unless `commands` is on."""
        if doc["alarm"] is None:
            return status(ua.StatusCodes.BadNodeIdUnknown)
        if self.command is None:
            return status(ua.StatusCodes.BadUserAccessDenied)
        text = getattr(comment, "Text", None)
        if not text:  # an operator says why
            return status(ua.StatusCodes.BadInvalidArgument)
        reply = self.command({**doc, "operator": "opcua", "reason": str(text)})
        if not reply.get("accepted"):
            log.warning("OPC UA %s of %s refused: %s", doc["action"], doc["alarm"], reply)
            return status(refused)
        await self._update_conditions()
        return status(ua.StatusCodes.Good)

    async def _update_conditions(self) -> None:
        """Write each condition's states; fire its event when its lifecycle changed."""
        for name, (cond, gen) in self._conds.items():
            st = self.book.get(name)
            states = _condition_states(st)
            key = (*states.values(), st.last_change_ns)
            if self._cond_sent.get(name) == key:
                continue
            ev = gen.event
            for path, (value, vt) in states.items():
                await self._write_child(cond, path, value, vt)
                if path in ev.data_types:  # asyncua's event omits optional ShelvingState
                    setattr(ev, path, value)
            ev.Message = ua.LocalizedText(f"{name}: {st.state}")
            t = source_time(st.last_change_ns) if st.last_change_ns else None
            await gen.trigger(time_attr=t)
            self._cond_sent[name] = key

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
        await self._update_conditions()
        self.updates += 1

    async def aclose(self) -> None:
        await self.server.stop()


def _text(on: bool, yes: str, no: str) -> tuple[Any, ua.VariantType]:
    return ua.LocalizedText(yes if on else no), ua.VariantType.LocalizedText


def _condition_states(st: AlarmStatus) -> dict[str, tuple[Any, ua.VariantType]]:
    """The Part 9 fields (browse paths under the condition) of one alarm's status."""
    b = ua.VariantType.Boolean
    enabled = st.out_of_service is None
    shelving = SHELVING[None if st.shelve is None else st.shelve.one_shot]
    return {
        "EnabledState": _text(enabled, "Enabled", "Disabled"),
        "EnabledState/Id": (enabled, b),
        "ActiveState": _text(st.active, "Active", "Inactive"),
        "ActiveState/Id": (st.active, b),
        "AckedState": _text(st.acked, "Acknowledged", "Unacknowledged"),
        "AckedState/Id": (st.acked, b),
        "SuppressedState": _text(st.suppressed is not None, "Suppressed", "Unsuppressed"),
        "SuppressedState/Id": (st.suppressed is not None, b),
        "ShelvingState/CurrentState": (ua.LocalizedText(shelving), ua.VariantType.LocalizedText),
        "SuppressedOrShelved": (st.suppressed is not None or st.shelve is not None, b),
        "Severity": (SEVERITY.get(st.priority, 500), ua.VariantType.UInt16),
        "Retain": (st.active or not st.acked, b),
    }


async def _refuse_shelving(parent: ua.NodeId, *args: Any) -> ua.StatusCode:
    """TimedShelve, OneShotShelve, Unshelve carry no comment: a shelve needs a reason."""
    return status(ua.StatusCodes.BadInvalidArgument)
