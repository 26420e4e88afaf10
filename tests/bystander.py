"""A bystander: an ordinary campaign in a namespace of its own that must finish as if
alone while something hostile runs elsewhere, with its completion time and the
operator's loop latency measured (printed, never asserted: 2 noisy cores)."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from harness import Stack, campaign, wait_until
from kubernetes import client as k8s
from kubernetes import config as k8s_config

from notifq.core.resource import GROUP, PLURAL, VERSION

COUNT = 10_000
"""Messages of the bystander campaign."""


@dataclass
class Measurement:
    """What one bystander run showed."""

    seconds: float | None = None
    """Apply to phase Completed; None when it did not complete in time."""
    max_status_gap: float = 0.0
    """Longest time between two status changes of the bystander while it was Processing:
    the operator's loop latency as a user sees it (status is written every 0.5 s in tests)."""
    final: dict[str, Any] = field(default_factory=dict)


class Bystander:
    """Runs a bystander campaign and watches its status from a thread (the Python client,
    not ``kubectl``: a process per poll would itself load the two cores)."""

    def __init__(self, stack: Stack, count: int = COUNT, deadline: float = 120) -> None:
        self.stack = stack
        self.deadline = deadline
        self.count = count
        self.namespace = f"bystander-{uuid.uuid4().hex[:6]}"
        self.name = "bystander"
        api = k8s_config.new_client_from_config(str(stack.control_plane.kubeconfig))
        self.api = k8s.CustomObjectsApi(api)
        stack.control_plane.kubectl("create", "namespace", self.namespace)

    def start_workers(self, n: int = 2) -> None:
        """Start ``n`` workers and wait until they and the operator are ready."""
        procs = [self.stack.start_worker() for _ in range(n)]
        operator = self.stack.operator
        assert operator is not None

        def ready() -> bool:
            op = operator.log_path.read_text(errors="replace")
            return "'startup' succeeded" in op and all(
                "worker started" in p.log_path.read_text(errors="replace") for p in procs
            )

        wait_until(ready, 60, "the operator and the workers to be ready")

    def start(self) -> None:
        self.t0 = time.monotonic()
        self.result = Measurement()
        self.stack.apply(
            campaign(self.name, self.namespace, recipients={"generate": {"count": self.count}})
        )
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def wait(self) -> Measurement:
        self._thread.join(self.deadline + 10)
        self._stop = True
        if self._error is not None:
            raise self._error
        return self.result

    def assert_completed(self) -> Measurement:
        """Wait for the campaign; it must have completed with every message sent."""
        m = self.wait()
        print(f"bystander: {fmt(m)}")
        assert m.seconds is not None, "the bystander did not complete"
        assert m.final.get("phase") == "Completed", m.final
        assert m.final["sent"] == self.count
        return m

    def _watch(self) -> None:
        self._stop = False
        self._error: Exception | None = None
        try:
            self._poll()
        except Exception as exc:
            self._error = exc

    def _poll(self) -> None:
        last_change = time.monotonic()
        last_status: Any = None
        deadline = self.t0 + self.deadline
        while not self._stop and time.monotonic() < deadline:
            obj = self.api.get_namespaced_custom_object(
                GROUP, VERSION, self.namespace, PLURAL, self.name
            )
            status = obj.get("status") or {}
            now = time.monotonic()
            key = (status.get("phase"), status.get("sent"), status.get("failed"))
            if key != last_status:
                if last_status is not None and last_status[0] == "Processing":
                    self.result.max_status_gap = max(self.result.max_status_gap, now - last_change)
                last_status, last_change = key, now
            if status.get("phase") in ("Completed", "CompletedWithFailures", "Failed"):
                self.result.seconds = now - self.t0
                self.result.final = status
                return
            time.sleep(0.1)


def start_bystander(stack: Stack, count: int = 2_000) -> Bystander:
    """A bystander of ``count`` messages, started once the stack's operator is ready (its
    workers are the stack's own)."""
    by = Bystander(stack, count=count)
    by.start_workers(0)
    by.start()
    return by


def fmt(m: Measurement | None) -> str:
    if m is None:
        return "-"
    done = f"{m.seconds:.1f} s" if m.seconds is not None else "did not complete"
    return f"{done} (loop gap {m.max_status_gap:.1f} s)"
