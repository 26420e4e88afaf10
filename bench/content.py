"""CPU per message of the content steps in-process: the plain-substitution render (plain
address, with fields, with an HTML part, HTML only with the text made from it) and the
SMTP provider's message writing (text only, multipart/alternative).

Usage: ``bench/content.py [--messages 200000]``. Prints the best of 7 runs in
microseconds of process CPU time per message (CPU time, not wall clock: steadier on a
shared machine). Compare a tree before a change by running its copy of the steps.
"""

from __future__ import annotations

import argparse
import time
import timeit
from collections.abc import Callable

from notifq.core.settings import WorkerSettings
from notifq.core.templating import MessageTemplate
from notifq.worker.providers.base import Outbound
from notifq.worker.providers.smtp import SmtpProvider

SUBJECT = "Hello {{ recipient }}"
BODY = "Message {{ index }} of {{ campaign }} for {{ recipient }}"
HTML = (
    '<p>Message {{ index }} for <b>{{ name }}</b> <a href="https://x.test/{{ index }}">go</a></p>'
)
FIELDS = {"email": "user7@example.com", "name": "Ann <Admin>", "plan": "Gold"}


def cpu_us(step: Callable[[], object], n: int) -> float:
    runs = timeit.repeat(step, number=n, repeat=7, timer=time.process_time)
    return min(runs) / n * 1e6


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=200_000)
    n = ap.parse_args().messages
    plain = MessageTemplate("bench", SUBJECT, BODY)
    named = MessageTemplate("bench", SUBJECT, BODY.replace("recipient", "name"))
    both = MessageTemplate("bench", SUBJECT, BODY, HTML)
    html_only = MessageTemplate("bench", SUBJECT, "", HTML)
    smtp = SmtpProvider(WorkerSettings(smtp_from="news@sender.test"))
    text_msg = Outbound(7, "user7@example.com", "Hello user7", "Message 7 for user7", "cid")
    html_msg = Outbound(7, "user7@example.com", "Hello", "Message 7", "cid", "<p>Message 7</p>")
    steps: dict[str, Callable[[], object]] = {
        "render, plain address": lambda: plain.render("user7@example.com", 7),
        "render, with fields": lambda: named.render("user7@example.com", 7, FIELDS),
        "render, text + html": lambda: both.render("user7@example.com", 7, FIELDS),
        "render, html only (text made)": lambda: html_only.render("user7@example.com", 7, FIELDS),
        "smtp message, text only": lambda: smtp.build(text_msg),
        "smtp message, multipart": lambda: smtp.build(html_msg),
    }
    for what, step in steps.items():
        print(f"{what:32s} {cpu_us(step, n):6.2f} us/msg (CPU)")


if __name__ == "__main__":
    main()
