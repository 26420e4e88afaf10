"""Subject, text body and HTML body templates, rendered per recipient in a Jinja2 sandbox.

Templates see ``recipient``, ``index``, ``campaign`` (the resource name) and the
recipient's fields (a CSV row, a ``records`` entry; :meth:`MessageTemplate.fields` names
those a template uses, which the operator checks against the list). Undefined names are
errors, and the operator renders every template once with a sample recipient before it
accepts a campaign, so a typo fails the campaign with a clear message instead of failing
every message. Values inserted into the HTML template are HTML-escaped; a campaign with
HTML and no text template gets its text part made from each rendered HTML body
(:mod:`notifq.core.htmltext`).

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

import html
import re
from collections.abc import Iterator, Mapping
from typing import Any

from jinja2 import StrictUndefined, meta, nodes
from jinja2 import TemplateError as JinjaTemplateError
from jinja2.exceptions import SecurityError
from jinja2.runtime import Context
from jinja2.sandbox import SandboxedEnvironment

from notifq.core.errors import TemplateError
from notifq.core.htmltext import html_to_text

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
_HTML_ENV = BudgetedSandbox(undefined=StrictUndefined, autoescape=True, keep_trailing_newline=True)
"""The ``html`` template's environment: every inserted value is HTML-escaped."""

GLOBALS = frozenset(_ENV.globals)
"""Names Jinja defines itself (``range``, ``dict``, …): never recipient fields."""

Data = Mapping[str, str] | None
"""A recipient's fields (a CSV row, a ``records`` entry), or None (a plain address)."""


def context(recipient: str, index: int, campaign: str, data: Data) -> dict[str, Any]:
    """What a template sees: the recipient's fields, then the three variables (which win)."""
    ctx: dict[str, Any] = dict(data) if data else {}
    ctx["recipient"] = recipient
    ctx["index"] = index
    ctx["campaign"] = campaign
    return ctx


class MissingField(TemplateError):
    """A template names a field the recipient does not have."""


class _Substitution:
    """A template made only of literal text and plain variables."""

    def __init__(self, parts: list[tuple[bool, str]]) -> None:
        self.parts = parts

    def render(self, ctx: Mapping[str, Any]) -> str:
        """The text; :class:`KeyError` for a name ``ctx`` lacks (see :func:`missing`)."""
        return "".join(str(ctx[v]) if var else v for var, v in self.parts)


class _EscapedSubstitution(_Substitution):
    """The same for the HTML template: every value HTML-escaped."""

    def render(self, ctx: Mapping[str, Any]) -> str:
        return "".join(html.escape(str(ctx[v])) if var else v for var, v in self.parts)


def missing(exc: KeyError) -> MissingField:
    """The error of a plain substitution whose field the recipient does not have."""
    return MissingField(f"template failed to render: {exc.args[0]!r} is undefined (no such field)")


def _substitution(tree: nodes.Template, *, escape: bool = False) -> _Substitution | None:
    """The fast form of a parsed template, or None when it needs Jinja."""
    parts: list[tuple[bool, str]] = []
    for node in tree.body:
        if not isinstance(node, nodes.Output):
            return None
        for child in node.nodes:
            if isinstance(child, nodes.TemplateData):
                parts.append((False, child.data))
            elif isinstance(child, nodes.Name) and child.name not in GLOBALS:
                parts.append((True, child.name))
            else:
                return None
    return _EscapedSubstitution(parts) if escape else _Substitution(parts)


FIELDS = ("subject", "body", "html")
"""The templates of a message, in the order they render (``body`` is the text part)."""


