"""The chart's CRD is a byte-for-byte copy of the single source of truth in crds/.

Refresh them with: make chart-crds
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_chart_crds_equal_the_source_of_truth() -> None:
    source = sorted(p.name for p in (ROOT / "crds").glob("*.yaml"))
    copies = sorted(p.name for p in (ROOT / "charts" / "notifq" / "crds").glob("*.yaml"))
    assert copies == source
    for name in source:
        assert (ROOT / "charts" / "notifq" / "crds" / name).read_bytes() == (
            ROOT / "crds" / name
        ).read_bytes(), f"charts/notifq/crds/{name} differs: cp crds/{name} charts/notifq/crds/"
