"""``kubectl notifq <command>``: argument parsing and the commands.

Install puts ``kubectl-notifq`` on the PATH next to the package; kubectl finds it
as a plugin. Every command reads or patches Campaigns with the kubeconfig's user.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from notifq.core.resource import retry_patch, retry_token
from notifq.kubectl import report
from notifq.kubectl.client import Campaigns, PluginError, Resource

Out = Callable[[str], None]


def _status(res: Resource) -> dict[str, Any]:
    return dict(res.get("status") or {})


def cmd_status(api: Campaigns, args: argparse.Namespace, out: Out) -> int:
    res = api.get(args.namespace, args.name)
    for line in report.status_lines(res):
        out(line)
    return 0


def cmd_top(api: Campaigns, args: argparse.Namespace, out: Out) -> int:
    namespace = None if args.all_namespaces else args.namespace
    rounds = 0
    before = {r["metadata"]["uid"]: r for r in api.list(namespace)}
    while True:
        time.sleep(args.interval)
        now = {r["metadata"]["uid"]: r for r in api.list(namespace)}
        rows = []
        for uid, res in now.items():
            old = before.get(uid)
            rate = (
                report.sampled_rate(_status(old), _status(res), args.interval)
                if old is not None
                else report.average_rate(_status(res), datetime.now(UTC))
            )
            rows.append(report.top_row(res, rate))
        out(report.table(report.TOP_HEADER, rows) if rows else "No campaigns found.")
        rounds += 1
        if not args.watch or (args.count and rounds >= args.count):
            return 0
        out("")
        before = now


def _intent(
    patch: dict[str, Any], verb: str
) -> Callable[[Campaigns, argparse.Namespace, Out], int]:
    def run(api: Campaigns, args: argparse.Namespace, out: Out) -> int:
        res = api.get(args.namespace, args.name)
        if verb != "cancelled" and (res.get("spec") or {}).get("cancel"):
            raise PluginError(f"campaign {args.namespace}/{args.name} is cancelled")
        api.patch(res, patch)
        out(f"campaign.notifq.dev/{args.name} {verb}")
        return 0

    return run


def cmd_retry(api: Campaigns, args: argparse.Namespace, out: Out) -> int:
    res = api.get(args.namespace, args.name)
    if (res.get("spec") or {}).get("cancel"):
        raise PluginError(f"campaign {args.namespace}/{args.name} is cancelled")
    if not int(_status(res).get("failed") or 0):
        raise PluginError(f"campaign {args.namespace}/{args.name} has no failed messages")
    token = retry_token()
    api.patch(res, retry_patch(token))
    if args.no_wait:
        out(f"campaign.notifq.dev/{args.name} retry requested ({token})")
        return 0
    deadline = time.monotonic() + args.timeout
    while time.monotonic() < deadline:
        time.sleep(0.5)
        status = _status(api.get(args.namespace, args.name))
        retry = status.get("retry") or {}
        if retry.get("token") == token:
            out(
                f"campaign.notifq.dev/{args.name} retrying {int(retry.get('retried') or 0):,} "
                f"failed message(s); phase {status.get('phase')}"
            )
            return 0
    raise PluginError(
        f"retry requested ({token}) but the operator has not acted within {args.timeout:g}s"
    )


def cmd_failures(api: Campaigns, args: argparse.Namespace, out: Out) -> int:
    status = _status(api.get(args.namespace, args.name))
    failed = int(status.get("failed") or 0)
    if not failed and not args.continue_:
        out(f"campaign {args.namespace}/{args.name} has no failed messages")
        return 0
    if not args.continue_:
        reasons = list(status.get("failureReasons") or [])
        rows = [[f"{int(r.get('count') or 0):,}", str(r.get("reason") or "")] for r in reasons]
        out(f"{failed:,} failed message(s); by reason:")
        out(report.table(("COUNT", "REASON"), rows) if rows else "(no reasons recorded yet)")
        out("")
    page = api.failures(args.namespace, args.name, args.limit, args.continue_)
    if page is None:
        out("failed recipients: this cluster does not serve the reports API (reports.notifq.dev);")
        out("install the chart with api.reports.enabled=true (docs/kubernetes.md)")
        return 0
    items = list(page.get("items") or [])
    rows = [
        [str(i.get("recipient", "")), str(i.get("attempts", "")), str(i.get("reason") or "")]
        for i in items
    ]
    out(report.table(("RECIPIENT", "ATTEMPTS", "REASON"), rows) if rows else "(none)")
    cont = (page.get("metadata") or {}).get("continue")
    if cont:
        out(f"more: --continue {cont}")
    return 0


def cmd_suppressions(api: Campaigns, args: argparse.Namespace, out: Out) -> int:
    query: list[tuple[str, object]] = [("limit", args.limit)]
    if args.continue_:
        query.append(("continue", args.continue_))
    page = api.suppressions("GET", args.namespace, query=query)
    rows = [
        [str(i.get("recipient")), str(i.get("reason")), str(i.get("detail") or ""),
         str(i.get("createdAt") or "")]
        for i in page.get("items") or []
    ]  # fmt: skip
    out(report.table(("RECIPIENT", "REASON", "DETAIL", "SINCE"), rows) if rows else "(none)")
    cont = (page.get("metadata") or {}).get("continue")
    if cont:
        out(f"more: --continue {cont}")
    return 0


def cmd_suppress(api: Campaigns, args: argparse.Namespace, out: Out) -> int:
    body = {"recipients": args.recipients, "detail": args.detail}
    added = (api.suppressions("POST", args.namespace, body=body).get("details") or {}).get("added")
    out(f"{int(added or 0)} recipient(s) suppressed in {args.namespace}")
    return 0


def cmd_unsuppress(api: Campaigns, args: argparse.Namespace, out: Out) -> int:
    api.suppressions("DELETE", args.namespace, name=args.recipient)
    out(f"{args.recipient} is no longer suppressed in {args.namespace}")
    return 0


LIST_COMMANDS = frozenset({"top", "suppressions", "suppress", "unsuppress"})
"""Commands that name no Campaign."""

COMMANDS: dict[str, tuple[str, Callable[[Campaigns, argparse.Namespace, Out], int]]] = {
    "status": ("Counts, progress, rate and ETA of one campaign.", cmd_status),
    "top": ("A live table of campaigns: counts, rate and ETA.", cmd_top),
    "retry": ("Send a campaign's failed messages again.", cmd_retry),
    "suspend": (
        "Pause delivery (spec.suspend = true).",
        _intent({"spec": {"suspend": True}}, "suspended"),
    ),
    "resume": (
        "Resume delivery (spec.suspend = false).",
        _intent({"spec": {"suspend": False}}, "resumed"),
    ),
    "cancel": (
        "Stop for good: unsent messages are cancelled.",
        _intent({"spec": {"cancel": True}}, "cancelled"),
    ),
    "failures": (
        "Why messages failed: reasons with counts, then the failed recipients, paged.",
        cmd_failures,
    ),
    "suppressions": ("The namespace's suppression list (never sent to).", cmd_suppressions),
    "suppress": ("Add recipients to the namespace's suppression list.", cmd_suppress),
    "unsuppress": ("Take a recipient off the namespace's suppression list.", cmd_unsuppress),
}


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="kubectl notifq",
        description="Manage notifq Campaigns with your kubeconfig identity.",
    )
    root.add_argument("--kubeconfig", help="path to the kubeconfig (default: $KUBECONFIG)")
    root.add_argument("--context", help="kubeconfig context to use")
    sub = root.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (summary, _) in COMMANDS.items():
        p = sub.add_parser(name, help=summary, description=summary)
        p.add_argument("-n", "--namespace", help="namespace (default: the context's)")
        if name == "top":
            p.add_argument("-A", "--all-namespaces", action="store_true", help="every namespace")
            p.add_argument("-w", "--watch", action="store_true", help="refresh until interrupted")
            p.add_argument("--interval", type=float, default=2.0, help="seconds between samples")
            p.add_argument("--count", type=int, default=0, help="with --watch: stop after N tables")
        if name == "suppress":
            p.add_argument("recipients", nargs="+", help="addresses (or numbers, ARNs)")
            p.add_argument("--detail", default=None, help="why (kept with the entries)")
        if name == "unsuppress":
            p.add_argument("recipient", help="the address to send to again")
        if name in LIST_COMMANDS:
            if name == "suppressions":
                p.add_argument("--limit", type=int, default=100, help="entries per page")
                p.add_argument("--continue", dest="continue_", default="", help="next page")
            continue
        p.add_argument("name", help="the Campaign's name")
        if name == "retry":
            p.add_argument("--no-wait", action="store_true", help="do not wait for the operator")
            p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait")
        if name == "failures":
            p.add_argument("--limit", type=int, default=20, help="recipients per page (1-1000)")
            p.add_argument(
                "--continue", dest="continue_", default="", help="the token of the next page"
            )
    return root


def main(argv: Sequence[str] | None = None, out: Out = print) -> int:
    args = parser().parse_args(argv)
    try:
        api = Campaigns(args.kubeconfig, args.context)
    except PluginError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        if args.namespace is None:
            args.namespace = api.default_namespace
        return COMMANDS[args.command][1](api, args, out)
    except PluginError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    finally:
        api.close()


def entry() -> None:
    sys.exit(main())
