"""A hostPath volume provisioner for the one-node cluster (hack/cluster.py).

Serves StorageClasses whose provisioner is ``notifq.dev/hostpath``: for every
unbound claim of such a class it makes a directory under ``--dir`` (mode 0777,
so a pod's non-root user can write it: fsGroup does not apply to hostPath) and
a PersistentVolume pre-bound to the claim; the controller-manager binds them.
When a PersistentVolume it made is Released and its reclaim policy is Delete,
it removes the directory and the volume. Polls once a second: one node, few
claims. This is a development tool, not part of the product.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

from kubernetes import client, config

PROVISIONER = "notifq.dev/hostpath"
NODE_NAME = "notifq-node"

log = logging.getLogger(__name__)


def volume_name(claim: Any) -> str:
    return f"pvc-{claim.metadata.uid}"


def pv_manifest(claim: Any, path: Path, reclaim: str) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {
            "name": volume_name(claim),
            "annotations": {"pv.kubernetes.io/provisioned-by": PROVISIONER},
        },
        "spec": {
            "capacity": {"storage": claim.spec.resources.requests["storage"]},
            "accessModes": claim.spec.access_modes,
            "persistentVolumeReclaimPolicy": reclaim,
            "storageClassName": claim.spec.storage_class_name,
            "hostPath": {"path": str(path), "type": "Directory"},
            "claimRef": {
                "namespace": claim.metadata.namespace,
                "name": claim.metadata.name,
                "uid": claim.metadata.uid,
            },
            "nodeAffinity": {
                "required": {
                    "nodeSelectorTerms": [
                        {
                            "matchExpressions": [
                                {
                                    "key": "kubernetes.io/hostname",
                                    "operator": "In",
                                    "values": [NODE_NAME],
                                }
                            ]
                        }
                    ]
                }
            },
        },
    }


def reconcile(core: Any, storage: Any, root: Path) -> None:
    classes = {
        sc.metadata.name: sc
        for sc in storage.list_storage_class().items
        if sc.provisioner == PROVISIONER
    }
    existing = {pv.metadata.name: pv for pv in core.list_persistent_volume().items}
    for claim in core.list_persistent_volume_claim_for_all_namespaces().items:
        sc = classes.get(claim.spec.storage_class_name or "")
        if sc is None or claim.spec.volume_name or volume_name(claim) in existing:
            continue
        path = root / f"{claim.metadata.namespace}_{claim.metadata.name}_{claim.metadata.uid}"
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(0o777)
        core.create_persistent_volume(pv_manifest(claim, path, sc.reclaim_policy or "Delete"))
        log.info(
            "provisioned %s for %s/%s",
            volume_name(claim),
            claim.metadata.namespace,
            claim.metadata.name,
        )
    for pv in existing.values():
        annotations = pv.metadata.annotations or {}
        if annotations.get("pv.kubernetes.io/provisioned-by") != PROVISIONER:
            continue
        if pv.status.phase == "Released" and pv.spec.persistent_volume_reclaim_policy == "Delete":
            path = Path(pv.spec.host_path.path)
            if path.parent == root:
                shutil.rmtree(path, ignore_errors=True)
            core.delete_persistent_volume(pv.metadata.name)
            log.info("deleted %s", pv.metadata.name)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", type=Path, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    config.load_kube_config()
    core, storage = client.CoreV1Api(), client.StorageV1Api()
    stop = False

    def on_signal(*_: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    while not stop:
        try:
            reconcile(core, storage, args.dir.resolve())
        except Exception:
            log.exception("reconcile failed; retrying")
        time.sleep(1)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
