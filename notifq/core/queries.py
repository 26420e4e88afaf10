"""SQL that more than one component runs, in one place.

The operator, the API, the benchmarks and the tests all count a campaign's
messages and decide which failed messages a retry may send again; they share
these statements so the answers cannot drift apart.
"""

from __future__ import annotations

from notifq.core.recipients import NEVER_RETRIED

COUNT_BY_STATUS = "SELECT status, count(*) FROM message WHERE campaign_id = %s GROUP BY status"
"""Messages of campaign ``%s`` per status, counted row by row (O(messages): tests,
benchmarks and the counter check use it; notifq itself reads :data:`COUNTERS`)."""

COUNTER_SUMS = (
    "coalesce(sum(pending), 0), coalesce(sum(queued), 0), coalesce(sum(sent), 0), "
    "coalesce(sum(failed), 0), coalesce(sum(cancelled), 0), coalesce(sum(suppressed), 0)"
)
"""The select list of :data:`COUNTERS` (over ``message_count`` rows of one campaign)."""

COUNTERS = f"SELECT {COUNTER_SUMS} FROM message_count WHERE campaign_id = %s"
"""(pending, queued, sent, failed, cancelled, suppressed) of campaign ``%s`` from its per-chunk
counters (O(chunks)); ``pending`` is not attempted yet, ``queued`` waits for a retry."""

COUNTER_MISMATCHES = """
WITH actual AS (
  SELECT m.campaign_id, m.seq / c.chunk_size AS chunk,
         count(*) FILTER (WHERE m.status = 'pending' AND m.attempts = 0) AS pending,
         count(*) FILTER (WHERE m.status = 'pending' AND m.attempts > 0) AS queued,
         count(*) FILTER (WHERE m.status = 'sent') AS sent,
         count(*) FILTER (WHERE m.status = 'failed') AS failed,
         count(*) FILTER (WHERE m.status = 'cancelled') AS cancelled,
         count(*) FILTER (WHERE m.status = 'suppressed') AS suppressed
  FROM message m JOIN campaign c ON c.id = m.campaign_id GROUP BY 1, 2
)
SELECT coalesce(a.campaign_id, k.campaign_id), coalesce(a.chunk, k.chunk),
       a.pending, a.queued, a.sent, a.failed, a.cancelled, a.suppressed,
       k.pending, k.queued, k.sent, k.failed, k.cancelled, k.suppressed
FROM actual a FULL JOIN message_count k ON k.campaign_id = a.campaign_id AND k.chunk = a.chunk
WHERE coalesce(a.campaign_id, k.campaign_id) NOT IN (
        SELECT id FROM campaign WHERE expired_at IS NOT NULL)
  AND (coalesce(a.pending, 0), coalesce(a.queued, 0), coalesce(a.sent, 0),
       coalesce(a.failed, 0), coalesce(a.cancelled, 0), coalesce(a.suppressed, 0))
   IS DISTINCT FROM (coalesce(k.pending, 0), coalesce(k.queued, 0), coalesce(k.sent, 0),
       coalesce(k.failed, 0), coalesce(k.cancelled, 0), coalesce(k.suppressed, 0))
ORDER BY 1, 2
"""
"""Every (campaign, chunk) whose counters disagree with its message rows: (campaign,
chunk, row counts..., counter values...). Empty when the invariant holds. Campaigns whose
rows retention dropped keep their counters (their final counts) and are left out. Scans
every row: for tests and the ``notifq-admin``-style checks, never on a hot path."""

_STATE_COUNTS = """
       count(*) FILTER (WHERE m.status = 'pending' AND m.attempts = 0),
       count(*) FILTER (WHERE m.status = 'pending' AND m.attempts > 0),
       count(*) FILTER (WHERE m.status = 'sent'),
       count(*) FILTER (WHERE m.status = 'failed'),
       count(*) FILTER (WHERE m.status = 'cancelled'),
       count(*) FILTER (WHERE m.status = 'suppressed')"""

_SET_COUNTS = """
ON CONFLICT (campaign_id, chunk) DO UPDATE SET pending = EXCLUDED.pending,
  queued = EXCLUDED.queued, sent = EXCLUDED.sent, failed = EXCLUDED.failed,
  cancelled = EXCLUDED.cancelled, suppressed = EXCLUDED.suppressed
"""

COUNT_PARTITION = f"""
INSERT INTO message_count AS mc
  (campaign_id, chunk, pending, queued, sent, failed, cancelled, suppressed)
SELECT m.campaign_id, m.seq / %(chunk)s,{_STATE_COUNTS}
FROM {{table}} m GROUP BY 1, 2 ORDER BY 1, 2{_SET_COUNTS}"""
"""The counters of a campaign's table as it is attached (its rows were written into the
table directly, which the ``message`` triggers do not see); ``{table}``: an identifier,
``%(chunk)s``: the campaign's chunk size. Sets absolute values, so a repeat is harmless."""

COUNT_GENERATED_PARTITION = f"""
INSERT INTO message_count AS mc
  (campaign_id, chunk, pending, queued, sent, failed, cancelled, suppressed)
SELECT %(cid)s, chunk, sum(p), sum(q), sum(s), sum(f), sum(c), sum(x) FROM (
  SELECT m.seq / %(chunk)s AS chunk,{_STATE_COUNTS}
  FROM {{table}} m WHERE m.seq < %(shift)s GROUP BY 1
  UNION ALL
  SELECT k, least((k + 1) * %(chunk)s, %(total)s) - greatest(k * %(chunk)s, %(shift)s),
         0, 0, 0, 0, 0
  FROM generate_series(%(shift)s / %(chunk)s, (%(total)s - 1) / %(chunk)s) k
  WHERE %(total)s > %(shift)s
) AS n (chunk, p, q, s, f, c, x) GROUP BY chunk ORDER BY chunk{_SET_COUNTS}"""
""":data:`COUNT_PARTITION` for a generated list: rows from ``%(shift)s`` to ``%(total)s``
were made by one INSERT each batch as pending and never attempted, so their counts per
chunk are arithmetic; only the rows before (the ``include`` list) are counted, through
the primary key. Saves a scan of the table (0.3 s per million rows)."""

RETRYABLE = "status = 'failed' AND NOT coalesce(last_error = ANY(%s), false)"
"""Failed messages a retry may send again: all but those that can never succeed (invalid
addresses, control characters). One parameter: :data:`RETRYABLE_PARAM`."""

RETRYABLE_PARAM = list(NEVER_RETRIED)

COUNT_RETRYABLE = f"SELECT count(*) FROM message WHERE campaign_id = %s AND {RETRYABLE}"
"""How many messages of campaign ``%s`` a retry would send again (then RETRYABLE_PARAM)."""

RETRY = (
    "UPDATE message SET status = 'pending', attempts = 0, updated_at = now() "
    f"WHERE campaign_id = %s AND {RETRYABLE}"
)
"""Make the retryable messages of campaign ``%s`` pending again (then RETRYABLE_PARAM)."""
