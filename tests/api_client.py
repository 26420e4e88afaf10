"""A logged-in client of an API server on the test bed, shared by the API's e2e tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx

ADMIN, PASSWORD = "admin@example.com", "a long and private passphrase"


class Api:
    """An API server on the test bed, its namespace and a logged-in client."""

    def __init__(self, client: httpx.Client, namespace: str, control_plane: Any) -> None:
        self.client = client
        self.namespace = namespace
        self.control_plane = control_plane
        self.auth = self.login(ADMIN, PASSWORD)

    def login(self, email: str, password: str) -> dict[str, str]:
        """The Authorization header of a token for this account (the login must succeed)."""
        resp = self.client.post("/auth/login", json={"email": email, "password": password})
        assert resp.status_code == 200, resp.text
        return {"Authorization": f"Bearer {resp.json()['token']}"}

    def create(self, **body: Any) -> dict[str, Any]:
        resp = self.client.post("/campaigns", json=body, headers=self.auth)
        assert resp.status_code == 202, resp.text
        return dict(resp.json())

    def kubectl_get(self, name: str) -> dict[str, Any]:
        out = self.control_plane.kubectl(
            "get", "campaign", name, "-n", self.namespace, "-o", "json"
        )
        return dict(json.loads(out.stdout))

    def detail(self, cid: str) -> dict[str, Any]:
        resp = self.client.get(f"/campaigns/{cid}", headers=self.auth)
        assert resp.status_code == 200, resp.text
        return dict(resp.json())


def admin_cli(database_url: str, tmp: Path, *args: str, password: str | None = None) -> None:
    """``notifq-api`` account commands (create-admin, set-password, remove-admin), run as
    an operator runs them; the password goes to standard input."""
    env = {**os.environ, "NOTIFQ_DATABASE_URL": database_url}
    env.pop("NOTIFQ_ADMIN_PASSWORD", None)
    out = subprocess.run(
        [sys.executable, "-m", "notifq.api.main", *args],
        input=(password or "") + "\n",
        check=False,
        env=env,
        cwd=tmp,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
