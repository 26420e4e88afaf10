"""Amazon SES (email) through boto3."""

from __future__ import annotations

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
