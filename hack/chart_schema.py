"""Generate the chart's values.schema.json and README.md from its annotated values.yaml.

values.yaml is the one source of the chart's settings. For every key:
- the type comes from its default value (a mapping with keys is a closed object,
  an empty mapping a free-form one, a list an array);
- ``# -- text`` comment lines right above the key are its description;
- ``# @schema {json}`` lines right above it add JSON Schema keywords (enum, minimum,
  pattern, items, oneOf, required, ...); ``type``, ``oneOf`` or ``anyOf`` there
  replace the derived type. ``# @schema-root {json}`` lines at the top of the file
  add keywords to the root.

    python hack/chart_schema.py            # write both files
    python hack/chart_schema.py --check    # exit 1 if either is out of date (CI)
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "charts" / "notifq"
KEY = re.compile(r"^(?P<indent> *)(?P<key>[A-Za-z0-9_]+):(?:\s|$)")
ROOT_KEYWORDS = "# @schema-root "

Notes = dict[tuple[str, ...], dict[str, Any]]


def read_notes(text: str) -> tuple[Notes, dict[str, Any]]:
    """Descriptions and schema keywords per key path, and the root's keywords."""
    notes: Notes = {}
    root: dict[str, Any] = {}
    stack: list[tuple[int, str]] = []
    description: list[str] = []
    keywords: dict[str, Any] = {}
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith(ROOT_KEYWORDS):
            root.update(json.loads(stripped[len(ROOT_KEYWORDS) :]))
            continue
        if stripped.startswith("# @schema "):
            keywords.update(json.loads(stripped[len("# @schema ") :]))
            continue
        if stripped.startswith("# --"):
            description = [stripped[4:].strip()]
            continue
        if stripped.startswith("#"):
            if description:
                description.append(stripped[1:].strip())
            continue
        match = KEY.match(line)
        if not stripped or not match or line.lstrip().startswith("- "):
            description, keywords = ([], {}) if not stripped else (description, keywords)
            continue
        indent = len(match["indent"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, match["key"]))
        path = tuple(k for _, k in stack)
        note: dict[str, Any] = dict(keywords)
        if description:
            note["description"] = " ".join(description)
        if note:
            notes[path] = note
        description, keywords = [], {}
    return notes, root


def derive(value: Any, path: tuple[str, ...], notes: Notes) -> dict[str, Any]:
    """The schema of one value: derived from the default, then the key's notes."""
    node: dict[str, Any]
    if isinstance(value, dict) and value:
        node = {
            "type": "object",
            "additionalProperties": False,
            "properties": {k: derive(v, (*path, k), notes) for k, v in value.items()},
        }
    elif isinstance(value, dict):
        node = {"type": "object"}
    elif isinstance(value, list):
        node = {"type": "array"}
    elif isinstance(value, bool):
        node = {"type": "boolean"}
    elif isinstance(value, int):
        node = {"type": "integer"}
    elif isinstance(value, float):
        node = {"type": "number"}
    elif isinstance(value, str):
        node = {"type": "string"}
    else:
        node = {}
    note = dict(notes.get(path, {}))
    if {"type", "oneOf", "anyOf"} & note.keys():
        # the notes define the value's shape themselves (e.g. a free-form object)
        node = {}
    extra = note.pop("properties", None)
    if extra:
        node.setdefault("properties", {}).update(extra)
    node.update(note)
    return node


def schema(values_text: str) -> dict[str, Any]:
    values = yaml.safe_load(values_text)
    notes, root = read_notes(values_text)
    body = derive(values, (), notes)
    body["properties"].update(root.pop("properties", {}))
    return {"$schema": "http://json-schema.org/draft-07/schema#", **body, **root}


def _type_of(node: dict[str, Any]) -> str:
    if "enum" in node:
        return "one of " + ", ".join(f"`{v}`" for v in node["enum"])
    if "type" in node:
        t = node["type"]
        return "/".join(t) if isinstance(t, list) else str(t)
    options = node.get("oneOf") or node.get("anyOf") or []
    return " or ".join(_type_of(o) for o in options) or "any"


def readme(values_text: str, generated: dict[str, Any]) -> str:
    """The chart README: every value with its type, default and description."""
    values = yaml.safe_load(values_text)
    rows: list[str] = []

    def walk(node: dict[str, Any], value: Any, path: str) -> None:
        props = node.get("properties") or {}
        if isinstance(value, dict) and value and props:
            for key, sub in props.items():
                if key in value:
                    walk(sub, value[key], f"{path}.{key}" if path else key)
            return
        default = json.dumps(value)
        desc = str(node.get("description", "")).replace("|", "\\|")
        rows.append(f"| `{path}` | {_type_of(node)} | `{default}` | {desc} |")

    walk(generated, values, "")
    head = (CHART / "README.header.md").read_text()
    return (
        head.rstrip() + "\n\n## Values\n\nGenerated from `values.yaml` by `make chart-schema` "
        "(`hack/chart_schema.py`); `values.schema.json` comes from the same source.\n\n"
        "| key | type | default | description |\n|---|---|---|---|\n" + "\n".join(rows) + "\n"
    )


def outputs() -> dict[Path, str]:
    text = (CHART / "values.yaml").read_text()
    generated = schema(text)
    return {
        CHART / "values.schema.json": json.dumps(generated, indent=2) + "\n",
        CHART / "README.md": readme(text, generated),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true", help="fail if the files are stale")
    args = parser.parse_args(argv)
    stale = [p for p, body in outputs().items() if not p.exists() or p.read_text() != body]
    if args.check:
        for p in stale:
            print(f"{p.relative_to(ROOT)} is out of date: run `make chart-schema`", file=sys.stderr)
        return 1 if stale else 0
    for p, body in outputs().items():
        p.write_text(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
