"""Generated credentials, created once inside the cluster: ``notifq-secrets ensure``.

A chart cannot keep a random value under ``helm template`` (Tilt, Argo CD): there
is no live Secret to look up, so every render would make a new password, and
pods started later could not log in to the Postgres initialised with the first
one. So the chart renders no random value at all. A small Job runs

    notifq-secrets ensure <secret> jwt-secret:48 admin-password:24 ...

which creates the Secret with a random value for every listed key it lacks and
never changes a key that exists (``kubectl create secret`` semantics, with
optimistic concurrency, so two runs at once cannot both write a key). Pods that
reference it wait (``CreateContainerConfigError``, no restarts) until it exists.
"""

from __future__ import annotations

import argparse
import base64
import logging
import secrets
import string
import sys
from typing import Any

from kubernetes import client as k8s
from kubernetes import config as k8s_config

from notifq.core.incluster import own_namespace

log = logging.getLogger(__name__)

ALPHABET = string.ascii_letters + string.digits
"""Letters and digits only: the values go into URLs (the database URL) unescaped."""
ATTEMPTS = 5


def random_value(length: int) -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(length))


def _encode(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


def ensure(
    api: k8s.CoreV1Api,
    namespace: str,
    name: str,
    lengths: dict[str, int],
    labels: dict[str, str] | None = None,
    adopt: dict[str, str] | None = None,
) -> list[str]:
    """Give Secret ``name`` a value for each key of ``lengths`` it lacks — the one in
    ``adopt`` (base64, e.g. an older release's credential) or a random one; returns the
    keys it added. Existing keys are never changed."""
    adopt = adopt or {}

    def new(key: str, length: int) -> str:
        return adopt.get(key) or _encode(random_value(length))

    for _ in range(ATTEMPTS):
        try:
            secret = api.read_namespaced_secret(name, namespace)
        except k8s.ApiException as exc:
            if exc.status != 404:
                raise
            data = {key: new(key, n) for key, n in lengths.items()}
            body: dict[str, Any] = {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": name, "namespace": namespace, "labels": labels or {}},
                "type": "Opaque",
                "data": data,
            }
            try:
                api.create_namespaced_secret(namespace, body)
            except k8s.ApiException as exc2:
                if exc2.status == 409:  # created meanwhile: merge into that one
                    continue
                raise
            return sorted(data)
        data = dict(secret.data or {})
        missing = {key: n for key, n in lengths.items() if key not in data}
        if not missing:
            return []
        data.update({key: new(key, n) for key, n in missing.items()})
        secret.data = data
        try:  # carries the resourceVersion we read: a concurrent change makes this fail
            api.replace_namespaced_secret(name, namespace, secret)
        except k8s.ApiException as exc:
            if exc.status == 409:
                continue
            raise
        return sorted(missing)
    raise RuntimeError(f"Secret {namespace}/{name} kept changing; gave up after {ATTEMPTS} tries")


def _adoptable(api: k8s.CoreV1Api, namespace: str, name: str | None) -> dict[str, str]:
    """The data of Secret ``name`` (empty when not given or absent)."""
    if not name:
        return {}
    try:
        return dict(api.read_namespaced_secret(name, namespace).data or {})
    except k8s.ApiException as exc:
        if exc.status == 404:
            return {}
        raise


def _key_length(text: str) -> tuple[str, int]:
    key, _, length = text.partition(":")
    if not key or not length.isdigit() or not 16 <= int(length) <= 256:
        raise argparse.ArgumentTypeError(f"expected KEY:LENGTH (16-256), got {text!r}")
    return key, int(length)


def _label(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="notifq-secrets", description=__doc__)
    sub = parser.add_subparsers(dest="action", required=True)
    cmd = sub.add_parser("ensure", help="add missing random keys to a Secret, change none")
    cmd.add_argument("name", help="the Secret")
    cmd.add_argument("keys", nargs="+", type=_key_length, metavar="KEY:LENGTH")
    cmd.add_argument("--namespace", "-n", default=None, help="default: the pod's namespace")
    cmd.add_argument("--label", "-l", action="append", type=_label, default=[])
    cmd.add_argument(
        "--adopt-from",
        default=None,
        help="a Secret whose values of the keys are taken instead of random ones (if it has them)",
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        k8s_config.load_incluster_config()
    except k8s_config.ConfigException:
        k8s_config.load_kube_config()
    namespace = own_namespace(args.namespace)
    api = k8s.CoreV1Api()
    try:
        adopt = _adoptable(api, namespace, args.adopt_from)
        added = ensure(api, namespace, args.name, dict(args.keys), dict(args.label), adopt)
    except k8s.ApiException as exc:
        log.error("cannot write Secret %s/%s: %s %s", namespace, args.name, exc.status, exc.reason)
        sys.exit(1)
    if added:
        log.info("Secret %s/%s: generated %s", namespace, args.name, ", ".join(added))
    else:
        log.info("Secret %s/%s: every key exists, nothing changed", namespace, args.name)


if __name__ == "__main__":
    main()
