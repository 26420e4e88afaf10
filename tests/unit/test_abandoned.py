"""The worker's abandoned claim tokens: the only own claims it may take again."""

from __future__ import annotations

import time

import pytest

from notifq.worker.processor import Abandoned


def test_tokens_are_kept_until_their_claims_ran_out_and_at_most_limit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = [100.0]
    monkeypatch.setattr(time, "monotonic", lambda: now[0])
    gone = Abandoned(max_age=600, limit=3)
    assert gone.tokens() == []
    for i in range(4):
        gone.add(f"t{i}")
        now[0] += 100
    assert gone.tokens() == ["t1", "t2", "t3"]  # past the limit: the oldest forgotten
    now[0] = 100 + 100 + 600 + 1  # t1's claims (taken at 200) ran out at 800
    assert gone.tokens() == ["t2", "t3"]
    now[0] = 10_000
    assert gone.tokens() == []
