"""SES on the moto server for e2e tests: the workers' environment, a verified sender, and
what the server recorded."""

from __future__ import annotations

import email
import json
import urllib.request
from email.message import EmailMessage
from email.policy import default
from typing import Any

import boto3


def aws_env(url: str, sender: str) -> dict[str, str]:
    """The environment that sends a stack's SES and SNS traffic to the moto server at ``url``."""
    return {
        "NOTIFQ_AWS_ENDPOINT_URL": url,
        "NOTIFQ_AWS_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "NOTIFQ_FROM_EMAIL": sender,
    }


def verified_ses(url: str, sender: str) -> Any:
    """A boto3 SES client of the moto server, with ``sender`` verified."""
    ses = boto3.client(
        "ses",
        region_name="us-east-1",
        endpoint_url=url,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
    )
    ses.verify_email_identity(EmailAddress=sender)
    return ses


def ses_messages(url: str) -> list[dict[str, Any]]:
    """Every message the server recorded (notifq sends raw messages: they carry its
    headers), as moto keeps them: ``id``, ``source``, ``destinations``, ``raw_data``."""
    with urllib.request.urlopen(f"{url}/moto-api/data.json", timeout=5) as r:
        data = json.load(r)
    return list(data.get("ses", {}).get("RawMessage", []))


def ses_mails(url: str) -> dict[str, EmailMessage]:
    """Every recorded message parsed, by its SES message id."""
    return {
        str(m["id"]): email.message_from_string(str(m["raw_data"]), policy=default)
        for m in ses_messages(url)
    }


def parts(mail: EmailMessage) -> dict[str, str]:
    """``subject`` and the decoded ``text`` and ``html`` parts (absent parts: missing)."""
    out = {"subject": str(mail["Subject"])}
    for part in mail.walk():
        kind = part.get_content_type()
        if kind in ("text/plain", "text/html") and not part.is_multipart():
            out["text" if kind == "text/plain" else "html"] = str(part.get_content()).rstrip("\r\n")
    return out
