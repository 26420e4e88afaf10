"""Container images of the local cluster, built without Docker and without a registry.

- ``base``: Debian bookworm (``debootstrap --variant=minbase``) with python3 and
  python3-venv, imported with ``podman import``; the parent of every other image.
- ``notifq``: the project's own ``Dockerfile`` (the one recipe), built by
  ``buildah bud --isolation chroot --build-arg PYTHON_IMAGE=<base>``; Python
  packages come from the package index.
- ``pause``: the pod sandbox, a static binary (hack/pause/main.go) FROM scratch.
- ``postgres``, ``redis``: hack/images/<name>/Containerfile, Debian's packages.

Each image is saved as a docker-archive under ``$NOTIFQ_CACHE/images/`` named
by the hash of its inputs, so a second run builds nothing; ``import_all`` loads
them into containerd's ``k8s.io`` namespace under the fixed names the chart's
kind values use. Nothing is ever pulled.

Usage: ``hack/images.py build`` (prints the archives) — hack/cluster.py calls it.
This is a development tool, not part of the product.
"""

from __future__ import annotations

import argparse
import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
HERE = ROOT / "hack" / "images"
CACHE = Path(os.environ.get("NOTIFQ_CACHE", str(Path.home() / ".cache" / "notifq")))
IMAGES = CACHE / "images"
SUITE = "bookworm"
MIRROR = os.environ.get("NOTIFQ_DEBIAN_MIRROR", "http://deb.debian.org/debian")
BASE_PACKAGES = ("python3", "python3-venv", "ca-certificates")
NOTIFQ_INPUTS = ("Dockerfile", ".dockerignore", "pyproject.toml", "requirements/runtime.txt")
NOTIFQ_TREES = ("notifq", "operator", "worker", "api")

# the names the chart's ci/kind-values.yaml and the cluster tests use
NOTIFQ_IMAGE = "notifq:dev"
PAUSE_IMAGE = "notifq-pause:1"
POSTGRES_IMAGE = "notifq-postgres:15"
REDIS_IMAGE = "notifq-redis:7"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Built:
    """One image archive in the cache and the name it is imported under."""

    name: str
    archive: Path


def _env() -> dict[str, str]:
    return {
        **os.environ,
        "CONTAINERS_CONF": str(HERE / "containers.conf"),
        "BUILDAH_ISOLATION": "chroot",
    }


def _run(*argv: str, cwd: Path | None = None) -> str:
    log.info("$ %s", " ".join(argv))
    out = subprocess.run(
        list(argv), cwd=cwd, env=_env(), check=False, capture_output=True, text=True
    )
    if out.returncode != 0:
        raise RuntimeError(
            f"{argv[0]} failed ({out.returncode}):\n{out.stdout[-4000:]}\n{out.stderr[-4000:]}"
        )
    return out.stdout


def _digest(parts: Iterable[bytes]) -> str:
    h = hashlib.sha256()
    for part in parts:
        h.update(hashlib.sha256(part).digest())
    return h.hexdigest()[:16]


def _files(paths: Iterable[Path]) -> list[bytes]:
    """Names and contents of every file under ``paths`` (sorted, caches skipped)."""
    out: list[bytes] = []
    for top in paths:
        files = (
            [top]
            if top.is_file()
            else sorted(p for p in top.rglob("*") if p.is_file() or p.is_symlink())
        )
        for f in files:
            if "__pycache__" in f.parts or f.suffix == ".pyc":
                continue
            rel = str(f.relative_to(ROOT)).encode()
            body = os.readlink(f).encode() if f.is_symlink() else f.read_bytes()
            out += [rel, body]
    return out


def _have_local(name: str) -> bool:
    return (
        subprocess.run(
            ["buildah", "inspect", "--type", "image", name],
            env=_env(),
            capture_output=True,
            check=False,
        ).returncode
        == 0
    )


KEEP_ARCHIVES = 3
"""Archives kept per image (the newest): each code change makes a ~0.5 GB notifq
archive, and worktrees sharing the cache may still use the previous ones."""


def prune(archive: Path, keep: int = KEEP_ARCHIVES) -> list[Path]:
    """Delete older archives of the same image as ``archive`` (``<image>-<key>.tar``),
    keeping the newest ``keep`` and ``archive`` itself; returns what was deleted."""
    image = archive.name.rsplit("-", 1)[0]
    others = [
        p
        for p in archive.parent.glob(f"{image}-*.tar")
        if p != archive and p.name.rsplit("-", 1)[0] == image
    ]
    others.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    stale = others[max(keep - 1, 0) :]
    for p in stale:
        p.unlink(missing_ok=True)
    return stale


def _save(local: str, name: str, archive: Path) -> Path:
    tmp = archive.with_suffix(".tmp")
    tmp.unlink(missing_ok=True)
    _run("buildah", "push", "--quiet", local, f"docker-archive:{tmp}:{name}")
    tmp.rename(archive)
    repo = local.rsplit(":", 1)[0]
    for old in prune(archive):
        key = old.stem.rsplit("-", 1)[1]
        subprocess.run(  # its build in buildah's store too; absent is fine
            ["buildah", "rmi", f"{repo}:{key}"], env=_env(), capture_output=True, check=False
        )
        log.info("removed the older image %s (archive and %s:%s)", old.name, repo, key)
    return archive


