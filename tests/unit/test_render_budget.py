"""The render budget: renderer subprocesses bound CPU, memory and output per message,
and any error fails only its own message (real subprocesses, no other services)."""

from __future__ import annotations

import asyncio
import os
import signal

import pytest

from notifq.core import recipients
from notifq.core.errors import TemplateError
from notifq.core.renderer import Result, Row
from notifq.core.renderpool import Limits, RenderPool
from notifq.core.templating import MessageTemplate

ROWS: list[Row] = [(i, f"user{i}@example.com", None) for i in range(6)]

CASES = {
    "nested loops": (
        "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}",
        "CPU budget",
    ),
    "string repetition": ("{{ 'x' * 10**9 }}", "over the limit"),
    "power": ("{{ 7 ** (index + 10**8) }}", "exponent"),
    "memory": ("{{ 'x' | center(10**9) }}", "memory budget"),
    "huge output": ("{% for i in range(100000) %}{{ 'y' * 1000 }}{% endfor %}", "output over"),
    "macro recursion": (
        "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
        "recursion too deep",
    ),
    "lipsum": ("{{ lipsum(n=10**6) }}", "budget"),
}


def render(pool: RenderPool, tmpl: MessageTemplate, rows: list[Row]) -> list[Result]:
    return asyncio.run(pool.render(tmpl, rows))


@pytest.mark.parametrize("case", sorted(CASES))
def test_hostile_templates_fail_their_messages_with_a_reason(case: str) -> None:
    body, reason = CASES[case]

    async def go() -> list[Result]:
        pool = RenderPool(Limits(processes=1))
        try:
            hostile = await pool.render(MessageTemplate("c", "s", body), ROWS)
            # the renderer still serves the next template
            fine = await pool.render(MessageTemplate("c", "s", "{{ recipient|upper }}"), ROWS[:1])
        finally:
            await pool.close()
        assert fine == [(0, "s", "USER0@EXAMPLE.COM", None, None)]
        return hostile

    results = asyncio.run(go())
    assert [r[0] for r in results] == [r[0] for r in ROWS]
    for *_, error in results:
        assert error is not None and reason in error, (case, error)


def test_an_error_at_one_index_fails_only_that_message() -> None:
    tmpl = MessageTemplate("c", "#{{ index }}", "{{ 10 // (index - 3) }}")

    async def go() -> list[Result]:
        pool = RenderPool(Limits(processes=1))
        try:
            return await pool.render(tmpl, ROWS)
        finally:
            await pool.close()

    results = asyncio.run(go())
    errors = {r[0]: r[4] for r in results if r[4]}
    assert list(errors) == [3]
    assert "ZeroDivisionError" in errors[3]
    assert results[4] == (4, "#4", "10", None, None)


def test_header_injection_in_a_rendered_subject_fails_the_message() -> None:
    tmpl = MessageTemplate("c", "{{ 'Hi\\r\\nBcc: x@evil.test' }}", "body")
    (*_, error), *_ = asyncio.run(_once(tmpl))
    assert error is not None and "control character (U+000D)" in error


async def _once(tmpl: MessageTemplate) -> list[Result]:
    pool = RenderPool(Limits(processes=1))
    try:
        return await pool.render(tmpl, ROWS[:1])
    finally:
        await pool.close()


def test_the_batch_budget_bounds_one_call() -> None:
    slow = "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}"
    tmpl = MessageTemplate("c", "s", slow)
    limits = Limits(cpu_ms=100, batch_cpu_ms=250, processes=1)

    async def go() -> list[Result]:
        pool = RenderPool(limits)
        try:
            return await pool.render(tmpl, ROWS)
        finally:
            await pool.close()

    errors = [e for *_, e in asyncio.run(go())]
    assert "CPU budget" in str(errors[0])
    assert "ms CPU per batch" in str(errors[-1])


def test_a_killed_renderer_fails_its_batch_and_is_replaced() -> None:
    slow = "{% for a in range(100000) %}{% for b in range(100000) %}{% endfor %}{% endfor %}"
    limits = Limits(cpu_ms=30_000, batch_cpu_ms=30_000, processes=1)

    async def go() -> tuple[list[Result], list[Result]]:
        pool = RenderPool(limits)
        try:
            task = asyncio.create_task(pool.render(MessageTemplate("c", "s", slow), ROWS[:2]))
            for _ in range(200):
                if pool.pids:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(0.3)
            os.kill(pool.pids[0], signal.SIGKILL)
            killed = await task
            again = await pool.render(MessageTemplate("c", "s", "{{ index }}!"), ROWS[:1])
        finally:
            await pool.close()
        return killed, again

    killed, again = asyncio.run(go())
    assert all(e is not None and "renderer exited" in e for *_, e in killed)
    assert again == [(0, "s", "0!", None, None)]


def test_plain_substitutions_render_in_process_without_a_renderer() -> None:
    pool = RenderPool(Limits())
    out = asyncio.run(pool.render(MessageTemplate("c", "Hi {{ recipient }}", "#{{ index }}"), ROWS))
    assert out[2] == (2, "Hi user2@example.com", "#2", None, None)
    assert not pool.pids  # no subprocess was started


@pytest.mark.parametrize(
    ("subject", "body"), [("a\nb", "x"), ("a\x00", "x"), ("s", "x\x00y"), ("s", "\x1b[31m")]
)
def test_control_characters_in_templates_are_refused(subject: str, body: str) -> None:
    with pytest.raises(TemplateError, match="control character"):
        MessageTemplate("c", subject, body)
    MessageTemplate("c", "s", "tabs\tand\r\nnewlines are fine in a body")


def test_recipients_with_control_characters_fail_with_their_own_reason() -> None:
    assert recipients.problem("email", "a\x00b@example.com") == recipients.CONTROL_CHARACTER
    assert recipients.problem("email", "nope") == recipients.INVALID_ADDRESS
    assert recipients.problem("email", "a@example.com") is None
    assert recipients.printable("a\x00b\x1f") == "a\\x00b\\x1f"
