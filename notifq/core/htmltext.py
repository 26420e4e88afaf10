"""A plain-text part made from an HTML body, for campaigns that give only ``html``.

Uses the standard library's :class:`html.parser.HTMLParser` (linear in the input, no
dependency): tags are dropped, ``<script>``/``<style>``/``<head>``/``<title>`` content too,
a link keeps its target as ``text (url)`` (only when the target differs from the text,
and not for ``#`` or ``javascript:`` targets), ``<img>`` keeps its ``alt``; block
elements (``p``, ``div``, ``br``, ``li``, headings, table rows …) break lines, list items
get a ``- `` bullet; runs of white space collapse to one space, and more than one blank
line collapses to one. Character references (``&amp;``) are decoded.
"""

from __future__ import annotations

import re
from html.parser import HTMLParser

SKIPPED = frozenset({"script", "style", "head", "title", "template", "noscript"})
"""Elements whose content is not text a reader should see."""

BLOCKS = frozenset(
    {
        "p",
        "div",
        "br",
        "hr",
        "li",
        "ul",
        "ol",
        "tr",
        "table",
        "section",
        "article",
        "header",
        "footer",
        "blockquote",
        "pre",
        "h1",
        "h2",
        "h3",
        "h4",
        "h5",
        "h6",
    }
)
"""Elements that start or end a line of text."""

BREAK = "\x00"
"""Marks a line break from a block element (a NUL never survives into a sent message)."""
_SPACE = re.compile(r"\s+")
_BLANKS = re.compile(r"\n{3,}")


class _TextParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.out: list[str] = []
        self.skip = 0
        self.links: list[tuple[str | None, int]] = []
        """Open ``<a>`` elements: (target, where their text starts in ``out``)."""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in SKIPPED:
            self.skip += 1
            return
        if tag in BLOCKS:
            self.out.append(BREAK)
            if tag == "li":
                self.out.append("- ")
        if tag == "a":
            self.links.append((dict(attrs).get("href"), len(self.out)))
        elif tag == "img":
            alt = dict(attrs).get("alt")
            if alt and not self.skip:
                self.out.append(alt)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in SKIPPED:
            return  # <script/> opens nothing
        self.handle_starttag(tag, attrs)
        if tag == "a":
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in SKIPPED:
            self.skip = max(0, self.skip - 1)
            return
        if tag == "a" and self.links:
            href, start = self.links.pop()
            text = " ".join("".join(self.out[start:]).replace(BREAK, " ").split())
            target = (href or "").strip()
            if target and not target.startswith(("#", "javascript:")) and target != text:
                self.out.append(f" ({target})" if text else target)
        elif tag in BLOCKS and tag not in ("li", "br"):
            self.out.append(BREAK)

    def handle_data(self, data: str) -> None:
        if not self.skip:
            self.out.append(data)


def html_to_text(html: str) -> str:
    """The readable text of ``html`` (see the module docstring)."""
    parser = _TextParser()
    parser.feed(html)
    parser.close()
    lines = (_SPACE.sub(" ", line).strip() for line in "".join(parser.out).split(BREAK))
    return _BLANKS.sub("\n\n", "\n".join(lines)).strip() + "\n"
