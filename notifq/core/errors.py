"""Our own exception types at each boundary, raised ``from`` the library's error."""

from __future__ import annotations


class NotifqError(Exception):
    """Base of every notifq error."""


class DatabaseUnavailable(NotifqError):
    """Postgres could not be reached or a statement failed for infrastructure reasons."""


class OutcomesRefused(NotifqError):
    """Postgres refused to record outcomes for good (not a connection problem): the job's
    attempt fails, instead of the job being given back as for an unavailable database."""


class RedisUnavailable(NotifqError):
    """Redis could not be reached (the job queue and the login limiter live there)."""


class InvalidCampaign(NotifqError):
    """A Campaign spec that passed schema validation but cannot work; retrying will not help."""


class TemplateError(InvalidCampaign):
    """A subject or body template that does not compile or render."""
