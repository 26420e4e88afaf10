"""Package layout: notifq.<component> imports, and no standard module is shadowed."""

from __future__ import annotations

import importlib
import operator


def test_standard_operator_module_is_not_shadowed() -> None:
    assert hasattr(operator, "itemgetter")
    assert "site-packages" not in (operator.__file__ or "")


def test_components_import_under_notifq() -> None:
    for name in ("notifq.operator.reconcile", "notifq.worker.processor", "notifq.core.models"):
        importlib.import_module(name)
