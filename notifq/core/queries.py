"""SQL that more than one component runs, in one place.

The operator, the API, the benchmarks and the tests all count a campaign's
messages and decide which failed messages a retry may send again; they share
these statements so the answers cannot drift apart.
"""

from __future__ import annotations

from notifq.core.recipients import INVALID_ADDRESS

COUNT_BY_STATUS = "SELECT status, count(*) FROM message WHERE campaign_id = %s GROUP BY status"
"""Messages of campaign ``%s`` per status (the (campaign_id, status, seq) index)."""

RETRYABLE = "status = 'failed' AND last_error IS DISTINCT FROM %s"
"""Failed messages a retry may send again: all but invalid addresses, which never succeed.
One parameter: :data:`RETRYABLE_PARAM`."""

RETRYABLE_PARAM = INVALID_ADDRESS

COUNT_RETRYABLE = f"SELECT count(*) FROM message WHERE campaign_id = %s AND {RETRYABLE}"
"""How many messages of campaign ``%s`` a retry would send again (then RETRYABLE_PARAM)."""

RETRY = (
    "UPDATE message SET status = 'pending', attempts = 0, updated_at = now() "
    f"WHERE campaign_id = %s AND {RETRYABLE}"
)
"""Make the retryable messages of campaign ``%s`` pending again (then RETRYABLE_PARAM)."""
