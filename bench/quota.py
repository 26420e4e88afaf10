"""The ``quota`` benchmark case: delivery at a provider's quota, shared fairly.

The mock provider enforces a quota of ``QUOTA`` sends in any sliding 1-second
window (``NOTIFQ_MOCK_QUOTA``, one account shared by every worker process) and
logs every accepted send with the time it arrived. Three campaigns start
together, each in its own namespace: A and B with 5,000 recipients and no limit
of their own, C with 300 recipients and ``rateLimit: 5``.

From the delivery log (not from our own counters) it measures:

- ``achieved_rate``: provider sends/s from the first send until A and B are done
- ``max_window``: the largest number of sends in any 1-second window
- ``throttled``: Throttling answers of the mock (``would_throttle``: accepted
  sends beyond the quota in a sliding window, for a mock that does not enforce it)
- ``jain_ab`` / ``jain_ab_min``: Jain's fairness index of A's and B's sends over
  10-second windows while both had a backlog (mean and worst window)
- ``c_rate``: C's sends/s from the first send of any campaign to C's last
- ``a_rate`` / ``b_rate``: A's and B's sends/s while both had a backlog

and writes a PNG of sends per second per campaign next to the JSON.
"""

from __future__ import annotations

import bisect
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from notifq.core.phases import FINAL_PHASES
from notifq.core.resource import API_VERSION

QUOTA = 200
CAMPAIGNS = {"a": 5_000, "b": 5_000, "c": 300}
C_RATE_LIMIT = 5
JAIN_WINDOW = 10.0


def manifest(key: str, count: int) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "provider": "mock",
        "recipients": {"generate": {"count": count, "domain": f"{key}.example.com"}},
    }
    if key == "c":
        spec["rateLimit"] = C_RATE_LIMIT
    return {
        "apiVersion": API_VERSION,
        "kind": "Campaign",
        "metadata": {"name": f"quota-{key}", "namespace": f"quota-{key}"},
        "spec": spec,
    }


def read_log(log_dir: Path) -> dict[str, list[float]]:
    """Accepted sends per campaign key (from the recipient's domain), sorted by time."""
    sends: dict[str, list[float]] = {k: [] for k in CAMPAIGNS}
    for path in log_dir.glob("deliveries-*.log"):
        for line in path.read_text().splitlines():
            stamp, recipient = line.split("\t", 1)
            key = recipient.rpartition("@")[2].split(".", 1)[0]
            if key in sends:
                sends[key].append(float(stamp))
    for v in sends.values():
        v.sort()
    return sends


def count_throttled(log_dir: Path) -> int:
    return sum(
        len(p.read_text().splitlines()) for p in log_dir.glob("throttled-*.log") if p.exists()
    )


def max_window(stamps: list[float], width: float = 1.0) -> int:
    """Largest number of stamps in any half-open window of ``width`` seconds."""
    best, lo = 0, 0
    for hi, t in enumerate(stamps):
        while stamps[lo] <= t - width:
            lo += 1
        best = max(best, hi - lo + 1)
    return best


def beyond_quota(stamps: list[float], quota: int) -> int:
    """Sends that found ``quota`` others within the second before them."""
    return sum(1 for i, t in enumerate(stamps) if i - bisect.bisect_right(stamps, t - 1.0) >= quota)


def jain(values: list[float]) -> float:
    total = sum(values)
    squares = sum(v * v for v in values)
    return 1.0 if squares == 0 else total * total / (len(values) * squares)


def in_range(stamps: list[float], t0: float, t1: float) -> int:
    return bisect.bisect_left(stamps, t1) - bisect.bisect_left(stamps, t0)


