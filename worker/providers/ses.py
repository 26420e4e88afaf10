"""Amazon SES (email) through boto3: a text body, or text and HTML (SES sends them as
multipart/alternative)."""

from __future__ import annotations

import asyncio
from email import policy
from email.message import EmailMessage

from notifq.worker.providers.aws import AwsProvider
from notifq.worker.providers.base import Outbound, header_lines


def raw_message(sender: str, m: Outbound) -> bytes:
    """The message as SES ``SendRawEmail`` takes it: what ``SendEmail`` would build, plus
    ``m.headers`` (which ``SendEmail`` cannot carry)."""
    msg = EmailMessage(policy=policy.SMTP)
    msg["From"] = sender
    msg["To"] = m.recipient
    msg["Subject"] = m.subject
    msg.set_content(m.body)
    if m.html is not None:  # multipart/alternative, as SendEmail makes of Text + Html
        msg.add_alternative(m.html, subtype="html")
    # written as they are: the email package would fold a long unsubscribe URL into
    # RFC 2047 encoded words, which List-Unsubscribe must not hold
    return header_lines(m).encode() + msg.as_bytes()


def tags(m: Outbound) -> list[dict[str, str]]:
    """SES message tags (in event-publishing notifications): campaign and seq."""
    return [{"Name": "notifq-campaign", "Value": m.campaign}, {"Name": "seq", "Value": str(m.seq)}]


class SesProvider(AwsProvider):
    name = "ses"
    service = "ses"

    def send_one(self, channel: str, message: Outbound) -> str:
        if message.headers:
            resp = self.client.send_raw_email(
                Source=self.settings.from_email,
                Destinations=[message.recipient],
                RawMessage={"Data": raw_message(self.settings.from_email, message)},
                Tags=tags(message),
            )
            return str(resp["MessageId"])
        body = {"Text": {"Data": message.body, "Charset": "UTF-8"}}
        if message.html is not None:  # SES sends both as multipart/alternative
            body["Html"] = {"Data": message.html, "Charset": "UTF-8"}
        resp = self.client.send_email(
            Source=self.settings.from_email,
            Destination={"ToAddresses": [message.recipient]},
            Message={"Subject": {"Data": message.subject, "Charset": "UTF-8"}, "Body": body},
        )
        return str(resp["MessageId"])

    async def send_quota(self) -> tuple[float, float, float]:
        """``GetSendQuota``: (MaxSendRate, Max24HourSend, SentLast24Hours)."""
        loop = asyncio.get_running_loop()
        q = await loop.run_in_executor(self._pool, self.client.get_send_quota)
        return float(q["MaxSendRate"]), float(q["Max24HourSend"]), float(q["SentLast24Hours"])
