"""Render templates on a budget, off the event loop: a pool of renderer subprocesses.

:meth:`RenderPool.render` is the one way the operator and the workers render.
Plain-substitution templates (:attr:`MessageTemplate.fast`) are rendered in-process:
their cost is linear in their output, which the CRD bounds. Everything else goes
to a renderer subprocess (:mod:`notifq.core.renderer`) as one call per batch, so
the cost of crossing the process boundary is paid once per batch, not per message.
The subprocess limits its own memory and CPU per message and per batch; this
side adds a wall-clock limit per call and kills a renderer that passes it (a C
call no timer can interrupt), failing the messages that call had not answered.
Dead renderers are replaced on the next call. See docs/templates.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import pickle
import sys
from dataclasses import dataclass

from notifq.core.errors import TemplateError
from notifq.core.renderer import HEADER, Budget, Request, Result, Row, failed
from notifq.core.settings import CommonSettings
from notifq.core.templating import Data, MessageTemplate, check_output

log = logging.getLogger(__name__)

WALL_SLACK_SECONDS = 10.0
"""Wall-clock time a call may take beyond its CPU budget (a loaded machine) before the
renderer is killed."""


@dataclass(frozen=True, slots=True)
class Limits:
    """A render budget (see the ``render_*`` settings)."""

    cpu_ms: int = 50
    batch_cpu_ms: int = 2_000
    memory_mb: int = 256
    max_output: int = 512 * 1024
    processes: int = 2

    @classmethod
    def from_settings(cls, s: CommonSettings) -> Limits:
        return cls(
            s.render_cpu_ms,
            s.render_batch_cpu_ms,
            s.render_memory_mb,
            s.render_max_output_bytes,
            s.render_processes,
        )

    @property
    def budget(self) -> Budget:
        return Budget(self.cpu_ms, self.batch_cpu_ms, self.max_output)


class RendererDied(Exception):
    """A renderer subprocess exited or was killed during a call."""


class _Renderer:
    """One renderer subprocess and its pipes."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.broken = False

    @classmethod
    async def start(cls, memory_mb: int) -> _Renderer:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            "from notifq.core.renderer import main; main()",
            str(memory_mb),
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
        )
        return cls(proc)

    @property
    def alive(self) -> bool:
        return self.proc.returncode is None and not self.broken

    async def call(self, req: Request, wall_seconds: float) -> list[Result]:
        assert self.proc.stdin is not None and self.proc.stdout is not None
        data = pickle.dumps(req, protocol=pickle.HIGHEST_PROTOCOL)
        try:
            self.proc.stdin.write(HEADER.pack(len(data)) + data)
            async with asyncio.timeout(wall_seconds):
                await self.proc.stdin.drain()
                header = await self.proc.stdout.readexactly(HEADER.size)
                payload = await self.proc.stdout.readexactly(HEADER.unpack(header)[0])
        except TimeoutError as exc:
            await self.kill()
            raise RendererDied(f"renderer killed after {wall_seconds:.0f} s wall-clock") from exc
        except (asyncio.IncompleteReadError, ConnectionError) as exc:
            await self.kill()
            raise RendererDied(f"renderer exited (code {self.proc.returncode})") from exc
        except asyncio.CancelledError:
            self.broken = True  # its answer would come on the next call: never reuse it
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            raise
        results: list[Result] = pickle.loads(payload)
        return results

    async def kill(self) -> None:
        self.broken = True
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
        await self.proc.wait()


class RenderPool:
    """Renderer subprocesses shared by one process's renders, started on first use."""

    def __init__(self, limits: Limits) -> None:
        self.limits = limits
        self._idle: asyncio.Queue[_Renderer | None] = asyncio.Queue()
        for _ in range(limits.processes):
            self._idle.put_nowait(None)  # a slot whose renderer starts when first needed
        self._all: set[_Renderer] = set()

    async def render(self, tmpl: MessageTemplate, rows: list[Row]) -> list[Result]:
        """``(index, subject, body, html, error)`` for each ``(index, recipient, fields)``,
        in order.

        Never raises for a template's fault: a failed render is its row's ``error``.
        """
        if tmpl.fast:
            return [render_fast(tmpl, row) for row in rows]
        out: list[Result] = []
        todo = rows
        while todo:
            done = await self._call(tmpl, todo)
            out.extend(done)
            todo = todo[len(done) :]
        return out

    async def check(self, tmpl: MessageTemplate, data: Data = None) -> str | None:
        """Why the template cannot render a sample message (with the sample recipient's
        fields ``data``) within its budget, or None."""
        (*_, error), *_ = await self.render(tmpl, [(0, "sample@example.com", data)])
        return error

    async def _call(self, tmpl: MessageTemplate, rows: list[Row]) -> list[Result]:
        budget = self.limits.budget
        req = Request(
            tmpl.campaign, tmpl.subject_source, tmpl.body_source, tmpl.html_source, rows, budget
        )
        timeout = self.limits.batch_cpu_ms / 1000 * 2 + WALL_SLACK_SECONDS
        renderer = await self._idle.get()
        try:
            if renderer is None or not renderer.alive:
                renderer = await _Renderer.start(self.limits.memory_mb)
                self._all.add(renderer)
            return await renderer.call(req, timeout)
        except RendererDied as exc:
            log.warning("campaign %s: %s; failing %d message(s)", tmpl.campaign, exc, len(rows))
            reason = f"template over its render budget: {exc}"
            return [failed(r[0], reason) for r in rows]
        finally:
            if renderer is not None and not renderer.alive:
                self._all.discard(renderer)
            self._idle.put_nowait(renderer)

    @property
    def pids(self) -> list[int]:
        """Process ids of the running renderers."""
        return [r.proc.pid for r in self._all if r.alive]

    async def close(self) -> None:
        """Stop every renderer."""
        for renderer in list(self._all):
            if renderer.proc.stdin is not None:
                renderer.proc.stdin.close()
            await renderer.kill()
        self._all.clear()


def render_fast(tmpl: MessageTemplate, row: Row) -> Result:
    """One message of a plain-substitution template, in-process (a missing field fails it)."""
    index, recipient, data = row
    try:
        subject, body, html_body = tmpl.render(recipient, index, data)
    except TemplateError as exc:
        return failed(index, str(exc)[:1000])
    if data is None:  # the template and the recipient are checked where they enter
        return index, subject, body, html_body, None
    return index, subject, body, html_body, check_output(subject, body, html_body)
