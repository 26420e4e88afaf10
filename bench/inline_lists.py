"""How long an inline recipient list can be, per way of creating a Campaign.

Starts etcd + kube-apiserver (the test bed), installs the Campaign CRD with
``maxItems`` lifted to ``--ceiling``, and finds by bisection the largest
``spec.recipients.list`` that ``kubectl apply``, ``kubectl apply
--server-side`` and ``kubectl create`` get accepted, for addresses of a few
lengths. The REST API creates the resource the way ``kubectl create`` does
(one POST, two short annotations), behind its own body limit
(``NOTIFQ_MAX_BODY_BYTES``). It also reports whether the API server accepts the
CRD at all with that ``maxItems`` (CEL rules have a cost budget proportional
to it).

Usage: ``bench/inline_lists.py [--ceiling 200000] [--lengths 21,40,64]``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections.abc import Callable
from pathlib import Path

import testbed
import yaml

from notifq.core.resource import API_VERSION

ROOT = Path(__file__).resolve().parent.parent


def crd_with_max_items(n: int) -> str:
    doc = yaml.safe_load((ROOT / "crds" / "notifq.dev_campaigns.yaml").read_text())
    spec = doc["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"]
    spec["properties"]["recipients"]["properties"]["list"]["maxItems"] = n
    return yaml.safe_dump(doc)


def addresses(n: int, length: int) -> list[str]:
    out = []
    for i in range(n):
        local = f"u{i}."
        pad = length - len(local) - len("@example.com")
        out.append(local + "x" * max(pad, 0) + "@example.com")
    return out


def manifest(name: str, n: int, length: int) -> str:
    return json.dumps(
        {
            "apiVersion": API_VERSION,
            "kind": "Campaign",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {"recipients": {"list": addresses(n, length)}},
        }
    )


def largest(works: Callable[[int], bool], hi: int) -> int:
    lo = 0  # works(lo) is known true (an empty list is not tried)
    if works(hi):
        return hi
    while hi - lo > max(1, lo // 200):  # 0.5 % precision is plenty
        mid = (lo + hi) // 2
        if works(mid):
            lo = mid
        else:
            hi = mid
    return lo


_names = iter(range(10**9))


def probe(cp: testbed.ControlPlane, argv: list[str], length: int, ceiling: int) -> tuple[int, str]:
    """The largest list ``kubectl argv`` gets accepted, and the error just past it."""
    errors: dict[int, str] = {}

    def works(n: int) -> bool:
        name = f"l{next(_names)}"
        res = cp.kubectl(*argv, input=manifest(name, n, length), check=False)
        if res.returncode == 0:
            cp.kubectl("delete", "campaign", name, "--wait=false", check=False)
            return True
        errors[n] = res.stderr.strip().splitlines()[-1][-200:] if res.stderr else "?"
        return False

    best = largest(works, ceiling)
    return best, errors[min(errors)] if errors else "-"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ceiling", type=int, default=200_000)
    ap.add_argument("--lengths", default="21,40,64")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="notifq-lists-"))
    cp = testbed.ControlPlane(work / "k8s").start()
    try:
        ceiling = args.ceiling
        while True:  # the CEL rules' estimated cost grows with maxItems
            out = cp.kubectl("apply", "-f", "-", input=crd_with_max_items(ceiling), check=False)
            verdict = "accepted" if out.returncode == 0 else out.stderr.strip().splitlines()[-1]
            print(f"CRD with maxItems {ceiling}: {verdict[:200]}", flush=True)
            if out.returncode == 0:
                break
            ceiling = ceiling * 9 // 10
        testbed.wait_for(
            lambda: cp.kubectl("get", "campaigns", check=False).returncode == 0, 60, "the CRD"
        )
        methods = {
            "kubectl apply": ["apply", "-f", "-"],
            "kubectl apply --server-side": ["apply", "--server-side", "-f", "-"],
            "kubectl create": ["create", "-f", "-"],
        }
        for length in (int(x) for x in args.lengths.split(",")):
            for label, argv in methods.items():
                best, error = probe(cp, argv, length, ceiling)
                size = len(json.dumps(addresses(best, length)))
                print(
                    f"{label:28s} address {length:3d} chars: {best:7d} entries "
                    f"({size / 1024:.0f} KiB of list); past it: {error}",
                    flush=True,
                )
    finally:
        cp.stop()


if __name__ == "__main__":
    main()
