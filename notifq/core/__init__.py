"""Shared core of notifq: everything the operator, the worker and the API agree on."""
