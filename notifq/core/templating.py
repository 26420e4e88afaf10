"""Subject and body templates, rendered per recipient in a Jinja2 sandbox.

Templates see only ``recipient``, ``index`` and ``campaign`` (the resource name).
Undefined names are errors, and the operator renders every template once with a
sample recipient before it accepts a campaign, so a typo fails the campaign with
a clear message instead of failing every message.

Most templates only substitute variables (``Hello {{ recipient }}``). Those are
rendered by joining their literal parts and values, which is several times
cheaper than Jinja's per-call context set-up and gives the same text, and costs
O(output): they are rendered in-process. Anything else (filters, conditions,
loops, attribute access) goes through the sandbox, and callers run it in a
renderer subprocess with a CPU, memory and output budget
(:mod:`notifq.core.renderpool`; docs/templates.md).

The sandbox here also refuses the single operations that could take unbounded
time or memory inside one C call, where no CPU timer can interrupt them: string
or list repetition past the output budget (``'x' * 10**9``) and large powers
(``2 ** 10**9``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from typing import Any

from jinja2 import StrictUndefined, nodes
from jinja2 import TemplateError as JinjaTemplateError
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment

from notifq.core.errors import TemplateError

DEFAULT_SUBJECT = "Notification from {{ campaign }}"
DEFAULT_BODY = "Hello {{ recipient }}, this is campaign {{ campaign }}."
VARIABLES = frozenset({"recipient", "index", "campaign"})

MAX_REPEAT_ITEMS = 1 << 20
"""Largest result of ``str * n`` or ``list * n`` (characters or items)."""
MAX_EXPONENT = 4096
"""Largest integer exponent of ``**`` (bigger powers take seconds inside one C call)."""

SUBJECT_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
"""Control characters refused in a subject (CR/LF would inject e-mail headers)."""
BODY_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
"""Control characters refused in a body (tab, newline and carriage return are fine)."""


class OutputTooLarge(Exception):
    """A render produced more than its output budget."""


class BudgetedSandbox(SandboxedEnvironment):
    """Jinja's sandbox, refusing the one-call operations that no timer can stop."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Context, operator: str, left: Any, right: Any) -> Any:
        if operator == "**":
            if isinstance(right, int) and abs(right) > MAX_EXPONENT and _is_big_base(left):
                raise SecurityError(f"exponent {right} is over the limit of {MAX_EXPONENT}")
        elif operator == "*":
            for seq, n in ((left, right), (right, left)):
                if (
                    isinstance(seq, str | list | tuple)
                    and isinstance(n, int)
                    and len(seq) * n > MAX_REPEAT_ITEMS
                ):
                    raise SecurityError(
                        f"repetition to {len(seq) * n} items is over the limit "
                        f"of {MAX_REPEAT_ITEMS}"
                    )
        return super().call_binop(context, operator, left, right)


def _is_big_base(value: Any) -> bool:
    return isinstance(value, int) and abs(value) > 1


_ENV = BudgetedSandbox(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True)


class _Substitution:
    """A template made only of literal text and plain variables."""

    def __init__(self, parts: list[tuple[bool, str]]) -> None:
        self.parts = parts

    def render(self, ctx: Mapping[str, Any]) -> str:
        return "".join(str(ctx[v]) if is_var else v for is_var, v in self.parts)


def _substitution(tree: nodes.Template) -> _Substitution | None:
    """The fast form of a parsed template, or None when it needs Jinja."""
    parts: list[tuple[bool, str]] = []
    for node in tree.body:
        if not isinstance(node, nodes.Output):
            return None
        for child in node.nodes:
            if isinstance(child, nodes.TemplateData):
                parts.append((False, child.data))
            elif isinstance(child, nodes.Name) and child.name in VARIABLES:
                parts.append((True, child.name))
            else:
                return None
    return _Substitution(parts)


class MessageTemplate:
    """A subject/body pair for one campaign.

    Construction only parses (linear in the source); a template that needs Jinja
    is compiled on its first :meth:`render`, which callers run in a renderer
    subprocess unless :attr:`fast` is true.
    """

    def __init__(self, campaign: str, subject_source: str, body_source: str) -> None:
        self.campaign = campaign
        self.subject_source = subject_source
        self.body_source = body_source
        _refuse_control("subject", subject_source, SUBJECT_CONTROL)
        _refuse_control("body", body_source, BODY_CONTROL)
        self._subject = _parse("subject", subject_source)
        self._body = _parse("body", body_source)
        self.fast = self._subject is not None and self._body is not None
        """Both templates are plain substitutions: safe and cheap to render in-process."""
        self._jinja: tuple[Any, Any] | None = None

    def render(self, recipient: str, index: int) -> tuple[str, str]:
        """Subject and body for one recipient, without a budget."""
        if self._subject is not None and self._body is not None:
            ctx = {"recipient": recipient, "index": index, "campaign": self.campaign}
            return self._subject.render(ctx), self._body.render(ctx)
        return "".join(self.generate(recipient, index, "subject")), "".join(
            self.generate(recipient, index, "body")
        )

    def generate(self, recipient: str, index: int, field: str) -> Iterator[str]:
        """The pieces of one field's text, produced lazily (so a budget can stop them)."""
        ctx = {"recipient": recipient, "index": index, "campaign": self.campaign}
        fast = self._subject if field == "subject" else self._body
        if fast is not None:
            yield fast.render(ctx)
            return
        subject, body = self.compile()
        template = subject if field == "subject" else body
        try:
            yield from template.generate(ctx)
        except JinjaTemplateError as exc:
            raise TemplateError(f"template failed to render: {exc}") from exc

    def check(self) -> None:
        """Render once with a sample recipient, without a budget; raises :class:`TemplateError`."""
        self.render("sample@example.com", 0)

    def compile(self) -> tuple[Any, Any]:
        """The Jinja templates (compiled once); see :attr:`fast` for when none are needed."""
        if self._jinja is None:
            self._jinja = (
                _compile("subject", self.subject_source),
                _compile("body", self.body_source),
            )
        return self._jinja


def _refuse_control(field: str, source: str, pattern: re.Pattern[str]) -> None:
    found = pattern.search(source)
    if found is not None:
        raise TemplateError(
            f"{field} template contains a control character (U+{ord(found.group()):04X})"
        )


def _parse(field: str, source: str) -> _Substitution | None:
    try:
        return _substitution(_ENV.parse(source))
    except JinjaTemplateError as exc:
        raise TemplateError(f"{field} template does not compile: {exc}") from exc
    except RecursionError as exc:
        raise TemplateError(f"{field} template does not compile: nested too deeply") from exc


def _compile(field: str, source: str) -> Any:
    try:
        return _ENV.from_string(source)
    except JinjaTemplateError as exc:
        raise TemplateError(f"{field} template does not compile: {exc}") from exc
    except RecursionError as exc:
        raise TemplateError(f"{field} template does not compile: nested too deeply") from exc


def check_output(subject: str, body: str) -> str | None:
    """Why a rendered message cannot be sent (control characters, bad Unicode), or None."""
    found = SUBJECT_CONTROL.search(subject)
    if found is not None:
        return f"rendered subject contains a control character (U+{ord(found.group()):04X})"
    found = BODY_CONTROL.search(body)
    if found is not None:
        return f"rendered body contains a control character (U+{ord(found.group()):04X})"
    try:
        subject.encode("utf-8")
        body.encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"rendered text is not valid Unicode: {exc.reason}"
    return None
