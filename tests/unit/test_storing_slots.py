"""How many campaigns the operator stores at once, against its pool of connections."""

from __future__ import annotations

import pytest

from notifq.core.settings import OperatorSettings
from notifq.operator.context import storing_slots


def test_the_defaults_store_three_at_once() -> None:
    assert storing_slots(OperatorSettings()) == 3


@pytest.mark.parametrize("pool", [4, 5, 6, 10, 20, 33, 100, 500])
@pytest.mark.parametrize("parallel", [1, 2, 3, 8, 16])
def test_campaigns_being_stored_hold_at_most_half_the_pool(pool: int, parallel: int) -> None:
    """Each generated list being written holds its parts + 1 connections; together they
    leave half of the pool to status reads, and at least one campaign is stored: a pool
    too small for the parts asked writes fewer (never one waiting on a connection that
    the others hold)."""
    settings = OperatorSettings(db_pool_size=pool, store_parallel=parallel)
    parts, slots = settings.store_parts, storing_slots(settings)
    assert 1 <= parts <= parallel and slots >= 1
    assert slots * (parts + 1) <= pool / 2
    # and no fewer than that bound allows
    assert parts == parallel or parts + 2 > pool / 2
    assert (slots + 1) * (parts + 1) > pool / 2