def analyse(sends: dict[str, list[float]], throttled: int, quota: int) -> dict[str, Any]:
    every = sorted(t for v in sends.values() for t in v)
    a, b, c = sends["a"], sends["b"], sends["c"]
    t0 = every[0]
    both_until = min(a[-1], b[-1])  # both A and B had a backlog until here
    ab_until = max(a[-1], b[-1])  # A or B had a backlog until here
    windows = []
    t = t0
    while t + JAIN_WINDOW <= both_until:
        windows.append(jain([in_range(a, t, t + JAIN_WINDOW), in_range(b, t, t + JAIN_WINDOW)]))
        t += JAIN_WINDOW
    both = max(both_until - t0, 1e-9)
    return {
        "case": "quota",
        "quota": quota,
        "messages": len(every),
        "achieved_rate": round(in_range(every, t0, ab_until) / max(ab_until - t0, 1e-9), 1),
        "achieved_pct": round(100 * in_range(every, t0, ab_until) / (ab_until - t0) / quota, 1),
        "max_window": max_window(every),
        "throttled": throttled,
        "would_throttle": beyond_quota(every, quota),
        "jain_ab": round(sum(windows) / len(windows), 4) if windows else None,
        "jain_ab_min": round(min(windows), 4) if windows else None,
        "jain_windows": len(windows),
        "a_rate": round(in_range(a, t0, both_until) / both, 1),
        "b_rate": round(in_range(b, t0, both_until) / both, 1),
        # from the common start: a campaign that collected its tokens and then burst
        # shows its real average, not an infinite rate
        "c_rate": round(len(c) / max(c[-1] - t0, 1e-3), 2) if c else None,
        "c_max_window": max_window(c),
        "a_done_s": round(a[-1] - t0, 1),
        "b_done_s": round(b[-1] - t0, 1),
        "c_done_s": round(c[-1] - t0, 1),
    }


def plot(sends: dict[str, list[float]], quota: int, path: Path, title: str) -> None:
    """Sends per second per campaign (and their sum) against the quota, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    t0 = min(v[0] for v in sends.values() if v)
    end = int(max(v[-1] for v in sends.values() if v) - t0) + 1
    xs = list(range(end))
    fig, ax = plt.subplots(figsize=(10, 4.5), dpi=100)
    total: Counter[int] = Counter()
    for key, stamps in sends.items():
        per = Counter(int(t - t0) for t in stamps)
        total.update(per)
        ax.plot(xs, [per.get(x, 0) for x in xs], label=f"campaign {key.upper()}", lw=1.2)
    ax.plot(xs, [total.get(x, 0) for x in xs], label="all (provider)", color="black", lw=1.5)
    ax.axhline(quota, color="red", ls="--", lw=1, label=f"quota {quota}/s")
    ax.set_xlabel("seconds since the first send")
    ax.set_ylabel("sends per second")
    ax.set_title(title)
    ax.set_ylim(0, max(quota * 1.6, max(total.values(), default=0) * 1.1))
    ax.legend(loc="upper right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def run(stack: Any, png: Path | None) -> dict[str, Any]:
    """Apply the three campaigns together on a running stack and measure."""
    import json

    cp = stack.cp
    for key in CAMPAIGNS:
        cp.kubectl("create", "namespace", f"quota-{key}")
    manifests = [manifest(k, n) for k, n in CAMPAIGNS.items()]
    t_apply = time.time()
    cp.kubectl(
        "apply",
        "-f",
        "-",
        input=json.dumps({"apiVersion": "v1", "kind": "List", "items": manifests}),
    )
    deadline = time.time() + 900
    phases: dict[str, str] = {}
    while time.time() < deadline:
        out = cp.kubectl("get", "campaigns", "-A", "-o", "json")
        phases = {
            i["metadata"]["name"]: (i.get("status") or {}).get("phase", "")
            for i in json.loads(out.stdout)["items"]
        }
        if len(phases) == len(CAMPAIGNS) and all(p in FINAL_PHASES for p in phases.values()):
            break
        time.sleep(1)
    log_dir = Path(stack.env["NOTIFQ_MOCK_LOG_DIR"])
    sends = read_log(log_dir)
    row = analyse(sends, count_throttled(log_dir), QUOTA)
    row["phases"] = ",".join(sorted(set(phases.values())))
    row["apply_to_first_send_s"] = round(min(v[0] for v in sends.values() if v) - t_apply, 2)
    if png is not None:
        plot(sends, QUOTA, png, f"quota {QUOTA}/s, 2 workers: A, B 5,000 each; C 300 at 5/s")
        print(f"quota: wrote {png}", file=sys.stderr)
    return row
