"""The renderer subprocess: renders batches of messages of Jinja templates on a budget.

Run as ``python -m notifq.core.renderer MEMORY_MB`` by :mod:`notifq.core.renderpool`.
It limits its own address space (``RLIMIT_AS``), lowers its priority, then
answers requests read from stdin with results written to stdout, each frame a
4-byte big-endian length and a pickle (both ends are notifq's own code).

Per message, a ``SIGPROF`` timer (process CPU time, user + system) interrupts a
render past ``cpu_ms``; the Jinja sandbox (:class:`BudgetedSandbox`) refuses the
single C calls a timer cannot interrupt; the text is produced piece by piece and
stopped past ``max_output``; a ``MemoryError`` from the address-space limit
fails the message. Any other exception fails its message only. A batch stops
rendering once it has used ``batch_cpu_ms``; it also returns early once its
output reaches :data:`BATCH_OUTPUT_CHARS`, and the caller asks again for the rest.
"""

from __future__ import annotations

import os
import pickle
import resource
import signal
import struct
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from types import FrameType
from typing import Any, BinaryIO

from notifq.core.errors import TemplateError
from notifq.core.htmltext import html_to_text
from notifq.core.templating import Data, MessageTemplate, OutputTooLarge, check_output

BATCH_OUTPUT_CHARS = 32 * 1024 * 1024
"""A call returns once its rendered text reaches this size; the rest comes in the next call."""
CACHE_SIZE = 128
"""Compiled templates kept per renderer."""
HEADER = struct.Struct(">I")


@dataclass(frozen=True, slots=True)
class Budget:
    """What one render and one call may use."""

    cpu_ms: int
    batch_cpu_ms: int
    max_output: int


@dataclass(frozen=True, slots=True)
class Request:
    """Render ``rows`` (``(index, recipient, fields)``) of one campaign's templates."""

    campaign: str
    subject: str
    body: str
    html: str | None
    rows: list[Row]
    budget: Budget


Row = tuple[int, str, Data]
"""``(index, recipient, fields)``: one message to render."""

Result = tuple[int, str, str, str | None, str | None]
"""``(index, subject, body, html, error)``: error is None when the message rendered; html
is None when the campaign has no HTML template."""


class OverCpu(BaseException):
    """Raised by the CPU timer; a BaseException so no ``except Exception`` in a template
    engine can swallow it."""


class _Timer:
    armed = False
    """Raise only while a render runs, never in the code that disarms the timer."""


def _on_timer(signum: int, frame: FrameType | None) -> None:
    if _Timer.armed:
        raise OverCpu


@contextmanager
def cpu_timer(seconds: float) -> Iterator[None]:
    """Raise :class:`OverCpu` in the body once it used ``seconds`` of CPU (when installed)."""
    try:
        signal.setitimer(signal.ITIMER_PROF, seconds)
        _Timer.armed = True
        yield
    finally:
        _Timer.armed = False
        signal.setitimer(signal.ITIMER_PROF, 0)


def failed(index: int, reason: str) -> Result:
    """The result of a message that did not render."""
    return index, "", "", None, reason


def render_one(tmpl: MessageTemplate, row: Row, budget: Budget) -> Result:
    """One message, with the CPU timer armed (when installed) and the output bounded
    (subject, text and HTML together; a text part made from the HTML counts too)."""
    index = row[0]
    try:
        with cpu_timer(budget.cpu_ms / 1000):
            left = budget.max_output
            subject = _bounded(tmpl, row, "subject", left)
            left -= len(subject)
            html_body = _bounded(tmpl, row, "html", left) if tmpl.html_source else None
            left -= len(html_body or "")
            if tmpl.text_from_html:
                body = html_to_text(html_body or "")
                if len(body) > left:
                    raise OutputTooLarge
            else:
                body = _bounded(tmpl, row, "body", left)
    except OverCpu:
        return failed(index, f"template over its CPU budget ({budget.cpu_ms} ms per message)")
    except MemoryError:
        return failed(index, "template over its memory budget")
    except OutputTooLarge:
        return failed(index, f"template output over its budget ({budget.max_output} characters)")
    except RecursionError:
        return failed(index, "template failed to render: recursion too deep")
    except TemplateError as exc:
        return failed(index, str(exc)[:1000])
    except Exception as exc:
        return failed(index, f"template failed to render: {type(exc).__name__}: {exc}"[:1000])
    return index, subject, body, html_body, check_output(subject, body, html_body)


