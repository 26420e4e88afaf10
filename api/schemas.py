"""Request and response models (``XCreate`` in, ``XPublic`` out).

Field names follow the reference service's REST contract (camelCase).
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    StringConstraints,
    field_validator,
)

CampaignStatus = Literal[
    "pending",
    "scheduled",
    "processing",
    "suspended",
    "completed",
    "completed_with_failures",
    "cancelled",
    "failed",
]
MessageStatus = Literal["pending", "sent", "failed", "cancelled", "suppressed"]
NAMESPACE_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
"""A Kubernetes namespace name (DNS-1123 label)."""
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_BODY_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def _no_control(value: str) -> str:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters (NUL, tab, newline, ...)")
    return value


def _no_body_control(value: str) -> str:
    if _BODY_CONTROL.search(value):
        raise ValueError("must not contain control characters other than tab and newlines")
    return value


Clean = AfterValidator(_no_control)
"""Refuses every control character: recipients, names and subjects (no header injection)."""

Recipient = Annotated[str, StringConstraints(max_length=320), Clean]

RecipientFields = Annotated[
    dict[
        Annotated[str, StringConstraints(min_length=1, max_length=253)],
        Annotated[str, StringConstraints(max_length=4096)],
    ],
    Field(min_length=1, max_length=64),
]
"""A recipient with fields for the templates (the spec's ``recipients.records`` entry)."""

BodyTemplate = Annotated[
    str, StringConstraints(max_length=262_144), AfterValidator(_no_body_control)
]


class ErrorPublic(BaseModel):
    """Every error answer: a human message, and field details for validation errors."""

    error: str
    detail: list[dict[str, object]] | None = None


class LoginRequest(BaseModel):
    email: Annotated[str, StringConstraints(min_length=1, max_length=320)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=1024)]


class AdminPublic(BaseModel):
    id: str
    email: str


class IdentityPublic(BaseModel):
    """Who the caller is in Kubernetes: every action is checked for this user and groups."""

    user: str
    groups: list[str]
    email: str | None = None
    """The local account's email; null for an OIDC user."""


class PasswordChange(BaseModel):
    currentPassword: Annotated[str, StringConstraints(min_length=1, max_length=1024)]  # noqa: N815
    newPassword: Annotated[str, StringConstraints(min_length=1, max_length=1024)]  # noqa: N815


class TokenPublic(BaseModel):
    token: str
    admin: AdminPublic


class RetryPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    attempts: int | None = Field(default=None, ge=1, le=10)
    """Attempts per message, the first included."""
    backoffMs: int | None = Field(default=None, ge=100, le=600_000)  # noqa: N815
    """Delay before the first retry; doubles on each retry."""


class CampaignCreate(BaseModel):
    """The reference service's fields, plus optional ones mapping to the Campaign spec."""

    name: Annotated[
        str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), Clean
    ]
    namespace: (
        Annotated[str, StringConstraints(min_length=1, max_length=63, pattern=NAMESPACE_PATTERN)]
        | None
    ) = None
    """Namespace of the Campaign (an extension); default: the API's default namespace."""
    recipientCount: int = Field(default=100, ge=1, le=100_000)  # noqa: N815
    """Messages to send, the target recipient included (as in the reference service)."""
    targetEmail: EmailStr | None = None  # noqa: N815
    """A real address sent to first; empty or null means none."""
    recipients: list[Recipient | RecipientFields] | None = Field(
        default=None, min_length=1, max_length=10_000
    )
    """An explicit recipient list instead of ``recipientCount`` generated addresses: plain
    addresses, or objects with fields for the templates (``{"to": "a@x.com", "name":
    "Ann"}``; the address is ``to``, ``email``, ``phone``, ``address`` or ``recipient``)."""

    @field_validator("targetEmail", mode="before")
    @classmethod
    def _blank_target_is_none(cls, value: object) -> object:
        """The reference client sends ``""`` for a target left empty."""
        if isinstance(value, str) and not value.strip():
            return None
        return value

    channel: Literal["email", "sms", "push"] = "email"
    provider: Literal["auto", "mock", "ses", "sns", "smtp"] = "auto"
    subject: Annotated[str, StringConstraints(max_length=998), Clean] | None = None
    body: BodyTemplate | None = None
    html: BodyTemplate | None = None
    """An HTML body template (email is then sent as multipart/alternative with ``body``, or
    with a text part made from the HTML when ``body`` is not given)."""
    scheduleAt: AwareDatetime | None = None  # noqa: N815
    rateLimit: int | None = Field(default=None, ge=1, le=100_000)  # noqa: N815
    retry: RetryPolicy | None = None


