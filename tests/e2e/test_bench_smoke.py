"""The benchmark harness still works: a 2,000-message smoke case end to end.

No timing assertions (the machines are noisy): only that every figure is
produced and the campaign really completed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from harness import ROOT


def test_bench_smoke_case_reports_every_figure(tmp_path: Path) -> None:
    out = tmp_path / "rows.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--cases", "smoke", "--json", str(out)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    (row,) = json.loads(out.read_text())
    assert row["case"] == "smoke-2k" and row["messages"] == 2000
    assert row["phase"] == "Completed"
    for key in ("accept_s", "drain_s", "msgs_per_s", "lag_p50_s", "lag_p95_s", "worker_rss_mib"):
        assert isinstance(row[key], int | float) and row[key] >= 0, (key, row)
    assert row["drain_s"] >= row["accept_s"]
    assert "summary smoke-2k:" in done.stdout