def _bounded(tmpl: MessageTemplate, row: Row, field: str, limit: int) -> str:
    pieces: list[str] = []
    size = 0
    index, recipient, data = row
    for piece in tmpl.generate(recipient, index, field, data):
        size += len(piece)
        if size > limit:
            raise OutputTooLarge
        pieces.append(piece)
    return "".join(pieces)


def render_batch(tmpl: MessageTemplate, req: Request) -> list[Result]:
    """Render rows until done, out of batch CPU (the rest fail) or of batch output."""
    out: list[Result] = []
    start = time.process_time()
    limit = req.budget.batch_cpu_ms / 1000
    size = 0
    for i, row in enumerate(req.rows):
        if time.process_time() - start >= limit:
            reason = f"template over its render budget ({req.budget.batch_cpu_ms} ms CPU per batch)"
            out.extend(failed(r[0], reason) for r in req.rows[i:])
            break
        result = render_one(tmpl, row, req.budget)
        out.append(result)
        size += len(result[1]) + len(result[2]) + len(result[3] or "")
        if size >= BATCH_OUTPUT_CHARS:
            break
    return out


CacheKey = tuple[str, str, str, str | None]


def _template(cache: dict[CacheKey, Any], req: Request) -> MessageTemplate | str:
    key = (req.campaign, req.subject, req.body, req.html)
    hit = cache.get(key)
    if hit is None:
        try:
            with cpu_timer(req.budget.batch_cpu_ms / 1000):
                hit = MessageTemplate(req.campaign, req.subject, req.body, req.html)
                hit.compile()
        except TemplateError as exc:
            hit = str(exc)
        except (OverCpu, MemoryError, RecursionError):
            hit = "template too large or too deeply nested to compile within its budget"
        if len(cache) >= CACHE_SIZE:
            cache.clear()
        cache[key] = hit
    return hit


def handle(cache: dict[CacheKey, Any], req: Request) -> list[Result]:
    tmpl = _template(cache, req)
    if isinstance(tmpl, str):
        return [failed(r[0], tmpl) for r in req.rows]
    return render_batch(tmpl, req)


def _read(stream: BinaryIO, n: int) -> bytes | None:
    data = stream.read(n)
    return data if data and len(data) == n else None


def serve(memory_mb: int, stdin: BinaryIO, stdout: BinaryIO) -> None:
    """Answer requests until stdin closes."""
    limit = memory_mb * 1024 * 1024
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    os.nice(10)
    signal.signal(signal.SIGPROF, _on_timer)
    cache: dict[CacheKey, Any] = {}
    while True:
        header = _read(stdin, HEADER.size)
        if header is None:
            return
        payload = _read(stdin, HEADER.unpack(header)[0])
        if payload is None:
            return
        req: Request = pickle.loads(payload)
        try:
            results = handle(cache, req)
        except MemoryError:
            cache.clear()
            results = [failed(r[0], "template over its memory budget") for r in req.rows]
        data = pickle.dumps(results, protocol=pickle.HIGHEST_PROTOCOL)
        stdout.write(HEADER.pack(len(data)) + data)
        stdout.flush()


def main() -> None:
    out = sys.stdout.buffer
    sys.stdout = sys.stderr  # nothing but frames on the protocol stream
    serve(int(sys.argv[1]), sys.stdin.buffer, out)


if __name__ == "__main__":
    main()
