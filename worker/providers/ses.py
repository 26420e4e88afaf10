"""Amazon SES (email) through boto3: a text body, or text and HTML (SES sends them as
multipart/alternative)."""

from __future__ import annotations

import asyncio

from notifq.worker.providers.aws import AwsProvider
from notifq.worker.providers.base import Outbound


class SesProvider(AwsProvider):
    name = "ses"
    service = "ses"

    def send_one(self, channel: str, message: Outbound) -> str:
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
