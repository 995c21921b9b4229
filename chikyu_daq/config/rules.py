"""The value rules a config is held to, shared by the models (`config`) and the cross-key
checks (`config_checks`): templates, topic prefixes, client ids, URLs, and the issue record."""

from __future__ import annotations

import string
from dataclasses import dataclass
from urllib.parse import urlsplit

#: Placeholders a string template may use (`prefix = "chikyu/{vessel}"`); the one expansion
#: is `expand()`, so anything else (`{ship}`, `{0}`, `{vessel!r}`) is a config error.
TEMPLATE_FIELDS = ("vessel",)


def template_issue(template: str) -> str | None:
    """Why `template` cannot be expanded with TEMPLATE_FIELDS, or None if it can."""
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as err:  # a lone "{" or "}"
        return f"malformed template ({err}); write {{{{ or }}}} for a literal brace"
    known = ", ".join(f"{{{f}}}" for f in TEMPLATE_FIELDS)
    for _, name, spec, conv in parts:
        if name is None:
            continue
        if name not in TEMPLATE_FIELDS or spec or conv:
            shown = "{" + name + (f"!{conv}" if conv else "") + (f":{spec}" if spec else "") + "}"
            return f"unknown placeholder {shown} (known: {known})"
    return None


def expand(template: str, vessel: str) -> str:
    return template.format(vessel=vessel)


#: MQTT allows 65535 bytes per topic; the prefix is kept far below that so every topic under
#: it (`<prefix>/alarms/SENSOR_FAULT(ft201.volume_flow)`...) stays short on the wire.
MQTT_PREFIX_MAX_BYTES = 1024
#: MQTT 3.1.1 guarantees 23 bytes, brokers accept more; longer than this is a mistake.
MQTT_CLIENT_ID_MAX = 128


def topic_prefix_issue(prefix: str) -> str | None:
    """Why `prefix` (expanded) cannot prefix a topic the DAQ publishes to, or None."""
    try:
        size = len(prefix.encode("utf-8"))
    except UnicodeEncodeError:
        return "not valid UTF-8"
    if size > MQTT_PREFIX_MAX_BYTES:
        return f"topic prefix is {size} bytes, at most {MQTT_PREFIX_MAX_BYTES}"
    if "+" in prefix or "#" in prefix:
        return f"wildcards + and # cannot be published to (got {prefix!r})"
    if prefix.startswith("$"):
        return f"topics starting with $ belong to the broker (got {prefix!r})"
    if "" in prefix.split("/"):
        return f"empty topic level: no leading, trailing or double / (got {prefix!r})"
    return None


def client_id_issue(client_id: str) -> str | None:
    """Why `client_id` (expanded) is not a usable MQTT client identifier, or None."""
    if not 1 <= len(client_id) <= MQTT_CLIENT_ID_MAX:
        return f"client id must be 1-{MQTT_CLIENT_ID_MAX} characters, got {len(client_id)}"
    if not client_id.isascii() or not client_id.isprintable() or " " in client_id:
        return f"client id must be printable ASCII without spaces (got {client_id!r})"
    return None


def url_issue(url: str) -> str | None:
    """Why `url` is not an http(s) URL of a server, or None."""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as err:
        return f"not a URL: {err} (got {url!r})"
    if parts.scheme not in {"http", "https"}:
        return f"expected an http:// or https:// URL (got {url!r})"
    if not parts.hostname or any(c.isspace() for c in url):
        return f"expected http(s)://host[:port][/path] (got {url!r})"
    if port == 0:
        return f"port 0 (got {url!r})"
    if parts.username is not None or parts.password is not None:
        return "credentials do not belong in the URL: use *_env or *_file"
    if parts.query or parts.fragment:
        return f"no query or fragment expected (got {url!r})"
    return None


@dataclass(frozen=True)
class ConfigIssue:
    """One thing wrong with a config file, located by key path (and line if TOML knows it)."""

    path: str
    message: str
    line: int | None = None

    def format(self, file: str) -> str:
        where = f"{file}:{self.line}" if self.line else file
        return f"{where}: {self.path or '<top level>'}: {self.message}"
