"""The REST API refuses control characters in recipients, names, subjects and bodies."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from notifq.api.schemas import CampaignCreate


@pytest.mark.parametrize(
    "fields",
    [
        {"recipients": ["a\x00@example.com"]},
        {"name": "launch\x00"},
        {"subject": "Hi\r\nBcc: x@evil.test"},
        {"body": "bell\x07"},
    ],
)
def test_control_characters_are_refused_with_a_clear_message(fields: dict[str, object]) -> None:
    with pytest.raises(ValidationError, match="control characters"):
        CampaignCreate.model_validate({"name": "launch", **fields})


def test_tabs_and_newlines_stay_allowed_in_a_body() -> None:
    assert CampaignCreate(name="launch", body="a\tb\r\nc").body == "a\tb\r\nc"
