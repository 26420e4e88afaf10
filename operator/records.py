"""Recipients with fields: CSV with a header row, and ``spec.recipients.records`` objects.

Which field is the address: ``spec.recipients.addressField`` when set, else the first of
:data:`ADDRESS_FIELDS` that the header (or the record) has. Every field, the address
included, is available to the templates by its name (``{{ name }}``); the values are
strings, stripped of surrounding white space. A CSV row must have as many values as the
header has names (else the campaign fails at validation, naming the row); an empty value
is a value (it renders as nothing). Records may differ in their fields: the templates may
use only fields every record has (else the campaign fails naming the first record without
it). Rows whose address is blank are dropped and duplicates (case-insensitive) keep the
first, as in plain lists.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from notifq.core.errors import InvalidCampaign

ADDRESS_FIELDS = ("to", "email", "phone", "address", "recipient")
"""Names of the address field, tried in this order when ``addressField`` is not set."""


@dataclass
class Table:
    """Recipients and their fields, in order (the output of a parse)."""

    entries: list[str] = field(default_factory=list)
    data: list[dict[str, str]] = field(default_factory=list)
    fields: frozenset[str] = frozenset()


def address_of(names: Iterable[str], chosen: str | None, where: str) -> str:
    """The address field among ``names``; :class:`InvalidCampaign` when there is none."""
    present = list(names)
    if chosen:
        if chosen not in present:
            raise InvalidCampaign(
                f"{where} has no field {chosen!r} (spec.recipients.addressField); "
                f"fields: {', '.join(present) or 'none'}"
            )
        return chosen
    for name in ADDRESS_FIELDS:
        if name in present:
            return name
    raise InvalidCampaign(
        f"{where} has no address field: name one {', '.join(ADDRESS_FIELDS)}, or set "
        f"spec.recipients.addressField (fields: {', '.join(present) or 'none'})"
    )


def clean(value: str) -> str:
    """A field value as stored: stripped; NUL (which jsonb cannot hold) as U+FFFD."""
    value = value.strip()
    return value.replace("\x00", "\ufffd") if "\x00" in value else value


def header(values: list[str], where: str) -> list[str]:
    """The field names of a CSV header row; :class:`InvalidCampaign` when unusable."""
    names = [clean(n).lstrip("\ufeff") for n in values]  # a UTF-8 byte order mark
    if not any(names):
        raise InvalidCampaign(f"{where} has no header row")
    if "" in names:
        raise InvalidCampaign(f"{where}: the header has an empty field name")
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise InvalidCampaign(f"{where}: the header names {dupes[0]!r} twice")
    return names


def header_line(line: str, where: str) -> list[str]:
    """The field names of one CSV header line."""
    return header(next(csv.reader([line]), []), where)


def row(values: list[str], names: list[str], where: str, n: int) -> dict[str, str] | None:
    """One CSV row as fields (None for a blank line); :class:`InvalidCampaign` when its
    number of values is not the header's."""
    if not values or (len(values) == 1 and not values[0].strip()):
        return None
    if len(values) != len(names):
        raise InvalidCampaign(
            f"{where}: row {n} has {len(values)} values, the header names {len(names)} "
            f"({', '.join(names)})"
        )
    return {k: clean(v) for k, v in zip(names, values, strict=True)}


def parse_csv(text: str, chosen: str | None, where: str) -> Table:
    """A CSV document with a header row (quoted values may hold commas and line breaks)."""
    reader = csv.reader(io.StringIO(text))
    first = next(reader, None)
    if first is None:
        raise InvalidCampaign(f"{where} has no header row")
    names = header(first, where)
    addr = address_of(names, chosen, where)
    table = Table(fields=frozenset(names))
    _add(table, ((row(values, names, where, reader.line_num), addr) for values in reader))
    return table


def parse_records(records: list[Mapping[str, str]], chosen: str | None) -> Table:
    """``spec.recipients.records``: objects of string fields, each with an address field."""
    items = []
    names: set[str] = set()
    for i, rec in enumerate(records):
        data = {str(k): clean(str(v)) for k, v in rec.items()}
        names |= set(data)
        items.append((data, address_of(data, chosen, f"spec.recipients.records[{i}]")))
    table = Table(fields=frozenset(names))
    _add(table, items)
    return table


def _add(table: Table, rows: Iterable[tuple[dict[str, str] | None, str]]) -> None:
    """Append rows (fields, name of the address field): blank addresses dropped,
    duplicates keep the first."""
    seen = {e.lower() for e in table.entries}
    for data, addr in rows:
        if data is None:
            continue
        address = data.get(addr, "")
        key = address.lower()
        if not address or key in seen:
            continue
        seen.add(key)
        table.entries.append(address)
        table.data.append(data)


def first_without(table: Table, used: Iterable[str], where: str) -> str | None:
    """Why a recipient lacks a field the templates use (the first such), or None."""
    need = sorted(set(used))
    for i, data in enumerate(table.data):
        for name in need:
            if name not in data:
                return (
                    f"{where}[{i}] ({table.entries[i]}) has no field {name!r}, "
                    "which the template uses"
                )
    return None
