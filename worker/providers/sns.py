"""Amazon SNS: SMS to a phone number, push to an endpoint ARN; both send the text part (a
campaign's HTML part is for email only)."""

from __future__ import annotations

from notifq.core.recipients import FOREIGN_TARGET, allowed_target
from notifq.worker.providers.aws import AwsProvider, TargetRefused
from notifq.worker.providers.base import Outbound


class SnsProvider(AwsProvider):
    name = "sns"
    service = "sns"

    def send_one(self, channel: str, message: Outbound) -> str:
        if channel == "sms":
            resp = self.client.publish(PhoneNumber=message.recipient, Message=message.body)
        else:
            # push (or an email channel explicitly routed to SNS): the recipient is a target ARN,
            # published to only under an allowed prefix (the operator checked it when it
            # stored the list; checked again here, where the workers' identity acts)
            if not allowed_target(message.recipient, self.settings.push_arn_prefixes):
                raise TargetRefused(FOREIGN_TARGET)
            kwargs = {"TargetArn": message.recipient, "Message": message.body}
            if message.subject:
                kwargs["Subject"] = message.subject[:100]
            resp = self.client.publish(**kwargs)
        return str(resp["MessageId"])
