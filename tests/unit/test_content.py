"""Per-recipient fields and HTML bodies, without services: CSV and records parsing, the
fields a template uses, HTML escaping of inserted values only in the HTML part, the text
part made from HTML, and the multipart/alternative message SMTP writes."""

from __future__ import annotations

import email
import email.policy

import pytest

from notifq.core.errors import InvalidCampaign
from notifq.core.htmltext import html_to_text
from notifq.core.settings import WorkerSettings
from notifq.core.templating import MessageTemplate
from notifq.operator import records
from notifq.worker.providers.base import Outbound
from notifq.worker.providers.smtp import SmtpProvider


def test_csv_header_rows_and_address_field() -> None:
    table = records.parse_csv(
        'name,email\nAnn, ann@x.test \n\n"Bo, b",bo@x.test\nDup,ANN@x.test\n', None, "cm"
    )
    assert table.entries == ["ann@x.test", "bo@x.test"]
    assert table.data[1] == {"name": "Bo, b", "email": "bo@x.test"}
    assert table.fields == {"name", "email"}
    with pytest.raises(InvalidCampaign, match="row 2 has 3 values, the header names 2"):
        records.parse_csv("email,name\na@x.test,A,extra\n", None, "cm")
    with pytest.raises(InvalidCampaign, match="has no address field"):
        records.parse_csv("mail,name\na@x.test,A\n", None, "cm")
    assert records.parse_csv("mail,name\na@x.test,A\n", "mail", "cm").entries == ["a@x.test"]
    with pytest.raises(InvalidCampaign, match="names 'a' twice"):
        records.parse_csv("a,a,email\n", None, "cm")


def test_records_may_differ_and_the_first_lacking_a_used_field_is_named() -> None:
    table = records.parse_records([{"to": "a@x.test", "name": "A"}, {"to": "b@x.test"}], None)
    assert table.fields == {"to", "name"}
    assert records.first_without(table, {"to"}, "r") is None
    assert records.first_without(table, {"name"}, "r") == (
        "r[1] (b@x.test) has no field 'name', which the template uses"
    )
    with pytest.raises(InvalidCampaign, match=r"records\[0\] has no address field"):
        records.parse_records([{"name": "A"}], None)


def test_fields_escaping_and_text_from_html() -> None:
    t = MessageTemplate(
        "c",
        "Hi {{ name }}",
        "Dear {{ name }} #{{ index }}",
        '<p>Dear {{ name }}</p><a href="https://x.test/{{ index }}">go</a>',
    )
    assert t.fast and t.fields() == {"name"}
    data = {"name": "<b>&</b>"}
    subject, text, html = t.render("a@x.test", 3, data)
    assert (subject, text) == ("Hi <b>&</b>", "Dear <b>&</b> #3")
    assert html == '<p>Dear &lt;b&gt;&amp;&lt;/b&gt;</p><a href="https://x.test/3">go</a>'
    jinja = MessageTemplate("c", "s", "", "<p>{{ name|upper }}{% if index %}!{% endif %}</p>")
    assert not jinja.fast and jinja.text_from_html
    plain_html_only = MessageTemplate("c", "s", "", "<p>{{ name }}</p>")
    assert not plain_html_only.fast  # parsing HTML runs on the render budget
    assert plain_html_only.render("a@x.test", 0, data)[1] == "<b>&</b>\n"
    assert jinja.render("a@x.test", 1, data) == (
        "s",
        "<B>&</B>!\n",
        "<p>&lt;B&gt;&amp;&lt;/B&gt;!</p>",
    )
    assert MessageTemplate(
        "c", "{{ range(2)|list }} {{ x }}", "{% set y = 1 %}{{ y }}"
    ).fields() == {"x"}


def test_html_to_text() -> None:
    html = (
        "<html><head><title>T</title><style>p {}</style></head><body><h1>Hi &amp; you</h1>"
        '<p>Read\n  <a href="https://x.test/a">the  news</a>, <a href="#top">top</a>.</p>'
        "<script>alert(1)</script><ul><li>one</li><li>two</li></ul>a<br>b</body></html>"
    )
    assert html_to_text(html) == (
        "Hi & you\n\nRead the news (https://x.test/a), top.\n\n- one\n- two\na\nb\n"
    )


def test_smtp_writes_multipart_alternative() -> None:
    provider = SmtpProvider(WorkerSettings(smtp_from="news@sender.test"))
    html = "<p>Grüße " + "x" * 1200 + "</p>"
    _, raw = provider.build(Outbound(7, "to@rcpt.test", "Subj", "plain text", "cid", html))
    parsed = email.message_from_bytes(raw, policy=email.policy.default)
    assert parsed.get_content_type() == "multipart/alternative"
    text, rich = parsed.iter_parts()
    assert text.get_content_type() == "text/plain" and text.get_content() == "plain text"
    assert rich.get_content_type() == "text/html" and rich.get_content() == html
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
