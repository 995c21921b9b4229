"""Throwaway PKI and TLS-enabled test servers (influxd https + auth, mosquitto TLS + passwords).

`make_pki(dir, name)` creates a CA and a server certificate for `127.0.0.1` / `localhost` (both in
the subjectAltName) with the `openssl` CLI; P-256 keys keep it fast. The certificates carry the
extensions Python's strict verification wants (CA keyUsage, SKI/AKI, serverAuth).
"""

from __future__ import annotations

import base64
import json
import os
import ssl
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.servers import Influxd, Mosquitto, http_answers, require_binary

__all__ = ["Pki", "TlsInfluxd", "TlsMosquitto", "make_pki"]


@dataclass(frozen=True)
class Pki:
    ca_cert: Path
    server_cert: Path
    server_key: Path

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_cert))


def _openssl(*args: str, cwd: Path) -> None:
    exe = require_binary("openssl", "openssl")
    out = subprocess.run([exe, *args], cwd=cwd, capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, f"openssl {' '.join(args)} failed:\n{out.stderr}"


def make_pki(directory: Path, name: str) -> Pki:
    """A fresh CA named `name` and a server certificate it signed, under `directory`."""
    directory.mkdir(parents=True, exist_ok=True)
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    _openssl(
        "req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
        "-subj", f"/CN={name} test CA",
        "-addext", "basicConstraints=critical,CA:TRUE",
        "-addext", "keyUsage=critical,keyCertSign,cRLSign",
        cwd=directory,
    )  # fmt: skip
    _openssl(
        "req", "-new", *ec, "-keyout", "server.key", "-out", "server.csr",
        "-subj", "/CN=localhost",
        cwd=directory,
    )  # fmt: skip
    (directory / "server.ext").write_text(
        "subjectAltName = IP:127.0.0.1, DNS:localhost\n"
        "basicConstraints = critical, CA:FALSE\n"
        "keyUsage = critical, digitalSignature, keyEncipherment\n"
        "extendedKeyUsage = serverAuth\n"
        "subjectKeyIdentifier = hash\n"
        "authorityKeyIdentifier = keyid, issuer\n"
    )
    _openssl(
        "x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
        "-set_serial", "1", "-days", "2", "-extfile", "server.ext", "-out", "server.pem",
        cwd=directory,
    )  # fmt: skip
    return Pki(directory / "ca.pem", directory / "server.pem", directory / "server.key")


class TlsInfluxd(Influxd):
    """influxd with `https-enabled` and `auth-enabled`; the first admin user is made by `start`."""

    def __init__(self, workdir: Path, pki: Pki, admin: str, admin_password: str) -> None:
        super().__init__(workdir)
        self.pki = pki
        self.admin = admin
        self.admin_password = admin_password
        self.ssl = pki.client_context()
        conf = self.conf.read_text()
        https = (
            "[http]\n"
            "  https-enabled = true\n"
            f'  https-certificate = "{pki.server_cert}"\n'
            f'  https-private-key = "{pki.server_key}"\n'
            "  auth-enabled = true\n"
        )
        assert "[http]\n" in conf
        self.conf.write_text(conf.replace("[http]\n", https, 1))

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def ready(self) -> bool:
        return http_answers(f"{self.url}/ping", 204, self.ssl)

    def start(self, timeout_s: float = 20.0) -> None:
        super().start(timeout_s)
        # With auth enabled and no user yet, influxd accepts exactly this statement unauthenticated.
        self._post(f"CREATE USER \"{self.admin}\" WITH PASSWORD '{self.admin_password}' "
                   "WITH ALL PRIVILEGES", auth=False)  # fmt: skip

    def _post(self, q: str, *, auth: bool = True) -> dict[str, Any]:
        data = urllib.parse.urlencode({"q": q}).encode()
        req = urllib.request.Request(f"{self.url}/query", data=data, headers=self._auth(auth))
        with urllib.request.urlopen(req, timeout=10, context=self.ssl) as r:
            assert r.status == 200
            return dict(json.loads(r.read()))

    def _auth(self, auth: bool) -> dict[str, str]:
        if not auth:
            return {}
        basic = base64.b64encode(f"{self.admin}:{self.admin_password}".encode()).decode()
        return {"Authorization": f"Basic {basic}"}

    def query(self, q: str, db: str = "") -> dict[str, Any]:
        params = {"q": q, "epoch": "ns"}
        if db:
            params["db"] = db
        req = urllib.request.Request(
            f"{self.url}/query?{urllib.parse.urlencode(params)}", headers=self._auth(True)
        )
        with urllib.request.urlopen(req, timeout=10, context=self.ssl) as r:
            return dict(json.loads(r.read()))

    def create_db(self, name: str) -> None:
        self._post(f'CREATE DATABASE "{name}"')


class TlsMosquitto(Mosquitto):
    """mosquitto with one TLS listener, no anonymous access, one user in a password file."""

    def __init__(self, workdir: Path, pki: Pki, user: str, password: str) -> None:
        super().__init__(workdir)
        self.pki = pki
        self.user = user
        passwd = workdir / "passwd"
        exe = require_binary("mosquitto_passwd", "mosquitto")
        out = subprocess.run(
            [exe, "-b", "-c", str(passwd), user, password],
            capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert out.returncode == 0, f"mosquitto_passwd failed: {out.stderr}"
        # As root, mosquitto would drop to the `mosquitto` user, which cannot read our temp dir.
        run_as = "user root\n" if os.geteuid() == 0 else ""
        self.conf.write_text(
            f"{run_as}per_listener_settings false\n"
            f"listener {self.port} 127.0.0.1\n"
            f"cafile {pki.ca_cert}\ncertfile {pki.server_cert}\nkeyfile {pki.server_key}\n"
            "require_certificate false\n"
            f"allow_anonymous false\npassword_file {passwd}\n"
            "persistence false\nlog_dest stdout\n"
        )

    def client(
        self, tool: str, *args: str, password: str, timeout_s: float = 10, check: bool = True
    ) -> str:
        """Run `mosquitto_sub` / `mosquitto_pub` over TLS as our user; stdout."""
        ca = str(self.pki.ca_cert)
        cmd = self.tool(tool, "--cafile", ca, "-u", self.user, "-P", password, *args)
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout_s)
        assert out.returncode == 0 or not check, f"{tool} failed ({out.returncode}): {out.stderr}"
        return out.stdout
