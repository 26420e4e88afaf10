"""The ``smtp`` case of ``bench/run.py``: a campaign through the SMTP provider to a local
Mailpit (hack/mailpit.py), 2 workers with the default pool (4 connections each, 100
messages per connection). Adds to the run's row what the server received (and any
duplicates), the connections the workers opened (from their logs at shutdown) and the
CPU seconds Mailpit used (it shares the 2 cores)."""

from __future__ import annotations

import os
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from mailpit import Mailpit

OPENED = re.compile(r"smtp: (\d+) connection\(s\) opened in all, at most (\d+) at once")


def run(
    case: Any, workdir: Path, run_case: Callable[[Any, Path], dict[str, object]]
) -> dict[str, object]:
    mp = Mailpit(workdir / "mailpit").start()
    try:
        env = (("NOTIFQ_SMTP_HOST", "127.0.0.1"), ("NOTIFQ_SMTP_PORT", str(mp.smtp_port)),
               ("NOTIFQ_SMTP_SECURITY", "none"))  # fmt: skip
        row = run_case(replace(case, extra_env=case.extra_env + env), workdir)
        got = Counter(t["Address"] for m in mp.messages() for t in m["To"])
        assert mp.proc is not None
        stat = Path(f"/proc/{mp.proc.pid}/stat").read_text()
        ticks = stat.rsplit(")", 1)[1].split()[11:13]
        server_cpu = sum(int(t) for t in ticks) / os.sysconf("SC_CLK_TCK")
    finally:
        mp.stop()
    opened = peak = 0
    for log in (workdir / case.name).glob("worker-*.log"):
        for m in OPENED.finditer(log.read_text(errors="replace")):
            opened += int(m.group(1))
            peak += int(m.group(2))
    row.update(
        received=sum(got.values()),
        duplicates=sum(n - 1 for n in got.values()),
        connections=opened,
        connections_at_once=peak,
        server_cpu_s=round(server_cpu, 1),
    )
    return row
