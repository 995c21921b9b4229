"""Lab assays posted by the ship's lab to `<prefix>/lab/assay` (ICD "Lab assays").

The topic is an input anyone on the ship's network can write to, so every message is treated as
hostile until checked, cheapest checks first and all of them before the payload can cost memory
or stack: size, UTF-8, JSON nesting depth (a scan, no recursion), then JSON, then the schema
(`Assay`: known keys only, printable `sample_id`, ISO 8601 `sampled_at` with a UTC offset, finite
numbers, `u_rey_ppm > 0`), then the installation's limits (`config.LabAssays`): grade within
`rey_ppm_min..rey_ppm_max`, `u_rey_ppm < rey_ppm`, Dy and Tb not above the REY total, and
`sampled_at` no older than `max_age_days` and no later than `max_future_s` after now (a far-future
assay would outrank every real one, and past year 2262 it does not fit the ns time base).

`parse_assay` raises `AssayError` (a `ValueError`) and nothing else; its `reason` is a short key
for counters (`size`, `encoding`, `depth`, `json`, `schema`, `range`, `window`, `duplicate`) and
its message says what was wrong, ready for the log line. `AssayGate` adds the memory of sample ids
already accepted (bounded, oldest forgotten first): a repeated `sample_id` is rejected as
`DuplicateAssay`, so a correction must come under a new id. A rejected assay is never applied.
"""

from __future__ import annotations

import json
import time
from collections import OrderedDict
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from chikyu_daq.config.model import LabAssays
from chikyu_daq.store.events import AssayEvent

__all__ = ["Assay", "AssayError", "AssayGate", "DuplicateAssay", "parse_assay"]

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_NS_PER_DAY = 86_400 * 1_000_000_000
REASONS = ("size", "encoding", "depth", "json", "schema", "range", "window", "duplicate")


class AssayError(ValueError):
    """A lab message that must not be applied; the message says why, `reason` is its class."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class DuplicateAssay(AssayError):
    """A `sample_id` that was accepted before (a re-post or a retained message seen again)."""

    def __init__(self, sample_id: str) -> None:
        super().__init__("duplicate", f"sample_id {sample_id!r} was already accepted")
        self.sample_id = sample_id


class Assay(BaseModel):
    """One lab result: REY grade on a dry-solids basis, ppm, with its standard uncertainty."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)

    # printable ASCII, no leading space: it goes into log lines and events.jsonl
    sample_id: Annotated[str, Field(pattern=r"^[!-~][ -~]{0,63}$")]
    sampled_at: datetime
    rey_ppm: Annotated[float, Field(gt=0.0, allow_inf_nan=False, strict=True)]
    u_rey_ppm: Annotated[float, Field(gt=0.0, allow_inf_nan=False, strict=True)]
    dy_ppm: Annotated[float | None, Field(ge=0.0, allow_inf_nan=False, strict=True)] = None
    tb_ppm: Annotated[float | None, Field(ge=0.0, allow_inf_nan=False, strict=True)] = None

    @field_validator("sampled_at", mode="before")
    @classmethod
    def _iso_string(cls, value: Any) -> Any:
        if not isinstance(value, str) or len(value) > 40:
            raise ValueError("must be an ISO 8601 string with a UTC offset")
        return value

    @field_validator("sampled_at")
    @classmethod
    def _aware_utc(cls, value: datetime) -> datetime:
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("must carry a timezone (e.g. 2026-02-01T03:12:00Z)")
        try:
            return value.astimezone(UTC)
        except OverflowError:  # year 1 or 9999 with an offset
            raise ValueError("is outside the representable range") from None

    @property
    def sampled_at_ns(self) -> int:
        """`sampled_at` as UTC nanoseconds (the project's time base)."""
        delta = self.sampled_at - _EPOCH
        return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1000

    def to_event(self) -> AssayEvent:
        """The recorded form, stamped at the sampling time."""
        doc = self.model_dump(mode="json")
        return AssayEvent(
            self.sampled_at_ns, self.rey_ppm, self.u_rey_ppm, self.sample_id, doc["sampled_at"],
            self.dy_ppm, self.tb_ppm,
        )  # fmt: skip


