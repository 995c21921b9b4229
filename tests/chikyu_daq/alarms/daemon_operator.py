"""An operator of the running daemon, for the tests that command it: over MQTT as a SCADA would
(watches topics, sends a command and waits for its reply on a `.../reply` topic), and with the
CLI over the daemon's control socket."""

from __future__ import annotations

import json
import subprocess
import threading
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho

from tests.servers import CLI, REPO, wait_until


class MqttOperator:
    """Subscribes to `topics` on the broker at `port`; replies are collected in order, every
    other message is handed to `take` (under `lock`)."""

    def __init__(self, port: int, topics: list[str]) -> None:
        self.replies: list[dict[str, Any]] = []
        self.lock = threading.Lock()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="operator")
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        for topic in topics:
            self.client.subscribe(topic, qos=1)
        self.client.loop_start()

    def take(self, topic: str, doc: dict[str, Any]) -> None:
        """A message that is not a reply (the subclass keeps what it watches)."""

    def _on_message(self, _c: Any, _u: Any, msg: Any) -> None:
        doc = json.loads(msg.payload)
        with self.lock:
            if msg.topic.endswith("/reply"):
                self.replies.append(doc)
            else:
                self.take(msg.topic, doc)

    def command(self, topic: str, payload: bytes | dict[str, Any]) -> dict[str, Any]:
        """Publish `payload` (raw bytes, or a document as JSON) and wait for its reply."""
        n = len(self.replies)
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.client.publish(topic, body, qos=1)
        wait_until(lambda: len(self.replies) > n, 10)
        with self.lock:
            return self.replies[n]

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def control_cli(command: str, data_dir: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`chikyu-daq <command> <args> --data-dir <data_dir>` (the daemon's control socket)."""
    return subprocess.run(
        [*CLI, command, *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=REPO,
    )
