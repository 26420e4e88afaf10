"""A Kopf diff-base storage that stores nothing.

Kopf keeps the last handled spec (its *diff base*) to compute what changed for
``on.create``/``on.update``/``on.field`` handlers; by default in an annotation
holding a copy of the whole spec. This operator has none of those handlers: a
reconciliation reads the whole state every time and needs no diff. The copy only
cost room: with ``kubectl apply``'s own last-applied annotation it doubled a big
inline recipient list past the API server's 256 KiB limit on annotations.
Without a diff base every event looks like a first sight of the object, which,
with no creation handlers, Kopf answers with nothing. Campaigns created under
earlier releases still carry the old copy (:data:`LEGACY_ANNOTATION`); the
supervisor removes it when it first sees one.
"""

from __future__ import annotations

import kopf

LEGACY_ANNOTATION = "notifq.dev/last-handled-configuration"
"""Where releases before this design kept the diff base (a copy of the whole spec)."""


class NoDiffBaseStorage(kopf.DiffBaseStorage):
    """Never writes a diff base; every fetch finds none."""

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None
