"""Cost of rendering per message: in-process vs the budgeted renderer subprocesses.

Usage: ``bench/render.py [--messages 100000] [--batch 500]``. Prints microseconds per
message for a plain-substitution template (always in-process) and for a Jinja
template (filters and a condition) rendered in-process without a budget, as
before the render pool, and through :class:`RenderPool` one call per batch.
"""

from __future__ import annotations

import argparse
import asyncio
import time

from notifq.core.renderer import Row
from notifq.core.renderpool import Limits, RenderPool
from notifq.core.templating import MessageTemplate

PLAIN = ("Hello {{ recipient }}", "Message {{ index }} of {{ campaign }}")
JINJA = (
    "Hello {{ recipient | upper }}",
    "{% if index is even %}Even{% else %}Odd{% endif %} message {{ index }} of {{ campaign }}",
)


def rows(n: int) -> list[Row]:
    return [(i, f"user{i}@example.com", None) for i in range(n)]


def in_process(tmpl: MessageTemplate, todo: list[Row]) -> float:
    t0 = time.perf_counter()
    for i, r, _ in todo:
        tmpl.render(r, i)
    return time.perf_counter() - t0


async def pooled(tmpl: MessageTemplate, todo: list[Row], batch: int) -> float:
    pool = RenderPool(Limits(processes=1))
    try:
        await pool.render(tmpl, todo[:batch])  # start the renderer and compile first
        t0 = time.perf_counter()
        for k in range(0, len(todo), batch):
            await pool.render(tmpl, todo[k : k + batch])
        return time.perf_counter() - t0
    finally:
        await pool.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=500)
    args = ap.parse_args()
    todo = rows(args.messages)
    per = 1e6 / args.messages
    plain, jinja = MessageTemplate("bench", *PLAIN), MessageTemplate("bench", *JINJA)
    timings = {
        "plain substitution, in-process": in_process(plain, todo),
        "plain substitution, RenderPool": asyncio.run(pooled(plain, todo, args.batch)),
        "jinja, in-process without budget": in_process(jinja, todo),
        f"jinja, RenderPool, batch {args.batch}": asyncio.run(pooled(jinja, todo, args.batch)),
    }
    for what, seconds in timings.items():
        print(f"{what:36s} {seconds * per:6.2f} us/msg")


if __name__ == "__main__":
    main()
