"""Leader election on a ``coordination.k8s.io`` Lease, without blocking the event loop.

Only the replica holding the Lease runs Kopf (handlers, timers, the autoscaler);
the others stand by and take over once the Lease has gone unrenewed for its
duration. Kopf's peering is not leader election (equal-priority peers all
pause), and ``kubernetes.leaderelection`` is a blocking, threaded loop, so this
is a small loop of our own in the style of client-go's ``leaderelection``:

- every request goes through the blocking ``kubernetes`` client on one thread of
  our own, with a request timeout, so the event loop never waits on the network
  and a stuck request can never delay the decision to give up;
- updates carry the ``resourceVersion`` they were based on, so of two replicas
  racing for an expired Lease exactly one wins (the other gets 409 Conflict);
- expiry is judged on this replica's own clock: a standby takes over when it
  has *seen* the same Lease record for ``leaseDurationSeconds``; clocks of the
  replicas need not agree;
- the leader renews every ``renew_interval``; when it could not renew for
  ``renew_deadline`` (shorter than the lease duration) or sees another holder,
  :meth:`LeaderElector.hold` returns and the caller stops at once;
- a leader that stops cleanly releases the Lease, so a standby takes over within
  one retry interval instead of one lease duration.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
import socket
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from kubernetes import client as k8s

from notifq.core.settings import OperatorSettings

log = logging.getLogger(__name__)


def micro_time(moment: datetime | None = None) -> str:
    """A Kubernetes ``MicroTime`` (RFC 3339 with microseconds, UTC)."""
    return (moment or datetime.now(UTC)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def make_identity(base: str | None) -> str:
    """``<base or host name>_<random>``: unique per process, readable in the Lease."""
    return f"{base or socket.gethostname()}_{uuid.uuid4().hex[:6]}"


class LeaderElector:
    """Competes for one Lease; see the module docstring for the rules."""

    def __init__(
        self,
        api: k8s.CoordinationV1Api,
        *,
        name: str,
        namespace: str,
        identity: str,
        lease_duration: int,
        renew_deadline: float,
        renew_interval: float,
        retry_interval: float,
    ) -> None:
        self.api = api
        self.name = name
        self.namespace = namespace
        self.identity = identity
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.renew_interval = renew_interval
        self.retry_interval = retry_interval
        self.is_leader = False
        self.holder: str | None = None
        """Holder seen in the last Lease read (None: unheld or not read yet)."""
        self.last_attempt = time.monotonic()
        """When the loop last tried to acquire or renew (liveness of the loop)."""
        self._observed: tuple[str | None, str] | None = None
        self._observed_at = 0.0
        # one thread of our own: Lease requests never queue behind other blocking calls
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lease")

    @classmethod
    def from_settings(
        cls, api: k8s.CoordinationV1Api, settings: OperatorSettings, namespace: str
    ) -> LeaderElector:
        return cls(
            api,
            name=settings.leader_lease_name,
            namespace=namespace,
            identity=make_identity(settings.leader_identity),
            lease_duration=settings.leader_lease_duration,
            renew_deadline=settings.leader_renew_deadline,
            renew_interval=settings.leader_renew_interval,
            retry_interval=settings.leader_retry_interval,
        )

    # --- requests (on the lease thread, each bounded by a timeout) ----------------
    async def _call(self, method: Callable[..., Any], *args: Any) -> dict[str, Any]:
        timeout = (self.renew_interval, self.renew_interval)
        call = functools.partial(method, *args, _request_timeout=timeout, _preload_content=False)
        response = await asyncio.get_running_loop().run_in_executor(self._executor, call)
        return dict(json.loads(response.data))

    async def _read(self) -> dict[str, Any] | None:
        try:
            return await self._call(self.api.read_namespaced_lease, self.name, self.namespace)
        except k8s.ApiException as exc:
            if exc.status == 404:
                return None
            raise

    def _body(self, spec: dict[str, Any], resource_version: str | None) -> dict[str, Any]:
        meta: dict[str, Any] = {"name": self.name, "namespace": self.namespace}
        if resource_version is not None:
            meta["resourceVersion"] = resource_version
        return {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": meta,
            "spec": spec,
        }

    # --- one attempt ------------------------------------------------------------------
    async def try_acquire_or_renew(self) -> bool:
        """Take the Lease if it is free or expired, renew it if ours; True if we hold it."""
        self.last_attempt = time.monotonic()
        now = micro_time()
        lease = await self._read()
        if lease is None:
            fresh: dict[str, Any] = {
                "holderIdentity": self.identity,
                "leaseDurationSeconds": self.lease_duration,
                "acquireTime": now,
                "renewTime": now,
                "leaseTransitions": 0,
            }
            try:
                await self._call(
                    self.api.create_namespaced_lease, self.namespace, self._body(fresh, None)
                )
            except k8s.ApiException as exc:
                if exc.status == 409:  # another replica created it first
                    return False
                raise
            self._won()
            return True

        spec: dict[str, Any] = dict(lease.get("spec") or {})
        version = str(lease["metadata"]["resourceVersion"])
        holder: str | None = spec.get("holderIdentity") or None
        self.holder = holder
        if self._observed != (holder, version):
            self._observed, self._observed_at = (holder, version), time.monotonic()
        duration = int(spec.get("leaseDurationSeconds") or self.lease_duration)
        expired = time.monotonic() - self._observed_at >= duration
        if holder is not None and holder != self.identity and not expired:
            return False

        if holder != self.identity:
            spec["acquireTime"] = now
            spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + 1
        spec.update(
            holderIdentity=self.identity, leaseDurationSeconds=self.lease_duration, renewTime=now
        )
        try:
            await self._call(
                self.api.replace_namespaced_lease,
                self.name,
                self.namespace,
                self._body(spec, version),
            )
        except k8s.ApiException as exc:
            if exc.status == 409:  # changed since we read it: someone else won
                return False
            raise
        self._won()
        return True

    def _won(self) -> None:
        if not self.is_leader:
            log.info(
                "became leader: holding Lease %s/%s as %s",
                self.namespace,
                self.name,
                self.identity,
            )
        self.is_leader = True
        self.holder = self.identity
        self._observed = None

    # --- loops ------------------------------------------------------------------------
    async def acquire(self, stopping: asyncio.Event) -> bool:
        """Stand by until we hold the Lease (True) or ``stopping`` is set (False)."""
        log.info("standing by for Lease %s/%s as %s", self.namespace, self.name, self.identity)
        reported: str | None = None
        while not stopping.is_set():
            try:
                if await self.try_acquire_or_renew():
                    return True
            except Exception as exc:
                log.warning(
                    "could not read or take Lease %s/%s: %s", self.namespace, self.name, exc
                )
            if self.holder != reported:
                reported = self.holder
                log.info(
                    "standing by: Lease %s/%s is held by %s", self.namespace, self.name, reported
                )
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stopping.wait(), self.retry_interval)
        return False

    async def hold_on_own_thread(self, stop: threading.Event) -> str:
        """:meth:`hold` on an event loop of its own, on a thread of its own: a main loop
        busy for seconds (storing a big list on a loaded machine) delays no renewal, so
        a working leader does not lose its Lease. Returns why it ended (``stop`` set:
        "stopped")."""
        loop = asyncio.get_running_loop()
        ended: asyncio.Future[str] = loop.create_future()

        def settle(why: str | None, exc: BaseException | None) -> None:
            if ended.done():
                return
            if exc is not None:
                ended.set_exception(exc)
            else:
                ended.set_result(why or "")

        def run() -> None:
            why: str | None = None
            error: BaseException | None = None
            try:
                why = asyncio.run(self.hold(stop))
            except BaseException as exc:  # handed to the waiting loop, which decides
                error = exc
            with contextlib.suppress(RuntimeError):  # the main loop is gone already
                loop.call_soon_threadsafe(settle, why, error)

        # a daemon thread: a process that exits without stopping it is not held up
        threading.Thread(target=run, name="lease-renewal", daemon=True).start()
        return await ended

    async def hold(self, stop: threading.Event | None = None) -> str:
        """Renew the Lease until it is lost; returns why. The caller must stop at once."""
        renewed = time.monotonic()
        while True:
            await asyncio.sleep(self.renew_interval)
            if stop is not None and stop.is_set():
                return "stopped"
            left = self.renew_deadline - (time.monotonic() - renewed)
            try:
                if await asyncio.wait_for(self.try_acquire_or_renew(), max(left, 0.01)):
                    renewed = time.monotonic()
                    continue
            except TimeoutError:
                log.warning("renewing Lease %s/%s timed out", self.namespace, self.name)
            except Exception as exc:
                log.warning("could not renew Lease %s/%s: %s", self.namespace, self.name, exc)
            if self.holder is not None and self.holder != self.identity:
                return self._lost(f"the Lease is now held by {self.holder}")
            if time.monotonic() - renewed >= self.renew_deadline:
                return self._lost(f"no renewal for {self.renew_deadline:g} s")

    def _lost(self, why: str) -> str:
        self.is_leader = False
        return why

    async def release(self) -> None:
        """Give the Lease up (on a clean stop) so a standby takes over at once."""
        if not self.is_leader:
            return
        self.is_leader = False
        try:
            lease = await self._read()
            if lease is None:
                return
            spec = dict(lease.get("spec") or {})
            if spec.get("holderIdentity") != self.identity:
                return
            spec.update(holderIdentity=None, leaseDurationSeconds=1, renewTime=micro_time())
            version = str(lease["metadata"]["resourceVersion"])
            await self._call(
                self.api.replace_namespaced_lease,
                self.name,
                self.namespace,
                self._body(spec, version),
            )
            log.info("released Lease %s/%s", self.namespace, self.name)
        except Exception as exc:
            log.warning("could not release Lease %s/%s: %s", self.namespace, self.name, exc)

    def healthy(self) -> bool:
        """The loop is alive: it tried within the last lease duration plus a request."""
        limit = self.lease_duration + 2 * self.renew_interval
        return time.monotonic() - self.last_attempt < limit

    def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
