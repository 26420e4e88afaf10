"""Amazon SES (email) through boto3."""

from __future__ import annotations

import asyncio

from notifq.worker.providers.aws import AwsProvider
from notifq.worker.providers.base import Outbound


class SesProvider(AwsProvider):
    name = "ses"
    service = "ses"

    def send_one(self, channel: str, message: Outbound) -> str:
        resp = self.client.send_email(
            Source=self.settings.from_email,
            Destination={"ToAddresses": [message.recipient]},
            Message={
                "Subject": {"Data": message.subject, "Charset": "UTF-8"},
                "Body": {"Text": {"Data": message.body, "Charset": "UTF-8"}},
            },
        )
        return str(resp["MessageId"])

    async def send_quota(self) -> tuple[float, float, float]:
        """``GetSendQuota``: (MaxSendRate, Max24HourSend, SentLast24Hours)."""
        loop = asyncio.get_running_loop()
        q = await loop.run_in_executor(self._pool, self.client.get_send_quota)
        return float(q["MaxSendRate"]), float(q["Max24HourSend"]), float(q["SentLast24Hours"])