def base() -> tuple[str, Path]:
    """The debootstrap rootfs (cached as a tar) and its local image name."""
    key = _digest([SUITE.encode(), " ".join(BASE_PACKAGES).encode()])
    rootfs_tar = IMAGES / f"base-{SUITE}-{key}.rootfs.tar"
    if not rootfs_tar.exists():
        IMAGES.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="notifq-debootstrap-") as tmp:
            rootfs = Path(tmp) / "rootfs"
            log.info("debootstrap %s (about a minute)", SUITE)
            _run(
                "debootstrap",
                "--variant=minbase",
                f"--include={','.join(BASE_PACKAGES)}",
                SUITE,
                str(rootfs),
                MIRROR,
            )
            # apt inside later builds reaches the same Debian mirror
            (rootfs / "etc/apt/sources.list").write_text(f"deb {MIRROR} {SUITE} main\n")
            shutil.rmtree(rootfs / "var/cache/apt/archives", ignore_errors=True)
            (rootfs / "var/cache/apt/archives/partial").mkdir(parents=True)
            tmp_tar = rootfs_tar.with_suffix(".tmp")
            _run("tar", "--numeric-owner", "-C", str(rootfs), "-cf", str(tmp_tar), ".")
            tmp_tar.rename(rootfs_tar)
    local = f"localhost/notifq-base:{key}"
    if not _have_local(local):
        _run("podman", "import", "--change", "CMD=/bin/bash", str(rootfs_tar), local)
    return local, rootfs_tar


def _bud(
    tag: str,
    context: Path,
    containerfile: Path,
    build_args: dict[str, str],
    volumes: Iterable[str] = (),
) -> None:
    args = [f"--build-arg={k}={v}" for k, v in build_args.items()]
    args += [f"--volume={v}" for v in volumes]
    _run(
        "buildah",
        "bud",
        "--isolation",
        "chroot",
        "--pull=never",
        "--layers=false",
        "--format",
        "docker",
        *args,
        "-f",
        str(containerfile),
        "-t",
        tag,
        str(context),
    )


def notifq(base_image: str) -> Built:
    key = _digest([base_image.encode(), *_files(ROOT / p for p in (*NOTIFQ_INPUTS, *NOTIFQ_TREES))])
    archive = IMAGES / f"notifq-{key}.tar"
    if not archive.exists():
        local = f"localhost/notifq:{key}"
        args, volumes = {"PYTHON_IMAGE": base_image}, []
        # the package index may sit behind a TLS-intercepting proxy the host trusts
        host_ca = os.environ.get("PIP_CERT") or os.environ.get("SSL_CERT_FILE")
        if host_ca and Path(host_ca).is_file():
            args["PIP_CERT"] = "/run/notifq-host-ca.crt"
            volumes.append(f"{host_ca}:/run/notifq-host-ca.crt:ro")
        _bud(local, ROOT, ROOT / "Dockerfile", args, volumes)
        _save(local, NOTIFQ_IMAGE, archive)
    return Built(NOTIFQ_IMAGE, archive)


def pause(pause_binary: Path) -> Built:
    containerfile = HERE / "pause" / "Containerfile"
    key = _digest([containerfile.read_bytes(), pause_binary.read_bytes()])
    archive = IMAGES / f"pause-{key}.tar"
    if not archive.exists():
        with tempfile.TemporaryDirectory(prefix="notifq-pause-") as tmp:
            shutil.copy2(pause_binary, Path(tmp) / "pause")
            local = f"localhost/notifq-pause:{key}"
            _bud(local, Path(tmp), containerfile, {})
            _save(local, PAUSE_IMAGE, archive)
    return Built(PAUSE_IMAGE, archive)


def datastore(which: str, name: str, base_image: str) -> Built:
    context = HERE / which
    key = _digest([base_image.encode(), *_files([context])])
    archive = IMAGES / f"{which}-{key}.tar"
    if not archive.exists():
        local = f"localhost/notifq-{which}:{key}"
        _bud(local, context, context / "Containerfile", {"BASE": base_image})
        _save(local, name, archive)
    return Built(name, archive)


def build_all(pause_binary: Path) -> list[Built]:
    """Every image of the local cluster, built only when its inputs changed."""
    base_image, _ = base()
    return [
        pause(pause_binary),
        datastore("postgres", POSTGRES_IMAGE, base_image),
        datastore("redis", REDIS_IMAGE, base_image),
        notifq(base_image),
    ]


def import_all(built: Iterable[Built], ctr: list[str], marker_dir: Path) -> None:
    """Load archives into containerd (namespace k8s.io), skipping ones already loaded."""
    marker_dir.mkdir(parents=True, exist_ok=True)
    for b in built:
        marker = marker_dir / b.archive.name
        if marker.exists():
            continue
        _run(*ctr, "-n", "k8s.io", "images", "import", str(b.archive))
        marker.touch()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=["build"])
    parser.add_argument("--pause-binary", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[images] %(message)s")
    for b in build_all(args.pause_binary):
        sys.stdout.write(f"{b.name} {b.archive}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
