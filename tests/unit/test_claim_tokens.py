"""The worker's claim tokens: ordered by when they were made, whatever the collation."""

from __future__ import annotations

from notifq.worker.processor import ClaimTokens


def test_tokens_sort_by_when_they_were_made_and_the_horizon_splits_them() -> None:
    tokens = ClaimTokens()
    made = [tokens.new() for _ in range(20)]  # past 9 and 15: hex digits and letters
    assert sorted(made) == made
    assert len(set(made)) == 20
    assert set(made) == tokens.running
    horizon = tokens.horizon()
    assert all(t < horizon for t in made[:-1])  # every earlier token is below it
    assert made[-1] > horizon  # the newest (the slice taking the snapshot) is not
    later = tokens.new()
    assert later > horizon  # nor anything made after the snapshot
    tokens.ended(made[3])
    assert made[3] not in tokens.running