class CampaignAccepted(BaseModel):
    campaignId: str  # noqa: N815
    name: str
    resourceName: str  # noqa: N815
    namespace: str
    totalMessages: int  # noqa: N815
    status: CampaignStatus
    message: str


class CampaignPublic(BaseModel):
    id: str
    name: str
    resourceName: str  # noqa: N815
    namespace: str
    totalMessages: int  # noqa: N815
    sentCount: int  # noqa: N815
    failedCount: int  # noqa: N815
    status: CampaignStatus
    createdAt: datetime  # noqa: N815
    updatedAt: datetime  # noqa: N815


class ProgressPublic(BaseModel):
    """Messages per state; the six numbers add up to ``totalMessages``."""

    pending: int = 0
    """Not attempted yet."""
    queued: int = 0
    """Attempted, failed transiently, waiting for a retry (backoff)."""
    sent: int = 0
    failed: int = 0
    cancelled: int = 0
    suppressed: int = 0
    """Not sent: the recipient is on the suppression list (bounced, complained,
    unsubscribed, or added by an admin); the message's ``lastError`` says why."""


class QuotaPublic(BaseModel):
    """The provider quota a processing campaign shares (``status.quota`` of the resource)."""

    provider: str
    providerRate: float  # noqa: N815
    """The provider's current planned rate, sends/s, for all campaigns together."""
    share: float
    """This campaign's share of it, sends/s."""
    waiting: bool
    """Whether the campaign's work waits in the queue for quota right now."""
    reason: str = ""


class CampaignDetailPublic(CampaignPublic):
    progress: ProgressPublic
    message: str = ""
    quota: QuotaPublic | None = None


class RetryPublic(BaseModel):
    retriedCount: int  # noqa: N815
    """Failed messages made pending again."""
    status: CampaignStatus
    """The campaign's status once the retry took effect (``processing``)."""


class MessagePublic(BaseModel):
    seq: int
    recipient: str
    status: MessageStatus
    attempts: int
    lastError: str | None  # noqa: N815
    sentAt: datetime | None  # noqa: N815
    updatedAt: datetime | None  # noqa: N815


class MessagePagePublic(BaseModel):
    items: list[MessagePublic]
    nextAfter: int | None  # noqa: N815
    """Pass as ``after`` to get the next page; null on the last page."""


class HealthPublic(BaseModel):
    status: Literal["ok", "unavailable"]
    checks: dict[str, str] = {}


class NamespacesPublic(BaseModel):
    items: list[str]
    """Namespaces where the caller may list campaigns, sorted."""
    default: str
    """The API's default namespace (used when a request names none)."""


class SuppressionPublic(BaseModel):
    """A recipient notifq never sends to again in ``namespace`` (``*``: in every one)."""

    namespace: str
    recipient: str
    reason: Literal["bounce", "complaint", "unsubscribe", "manual"]
    detail: str | None = None
    source: str | None = None
    createdAt: datetime  # noqa: N815


class SuppressionPagePublic(BaseModel):
    items: list[SuppressionPublic]
    nextAfter: str | None  # noqa: N815
    """Pass as ``after`` to get the next page; null on the last page."""


class SuppressionCreate(BaseModel):
    """Recipients to suppress by hand (reason ``manual``)."""

    namespace: str | None = Field(default=None, min_length=1, max_length=253)
    """The namespace (default: the API's), or ``*`` for every namespace."""
    recipients: list[Annotated[str, Field(min_length=1, max_length=320)]] = Field(
        min_length=1, max_length=10_000
    )
    detail: str | None = Field(default=None, max_length=300)


class SuppressionAdded(BaseModel):
    added: int
    """Entries that were new (existing ones keep their first reason)."""
