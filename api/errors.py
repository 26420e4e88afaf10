"""The API's own exceptions at its boundaries, raised ``from`` the library's error."""

from __future__ import annotations

from notifq.core.errors import NotifqError


class KubernetesUnavailable(NotifqError):
    """The Kubernetes API could not be reached or answered with a server error."""


class CampaignNotFound(NotifqError):
    """No Campaign resource with that id (in any namespace)."""


class CampaignRejected(NotifqError):
    """The Kubernetes API refused the Campaign (schema or CEL validation)."""


class CampaignConflict(NotifqError):
    """The request contradicts the Campaign's state (e.g. resuming a cancelled one)."""


class Forbidden(NotifqError):
    """Kubernetes says the caller may not do this (a SubjectAccessReview denied it)."""


class IssuerUnavailable(NotifqError):
    """The OIDC issuer's discovery document or keys could not be fetched."""
