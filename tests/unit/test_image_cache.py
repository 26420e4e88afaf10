"""The image cache keeps the newest archives of each image and never the others'."""

from __future__ import annotations

import os
from pathlib import Path

import images


def _archive(d: Path, name: str, mtime: int) -> Path:
    p = d / name
    p.write_bytes(b"x")
    os.utime(p, (mtime, mtime))
    return p


def test_prune_keeps_the_newest_archives_of_the_same_image(tmp_path: Path) -> None:
    old = [_archive(tmp_path, f"notifq-{k:016x}.tar", 1000 + k) for k in range(5)]
    other = _archive(tmp_path, "postgres-0496285234b3b5a4.tar", 1)
    base = _archive(tmp_path, "base-bookworm-598b785ddeeb067e.rootfs.tar", 1)
    built = _archive(tmp_path, "notifq-ffffffffffffffff.tar", 500)  # just built, oldest mtime

    removed = images.prune(built, keep=3)

    assert sorted(removed) == sorted(old[:3])
    assert {p.name for p in tmp_path.iterdir()} == {
        built.name,
        old[3].name,
        old[4].name,
        other.name,
        base.name,
    }