def json_depth_exceeds(text: str, limit: int) -> bool:
    """True when `[`/`{` nest deeper than `limit` outside strings: a linear scan, no recursion."""
    depth = 0
    in_string = escaped = False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "[{":
            depth += 1
            if depth > limit:
                return True
        elif ch in "]}":
            depth -= 1
    return False


def _schema_reason(exc: ValidationError) -> str:
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: "
        f"{'unknown key' if e['type'] == 'extra_forbidden' else e['msg']}"
        for e in exc.errors()
    )


def _decode(payload: bytes | str, limits: LabAssays) -> dict[str, Any]:
    size = len(payload)  # for a str a lower bound of its UTF-8 size, exact below the limit
    if isinstance(payload, str) and size <= limits.max_payload_bytes:
        size = len(payload.encode("utf-8", "surrogatepass"))
    if size > limits.max_payload_bytes:
        raise AssayError("size", f"payload of {size} bytes exceeds {limits.max_payload_bytes}")
    try:
        text = payload.decode("utf-8") if isinstance(payload, bytes | bytearray) else payload
    except UnicodeDecodeError as exc:
        raise AssayError("encoding", f"not UTF-8: {exc.reason} at byte {exc.start}") from None
    if json_depth_exceeds(text, limits.max_depth):
        raise AssayError("depth", f"JSON nested deeper than {limits.max_depth}")
    try:
        doc = json.loads(text)  # NaN/Infinity parse; the schema rejects them, naming the key
    except ValueError as exc:  # JSONDecodeError, an integer of more than 4300 digits
        raise AssayError("json", f"not JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise AssayError("json", f"expected a JSON object, got {type(doc).__name__}")
    return doc


def _check_limits(a: Assay, limits: LabAssays, now_ns: int) -> None:
    if not limits.rey_ppm_min <= a.rey_ppm <= limits.rey_ppm_max:
        raise AssayError(
            "range",
            f"rey_ppm {a.rey_ppm:.6g} outside {limits.rey_ppm_min:g}..{limits.rey_ppm_max:g}",
        )
    if a.u_rey_ppm >= a.rey_ppm:
        raise AssayError("range", f"u_rey_ppm {a.u_rey_ppm:.6g} not below rey_ppm")
    for name in ("dy_ppm", "tb_ppm"):
        v = getattr(a, name)
        if v is not None and v > a.rey_ppm:
            raise AssayError("range", f"{name} {v:.6g} above the REY total {a.rey_ppm:.6g}")
    t = a.sampled_at_ns
    oldest = now_ns - int(limits.max_age_days * _NS_PER_DAY)
    newest = now_ns + int(limits.max_future_s * 1e9)
    if not oldest <= t <= newest:
        when = "in the future" if t > newest else "too old"
        raise AssayError(
            "window",
            f"sampled_at {a.sampled_at.isoformat()} is {when} (accepted: "
            f"{limits.max_age_days:g} days before to {limits.max_future_s:g} s after now)",
        )


def parse_assay(
    payload: bytes | str, limits: LabAssays | None = None, *, now_ns: int | None = None
) -> Assay:
    """Validate one MQTT payload against `limits` at `now_ns`; raises `AssayError` (why)."""
    limits = limits if limits is not None else LabAssays()
    doc = _decode(payload, limits)
    try:
        assay = Assay.model_validate(doc)
    except ValidationError as exc:
        raise AssayError("schema", _schema_reason(exc)) from None
    _check_limits(assay, limits, time.time_ns() if now_ns is None else now_ns)
    return assay


class AssayGate:
    """`parse_assay` plus the bounded memory of accepted sample ids (duplicates rejected)."""

    def __init__(self, limits: LabAssays | None = None) -> None:
        self.limits = limits if limits is not None else LabAssays()
        self._seen: OrderedDict[str, None] = OrderedDict()

    def check(self, payload: bytes | str, *, now_ns: int | None = None) -> Assay:
        """The assay if it may be applied, remembered as seen; else `AssayError`."""
        assay = parse_assay(payload, self.limits, now_ns=now_ns)
        if assay.sample_id in self._seen:
            self._seen.move_to_end(assay.sample_id)
            raise DuplicateAssay(assay.sample_id)
        self._seen[assay.sample_id] = None
        while len(self._seen) > self.limits.dedupe_ids:
            self._seen.popitem(last=False)
        return assay

    def __len__(self) -> int:
        return len(self._seen)
