"""A real SMTP server for the SMTP tests and benchmark: Mailpit, as a local process.

Mailpit (built once from the Go module proxy by ``hack/build-mailpit.sh`` into
``~/.cache/notifq/bin/mailpit-<version>/``) accepts mail on a free loopback port
and keeps it in its own SQLite file; its HTTP API (another free port) tells what
it received: headers, bodies, counts. Options used here: plain, STARTTLS or
implicit TLS with a certificate of a CA made for the run (``tls``), AUTH with one
user and password (``auth``), and Chaos (``chaos``): SMTP errors injected on MAIL,
RCPT or AUTH with a probability, set through the API at run time.

This is a development tool, not part of the product.
"""

from __future__ import annotations

import json
import signal
import subprocess
import urllib.parse
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from testbed import ROOT, Proc, free_port, wait_for

Security = Literal["none", "starttls", "tls"]


def mailpit_bin() -> Path:
    """The Mailpit binary (built on first use, cached by version)."""
    out = subprocess.run(
        [str(ROOT / "hack" / "build-mailpit.sh")], check=True, capture_output=True, text=True
    )
    return Path(out.stdout.strip().splitlines()[-1])


def make_certificate(directory: Path, host: str = "localhost") -> tuple[Path, Path, Path]:
    """(CA certificate, server certificate, server key) for ``host`` and 127.0.0.1."""
    directory.mkdir(parents=True, exist_ok=True)
    ca_key, ca, key, csr, cert = (
        directory / n for n in ("ca.key", "ca.pem", "server.key", "server.csr", "server.pem")
    )
    ext = directory / "san.ext"
    ext.write_text(f"subjectAltName=DNS:{host},IP:127.0.0.1\n")

    def sh(*argv: str) -> None:
        subprocess.run(["openssl", *argv], check=True, capture_output=True)

    sh("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "30", "-subj",
       "/CN=notifq test CA", "-keyout", str(ca_key), "-out", str(ca))  # fmt: skip
    sh("req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN={host}",
       "-keyout", str(key), "-out", str(csr))  # fmt: skip
    sh("x509", "-req", "-in", str(csr), "-CA", str(ca), "-CAkey", str(ca_key),
       "-CAcreateserial", "-days", "30", "-extfile", str(ext), "-out", str(cert))  # fmt: skip
    return ca, cert, key


@dataclass
class Mailpit:
    workdir: Path
    security: Security = "none"
    auth: tuple[str, str] | None = None
    chaos: bool = False
    smtp_port: int = field(default_factory=free_port)
    http_port: int = field(default_factory=free_port)
    ca_file: Path | None = None
    proc: Proc | None = None

    def start(self) -> Mailpit:
        self.workdir.mkdir(parents=True, exist_ok=True)
        argv = [
            str(mailpit_bin()),
            "--smtp", f"127.0.0.1:{self.smtp_port}",
            "--listen", f"127.0.0.1:{self.http_port}",
            "--database", str(self.workdir / "mailpit.db"),
            "--max", "0",  # keep every message (default: the newest 500)
            "--disable-version-check",
            "--smtp-disable-rdns",
        ]  # fmt: skip
        if self.security != "none":
            self.ca_file, cert, key = make_certificate(self.workdir / "tls")
            argv += ["--smtp-tls-cert", str(cert), "--smtp-tls-key", str(key)]
            argv.append(
                "--smtp-require-tls" if self.security == "tls" else "--smtp-require-starttls"
            )
        if self.auth is not None:
            users = self.workdir / "smtp-users"
            users.write_text(f"{self.auth[0]}:{self.auth[1]}\n")
            argv += ["--smtp-auth-file", str(users)]
            if self.security == "none":
                argv.append("--smtp-auth-allow-insecure")
        if self.chaos:
            argv.append("--enable-chaos")
        self.proc = Proc("mailpit", argv, self.workdir / "mailpit.log").start()
        wait_for(lambda: self.api("GET", "info") is not None, 30, "mailpit")
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.stop(signal.SIGTERM, timeout=15)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}/api/v1/"

    def api(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.url + path, data=data, method=method)
        req.add_header("Content-Type", "application/json")
        with urllib.request.urlopen(req, timeout=30) as r:
            raw = r.read()
        return json.loads(raw) if raw.strip() else {}

    def total(self) -> int:
        """Messages received so far."""
        return int(self.api("GET", "messages?limit=1")["messages_count"])

    def messages(self, query: str | None = None) -> list[dict[str, Any]]:
        """Summaries (ID, MessageID, To, Subject, Snippet, ...) of every message received,
        or of those a Mailpit search matches."""
        out: list[dict[str, Any]] = []
        while True:
            params = {"limit": "1000", "start": str(len(out))}
            if query:
                params["query"] = query
            page = self.api(
                "GET", ("search?" if query else "messages?") + urllib.parse.urlencode(params)
            )
            out.extend(page["messages"])
            if not page["messages"] or len(out) >= int(page["messages_count"]):
                return out

    def message(self, mailpit_id: str) -> dict[str, Any]:
        """One message in full (Text, HTML, From, To, Subject, MessageID, ...)."""
        return dict(self.api("GET", f"message/{mailpit_id}"))

    def headers(self, mailpit_id: str) -> dict[str, list[str]]:
        return dict(self.api("GET", f"message/{mailpit_id}/headers"))

    def set_chaos(self, **triggers: tuple[int, int]) -> None:
        """Chaos triggers (``Sender``, ``Recipient``, ``Authentication``) as (SMTP code,
        probability in %); the ones not named are switched off."""
        body = {k: {"ErrorCode": c, "Probability": p} for k, (c, p) in triggers.items()}
        self.api("PUT", "chaos", body)
