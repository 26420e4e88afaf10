"""SES on the moto server for e2e tests: the workers' environment, a verified sender, and
what the server recorded."""

from __future__ import annotations

import json
import urllib.request
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
    """Every message the server recorded (moto keeps the HTML body when there is one)."""
    with urllib.request.urlopen(f"{url}/moto-api/data.json", timeout=5) as r:
        data = json.load(r)
    return list(data.get("ses", {}).get("Message", []))