class MessageTemplate:
    """A campaign's subject, text body and optional HTML body.

    ``body_source`` is the text part; when it is empty and ``html_source`` is given, the
    text part is made from each rendered HTML body (:func:`htmltext.html_to_text`).
    Construction only parses (linear in the source); a template that needs Jinja
    is compiled on its first :meth:`render`, which callers run in a renderer
    subprocess unless :attr:`fast` is true.
    """

    def __init__(
        self, campaign: str, subject_source: str, body_source: str, html_source: str | None = None
    ) -> None:
        self.campaign = campaign
        self.subject_source = subject_source
        self.body_source = body_source
        self.html_source = html_source or None
        _refuse_control("subject", subject_source, SUBJECT_CONTROL)
        _refuse_control("body", body_source, BODY_CONTROL)
        self.text_from_html = self.html_source is not None and not body_source
        """No text template: the text part is made from the rendered HTML."""
        self._trees = {
            "subject": _parse("subject", subject_source),
            "body": _parse("body", body_source),
        }
        if self.html_source is not None:
            _refuse_control("html", self.html_source, BODY_CONTROL)
            self._trees["html"] = _parse("html", self.html_source, _HTML_ENV)
        self._fast = {f: _substitution(tree, escape=f == "html") for f, tree in self._trees.items()}
        self._fast_subject = self._fast["subject"]
        self._fast_body = self._fast["body"]
        self._fast_html = self._fast.get("html")
        self.fast = all(v is not None for v in self._fast.values()) and not self.text_from_html
        """Every template is a plain substitution: safe and cheap to render in-process. Not
        when the text is made from the HTML: parsing HTML costs tens of microseconds per
        message and more for a large body, so it runs in a renderer, on its budget."""
        self._jinja: dict[str, Any] | None = None

    def fields(self) -> set[str]:
        """The names the templates use that are not the three variables nor Jinja's own:
        the recipient fields they need."""
        used: set[str] = set()
        for tree in self._trees.values():
            used |= meta.find_undeclared_variables(tree)
        return used - VARIABLES - GLOBALS

    def render(self, recipient: str, index: int, data: Data = None) -> tuple[str, str, str | None]:
        """Subject, text body and HTML body (None when there is no HTML template) for one
        recipient, without a budget; :class:`TemplateError` when it does not render."""
        if self.fast:  # the hot path of every plain campaign: kept to a few operations
            if data:
                ctx = {**data, "recipient": recipient, "index": index, "campaign": self.campaign}
            else:
                ctx = {"recipient": recipient, "index": index, "campaign": self.campaign}
            try:
                subject = self._fast_subject.render(ctx)  # type: ignore[union-attr]
                if self._fast_html is None:
                    return subject, self._fast_body.render(ctx), None  # type: ignore[union-attr]
                page = self._fast_html.render(ctx)
                return subject, self._fast_body.render(ctx), page  # type: ignore[union-attr]
            except KeyError as exc:
                raise missing(exc) from None
        parts = {f: "".join(self.generate(recipient, index, f, data)) for f in self._trees}
        html_body = parts.get("html")
        text = html_to_text(html_body or "") if self.text_from_html else parts["body"]
        return parts["subject"], text, html_body

    def generate(self, recipient: str, index: int, field: str, data: Data = None) -> Iterator[str]:
        """The pieces of one field's text, produced lazily (so a budget can stop them)."""
        if field not in self._trees:
            return
        ctx = context(recipient, index, self.campaign, data)
        fast = self._fast[field]
        if fast is not None:
            try:
                yield fast.render(ctx)
            except KeyError as exc:
                raise missing(exc) from None
            return
        template = self.compile()[field]
        try:
            yield from template.generate(ctx)
        except JinjaTemplateError as exc:
            raise TemplateError(f"template failed to render: {exc}") from exc

    def check(self, data: Data = None) -> None:
        """Render once with a sample recipient, without a budget; raises :class:`TemplateError`."""
        self.render("sample@example.com", 0, data)

    def compile(self) -> dict[str, Any]:
        """The Jinja templates by field (compiled once); see :attr:`fast` for when none are
        needed."""
        if self._jinja is None:
            sources = {"subject": self.subject_source, "body": self.body_source}
            if self.html_source is not None:
                sources["html"] = self.html_source
            self._jinja = {
                f: _compile(f, src, _HTML_ENV if f == "html" else _ENV)
                for f, src in sources.items()
            }
        return self._jinja


def _refuse_control(field: str, source: str, pattern: re.Pattern[str]) -> None:
    found = pattern.search(source)
    if found is not None:
        raise TemplateError(
            f"{field} template contains a control character (U+{ord(found.group()):04X})"
        )


def _parse(field: str, source: str, env: SandboxedEnvironment = _ENV) -> nodes.Template:
    try:
        return env.parse(source)
    except JinjaTemplateError as exc:
        raise TemplateError(f"{field} template does not compile: {exc}") from exc
    except RecursionError as exc:
        raise TemplateError(f"{field} template does not compile: nested too deeply") from exc


def _compile(field: str, source: str, env: SandboxedEnvironment = _ENV) -> Any:
    try:
        return env.from_string(source)
    except JinjaTemplateError as exc:
        raise TemplateError(f"{field} template does not compile: {exc}") from exc
    except RecursionError as exc:
        raise TemplateError(f"{field} template does not compile: nested too deeply") from exc


def check_output(subject: str, body: str, html_body: str | None = None) -> str | None:
    """Why a rendered message cannot be sent (control characters, bad Unicode), or None."""
    found = SUBJECT_CONTROL.search(subject)
    if found is not None:
        return f"rendered subject contains a control character (U+{ord(found.group()):04X})"
    for name, text in (("body", body), ("html", html_body or "")):
        found = BODY_CONTROL.search(text)
        if found is not None:
            return f"rendered {name} contains a control character (U+{ord(found.group()):04X})"
    try:
        subject.encode("utf-8")
        body.encode("utf-8")
        (html_body or "").encode("utf-8")
    except UnicodeEncodeError as exc:
        return f"rendered text is not valid Unicode: {exc.reason}"
    return None
