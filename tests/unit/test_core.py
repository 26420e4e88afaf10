"""Shared core: job contract, recipients, templates and settings."""

from __future__ import annotations

import uuid

import pytest
from pydantic import ValidationError

from notifq.core import jobs, recipients
from notifq.core.errors import TemplateError
from notifq.core.settings import ApiSettings
from notifq.core.templating import MessageTemplate


def test_chunks_cover_every_message_once() -> None:
    cid = uuid.uuid4()
    cs = jobs.chunks(cid, 1001, 500)
    assert [(c.start, c.end) for c in cs] == [(0, 500), (500, 1000), (1000, 1001)]
    assert len({c.job_id for c in cs}) == 3 and all(":" not in c.job_id for c in cs)
    assert jobs.chunk_of(cid, 2, 1001, 500) == cs[2]


def test_a_huge_campaign_gets_bigger_chunks_and_at_most_max_chunks() -> None:
    assert jobs.chunk_size_for(0, 500, 500) == 500
    assert jobs.chunk_size_for(250_000, 500, 500) == 500  # 500 chunks: as configured
    assert jobs.chunk_size_for(250_001, 500, 500) == 1000
    assert jobs.chunk_size_for(1_000_000, 500, 500) == 2000
    for total in (1, 999, 250_001, 1_000_000, 9_999_999):
        size = jobs.chunk_size_for(total, 500, 500)
        assert size % 500 == 0 and len(jobs.chunks(uuid.uuid4(), total, size)) <= 500


def test_payload_round_trip_and_rejects_garbage() -> None:
    c = jobs.ChunkJob(uuid.uuid4(), 3, 1500, 2000)
    assert jobs.ChunkJob.from_data(c.to_data()) == c
    with pytest.raises(ValueError, match="version"):
        jobs.ChunkJob.from_data({**c.to_data(), "v": 99})
    with pytest.raises(ValueError, match="bounds"):
        jobs.ChunkJob.from_data({**c.to_data(), "start": 5, "end": 5})


async def test_job_options_give_1_2_4_second_backoff() -> None:
    """The delays BullMQ itself computes from our job options (its own backoff code)."""
    from bullmq.backoffs import Backoffs

    opts = jobs.job_options(4, 1000)
    assert opts["attempts"] == 4
    delays = [
        await Backoffs.calculate(opts["backoff"], made, None, None, None) for made in (1, 2, 3)
    ]
    assert delays == [1000, 2000, 4000]


def test_normalize_strips_drops_blanks_and_deduplicates() -> None:
    got = recipients.normalize([" a@x.org ", "", "A@X.org", "b@x.org", "   ", "ü@x.org"])
    assert got == ["a@x.org", "b@x.org", "ü@x.org"]


@pytest.mark.parametrize(
    ("channel", "value", "ok"),
    [
        ("email", "user@example.com", True),
        ("email", "user.name+tag@sub.example.co", True),
        ("email", "no-at-sign", False),
        ("email", "two@@example.com", False),
        ("email", "user@nodot", False),
        ("email", "a b@example.com", False),
        ("sms", "+14155550100", True),
        ("sms", "4155550100", False),
        ("push", "arn:aws:sns:us-east-1:123:endpoint/APNS/app/1", True),
        ("push", "has space", False),
    ],
)
def test_is_valid(channel: str, value: str, ok: bool) -> None:
    assert recipients.is_valid(channel, value) is ok


def test_auto_routing_follows_the_reference() -> None:
    assert recipients.route("email", "auto", "x@example.com") == "mock"
    assert recipients.route("email", "auto", "x@company.io") == "ses"
    assert recipients.route("sms", "auto", "+14155550100") == "sns"
    assert recipients.route("email", "ses", "x@example.com") == "ses"


def test_templates_render_in_a_sandbox() -> None:
    t = MessageTemplate("launch", "Hi {{ recipient }}", "#{{ index }} of {{ campaign }}")
    assert t.render("a@x.org", 7) == ("Hi a@x.org", "#7 of launch", None)
    with pytest.raises(TemplateError, match="undefined"):
        MessageTemplate("c", "{{ nope }}", "").check()
    with pytest.raises(TemplateError, match="compile"):
        MessageTemplate("c", "{% if %}", "")
    with pytest.raises(TemplateError):
        MessageTemplate("c", "{{ ''.__class__.__mro__[1].__subclasses__() }}", "").check()


def test_api_settings_refuse_placeholder_secret_in_production() -> None:
    with pytest.raises(ValidationError, match="JWT_SECRET"):
        ApiSettings(environment="production", jwt_secret="changeme")
    assert ApiSettings(environment="development", jwt_secret="").jwt_secret == ""
    assert ApiSettings(environment="production", jwt_secret="x" * 32).jwt_ttl_seconds == 86400


@pytest.mark.parametrize(
    "source",
    [
        "Hi {{ recipient }}",
        "{{recipient}}-{{ index }}-{{ campaign }}\n",
        "no variables at all",
        "",
        "{{ recipient | upper }} {% if index %}#{{ index }}{% endif %}",
        "{# comment #}{{ campaign }}",
        "{% raw %}{{ x }}{% endraw %}",
    ],
)
def test_fast_substitution_renders_like_jinja(source: str) -> None:
    from jinja2.sandbox import SandboxedEnvironment

    subject = source.rstrip("\n")  # a subject holds no newline (header injection)
    t = MessageTemplate("camp", subject, source)
    jinja = SandboxedEnvironment(keep_trailing_newline=True)
    want = [
        jinja.from_string(s).render(recipient="a@x.org", index=3, campaign="camp")
        for s in (subject, source)
    ]
    assert t.render("a@x.org", 3) == (*want, None)
