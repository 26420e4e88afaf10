"""Settings for each deployable, read from the environment (prefix ``NOTIFQ_``).

One class per deployable; they share the connection settings through
:class:`CommonSettings`. Every field is documented because these docstrings are
the reference for the Helm chart's ConfigMap.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

PLACEHOLDER_SECRETS = frozenset({"", "changeme", "change-me", "secret", "dev-secret", "password"})

CHANNEL_PROVIDERS: dict[str, frozenset[str]] = {
    "email": frozenset({"ses", "smtp"}),
    "sms": frozenset({"sns"}),
    "push": frozenset({"sns"}),
}
"""The real providers that deliver each channel (the mock is for tests and demos only):
what a failover pair may name."""


class CommonSettings(BaseSettings):
    """Connection settings every component needs."""

    model_config = SettingsConfigDict(env_prefix="NOTIFQ_", extra="ignore")

    environment: Literal["development", "test", "production"] = "production"
    """Where this runs. Placeholder secrets are refused in production."""

    database_url: str = "postgresql://notifq@localhost/notifq"
    """Postgres URL (libpq form, ``postgresql://user:pass@host/db``); the source of truth."""

    redis_url: str = "redis://localhost:6379/0"
    """Redis URL holding the BullMQ queue and the shared rate limits."""

    queue_prefix: str = "notifq"
    """Key prefix of every Redis key notifq writes (BullMQ's ``prefix``)."""

    queue_name: str = "deliveries"
    """Name of the BullMQ queue carrying delivery jobs."""

    log_level: str = "INFO"
    """Python logging level name."""

    render_cpu_ms: int = Field(default=50, ge=1, le=60_000)
    """CPU budget of one message's render (subject and body) in a Jinja template; past it
    the message fails (``template over its CPU budget``). Plain substitutions have none."""

    render_batch_cpu_ms: int = Field(default=2_000, ge=1, le=600_000)
    """CPU budget of one renderer call (one write batch of one campaign); the batch's
    messages past it fail, so one template holds a renderer for at most this long."""

    render_memory_mb: int = Field(default=256, ge=64, le=65_536)
    """Address-space limit (RLIMIT_AS) of each renderer subprocess; a render past it fails
    its message (``template over its memory budget``)."""

    render_max_output_bytes: int = Field(default=512 * 1024, ge=1_024, le=64 * 1024 * 1024)
    """Largest rendered subject plus body of one message (characters); past it the
    message fails (``template output over its budget``)."""

    aws_region: str = "us-east-1"
    """AWS region: SES and SNS for the workers, S3 (``recipients.s3`` lists) for the operator."""

    aws_endpoint_url: str | None = None
    """Override the AWS endpoint (a local AWS-compatible server in tests)."""

    render_processes: int = Field(default=2, ge=1, le=64)
    """Renderer subprocesses per operator or worker process, started on first use (only
    templates that need Jinja use them)."""

    push_arn_prefixes: list[str] = []
    """SNS ARN prefixes push targets must lie under (e.g.
    ``arn:aws:sns:eu-west-1:123456789012:endpoint/GCM/my-app/``). A push recipient under
    none of them fails at once (``invalid recipient: push target outside the allowed ARN
    prefixes``), and the workers refuse such a target too. Empty (the default): push is
    off, push campaigns are refused. JSON list in the env."""


class UnsubscribeSettings(CommonSettings):
    """One-click unsubscribe (RFC 8058): the workers sign the links, the API verifies them."""

    public_base_url: str | None = None
    """The API's public URL (``https://notifq.example.com``): bulk email carries
    ``List-Unsubscribe: <{public_base_url}/unsubscribe/TOKEN>``. Unset: no such headers."""

    unsubscribe_keys: str = ""
    """Signing keys of unsubscribe tokens, ``id:secret`` separated by commas (from a
    Secret). The first signs, all verify: add a new key in front, drop the old one once the
    mail signed with it is old enough. Ids are letters and digits; secrets 32+ characters."""

    unsubscribe_mailto: str | None = None
    """An address for ``List-Unsubscribe``'s optional ``mailto:`` form (unset: none)."""

    @field_validator("unsubscribe_keys")
    @classmethod
    def _keys_parse(cls, value: str) -> str:
        from notifq.core.unsubscribe import Keys

        Keys.parse(value)  # a key list that cannot sign or verify stops the start
        return value


class OperatorSettings(CommonSettings):
    """Settings of the Kopf operator."""

    chunk_size: int = Field(default=500, ge=1, le=10_000)
    """Messages per BullMQ job. Chunks cut Redis round trips and batch status writes."""

    max_chunks: int = Field(default=500, ge=1)
    """Most chunks (BullMQ jobs, counter rows) of one campaign: a list of more than
    ``chunk_size`` times this many messages gets bigger chunks, a multiple of
    ``chunk_size`` (a million messages: 500 jobs of 2,000). Each chunk costs an enqueue, a
    check in every sweep and a counter row in every status read, so a huge campaign's
    costs stay bounded; 500 jobs are still far more than a fleet's job slots."""

    status_interval: float = Field(default=1.0, gt=0)
    """Seconds between status reconciliations of an active campaign (bounds status lag)."""

    status_patch_interval: float = Field(default=1.0, ge=0)
    """Least seconds between two status patches of one campaign that change only its
    counts and progress (a new phase, condition, retry or message is patched at once).
    Each patch costs the API server a write and every watcher an event, so a fleet of
    busy campaigns can be made cheaper at the price of this much status lag."""

    db_pool_size: int = Field(default=20, ge=4, le=500)
    """Postgres connections of the operator, shared by every campaign's reconciliation,
    deletions and the autoscaler. Each step takes a connection for one statement or
    transaction and gives it back, so campaigns interleave per statement. Campaigns being
    stored hold at most half of it: ``db_pool_size / (2 * (store_parallel + 1))`` of them
    (3 by default) are stored at once (a list's COPY holds one connection throughout; a
    generated list ``store_parallel`` + 1 while its parts are written, about 1.5 s per
    million rows on 2 cores, and ``store_parallel`` while its ranges are indexed), so a
    burst of new campaigns never starves status reads into pool timeouts."""

    requeue_interval: float = Field(default=15.0, gt=0)
    """Seconds between sweeps that re-enqueue non-final messages whose job is gone."""

    orphan_sweep_interval: float = Field(default=60.0, gt=0)
    """Seconds between sweeps that cancel unfinished campaigns whose Campaign resource no
    longer exists (deleted while no operator watched); one metadata-only LIST per
    namespace that has unfinished campaigns."""

    max_job_replacements: int = Field(default=3, ge=0, le=100)
    """Times a chunk whose job failed (every attempt raised) gets a fresh job; after that
    its pending messages fail with the job's last error instead of being re-added forever."""

    metrics_port: int = 9090
    """Port of the Prometheus /metrics endpoint (0 disables it)."""

    worker_namespace: str | None = None
    """Namespace of the worker Deployments to autoscale (label ``notifq.dev/worker-pool``);
    default: the operator's own namespace, or ``default`` outside a cluster."""

    scale_interval: float = Field(default=5.0, gt=0)
    """Seconds between autoscaling decisions for each labelled worker Deployment."""

    scale_down_window: float = Field(default=180.0, ge=0)
    """Scale-down stabilization: replicas only fall to the highest wish of this many seconds."""

    scale_min_replicas: int = Field(default=1, ge=0)
    """Default minimum worker replicas (annotation ``notifq.dev/min-replicas`` overrides)."""

    scale_max_replicas: int = Field(default=10, ge=1)
    """Default maximum worker replicas (annotation ``notifq.dev/max-replicas`` overrides)."""

    scale_target_backlog: int = Field(default=5_000, ge=1)
    """Default backlog per replica (annotation ``notifq.dev/target-backlog-per-replica``)."""

    scale_activation_backlog: int = Field(default=1, ge=0)
    """Backlog needed before scaling above the minimum (``notifq.dev/activation-backlog``)."""

    max_inline_recipients: int = 10_000
    """Largest ``recipients.list`` accepted inline; use a ConfigMap beyond that."""

    max_generated_recipients: int = 10_000_000
    """Largest ``recipients.generate.count`` accepted."""

    policy_cache_seconds: float = Field(default=5.0, gt=0)
    """Seconds NotifqPolicies and namespace labels are kept before they are read again (a
    NotifqPolicy change is seen at once; a namespace label change within this)."""

    policy_recheck_seconds: float = Field(default=30.0, gt=0)
    """A campaign waiting for a slot (phase Queued) is woken when a campaign of its
    namespace finishes or a NotifqPolicy changes; besides, it looks again this often
    (a namespace relabelled, a missed wake-up)."""

    retention_days: float = Field(default=0, ge=0)
    """Days a campaign's message rows are kept after it finished (or was deleted); then its
    partition is dropped at once (not a DELETE) and ``campaign.expired_at`` set; the campaign
    row, its counts and the resource status stay. 0 keeps every row forever."""

    retention_interval: float = Field(default=300.0, gt=0)
    """Seconds between looks for campaigns whose rows are past ``retention_days``."""

    store_batch: int = Field(default=50_000, ge=100, le=1_000_000)
    """Recipients of a list (inline, ConfigMap, ``recipients.s3``) stored and committed per
    transaction; an operator restarted while storing goes on after the last commit. Bounds
    the operator's memory for object lists (about 100 bytes per recipient)."""

    store_parallel: int = Field(default=2, ge=1, le=16)
    """COPYs a generated list is written with at once (each a Postgres process, so a core
    of the database's; parts of at least 100,000 rows), fed by one more statement that
    makes their text. 1 writes it in one COPY. At most ``db_pool_size`` / 2 - 1 are used
    (:attr:`store_parts`)."""

    ses_events_queue_url: str | None = None
    """SQS queue that receives SES bounce and complaint notifications (SES -> SNS -> SQS);
    the operator's leader consumes it. Unset: no feedback is read."""

    ses_events_wait_seconds: int = Field(default=20, ge=0, le=20)
    """Long-poll wait of each SQS ``ReceiveMessage``."""

    guard_bounce_rate: float = Field(default=0.05, gt=0, le=1)
    """Hard-bounce rate (bounces / sent) past which the reputation guard suspends a campaign."""

    guard_complaint_rate: float = Field(default=0.001, gt=0, le=1)
    """Complaint rate (complaints / sent) past which the reputation guard suspends a campaign."""

    guard_min_sent: int = Field(default=1000, ge=1)
    """The guard judges a campaign once it sent at least this many messages."""

    leader_election: bool = True
    """Run Kopf's handlers, timers and the autoscaler only while this replica holds a
    ``coordination.k8s.io`` Lease, so several replicas can run with one active and the
    others standing by (docs/operator-ha.md). False: work at once (one replica only)."""

    leader_lease_name: str = Field(default="notifq-operator", min_length=1, max_length=253)
    """Name of the Lease the operator replicas compete for (one per installation)."""

    leader_lease_namespace: str | None = None
    """Namespace of the Lease; default: the operator's own namespace, or ``default``
    outside a cluster."""

    leader_identity: str | None = None
    """This replica's name in the Lease (the chart passes the pod name); default: the
    host name. A random suffix is always added, so a restarted process is a new holder."""

    leader_lease_duration: int = Field(default=10, ge=2)
    """Seconds a Lease stays valid after its last renewal. A standby takes over once it has
    seen the Lease unchanged for this long, so this bounds the handover after a crash."""

    leader_renew_deadline: float = Field(default=7.0, gt=0)
    """Seconds the leader keeps working without a successful renewal; then it stops at once
    and exits. Must be below ``leader_lease_duration``, so it stops before anyone else may
    take over."""

    leader_renew_interval: float = Field(default=2.0, gt=0)
    """Seconds between the leader's renewals (and the timeout of each Lease request)."""

    leader_retry_interval: float = Field(default=2.0, gt=0)
    """Seconds between a standby's attempts to take the Lease."""

    @property
    def store_parts(self) -> int:
        """``store_parallel``, capped so one generated list being written (its parts and
        the statement that makes their text) holds at most half of the pool: a pool too
        small for its parts would leave a part waiting for a connection that the others,
        waiting for their text, never give back."""
        return max(1, min(self.store_parallel, self.db_pool_size // 2 - 1))

    @model_validator(mode="after")
    def _check_lease_timing(self) -> OperatorSettings:
        if not (
            self.leader_renew_interval < self.leader_renew_deadline < self.leader_lease_duration
        ):
            raise ValueError(
                "leader election needs NOTIFQ_LEADER_RENEW_INTERVAL < "
                "NOTIFQ_LEADER_RENEW_DEADLINE < NOTIFQ_LEADER_LEASE_DURATION"
            )
        return self


class WorkerSettings(UnsubscribeSettings):
    """Settings of a delivery worker process."""

    concurrency: int = Field(default=8, ge=1, le=256)
    """Jobs (chunks) one worker process works on at once."""

    max_in_flight: int = Field(default=512, ge=1, le=10_000)
    """Provider calls one worker process keeps in flight at once, across its jobs."""

    write_batch: int = Field(default=500, ge=1, le=10_000)
    """Sends grouped per provider call and status write (one UPDATE, one commit each).
    With durable Postgres the commit count bounds throughput: 500 drained 100,000
    messages in 5.2 s where 100 took 8.5 s (bench/run.py, 2 workers)."""

    naive_counter: bool = False
    """Benchmarks only: bump the campaign's counter row with every status write, as the
    reference service did per message (bench/run.py's naive case); never in production."""

    lock_duration_ms: int = Field(default=10_000, ge=1_000)
    """BullMQ job lock; a dead worker's jobs are taken over after about this long."""

    stalled_interval_ms: int = Field(default=5_000, ge=500)
    """How often BullMQ looks for jobs of dead workers."""

    reconnect_delay_ms: int = Field(default=1_000, ge=100)
    """Pause before the worker retries Redis after a connection error (BullMQ's runRetryDelay)."""

    metrics_port: int = 9091
    """Port of the Prometheus /metrics endpoint (0 disables it)."""

    mock_latency_ms: float = Field(default=200.0, ge=0)
    """Mock provider: simulated latency of one send."""

    mock_failure_rate: float = Field(default=0.2, ge=0, le=1)
    """Mock provider: probability that one send fails transiently."""

    mock_log_dir: str | None = None
    """Mock provider: directory for an append-only log of accepted sends (to count duplicates)."""

    mock_outage_file: str | None = None
    """Mock provider: while this file exists every send is throttled (fault tests)."""

    from_email: str = "notifications@example.com"
    """Sender address for SES."""

    smtp_host: str = "localhost"
    """SMTP provider: host name of the relay."""

    smtp_port: int = Field(default=587, ge=1, le=65_535)
    """SMTP provider: port of the relay (587 submission with STARTTLS, 465 implicit TLS)."""

    smtp_security: Literal["starttls", "tls", "none"] = "starttls"
    """SMTP provider: ``starttls`` (plain connect, then STARTTLS, required), ``tls``
    (implicit TLS from the first byte, port 465) or ``none`` (plain text; local relays)."""

    smtp_ca_file: str | None = None
    """SMTP provider: a PEM bundle of CAs trusted for the relay's certificate, instead of
    the system's (a private relay's own CA). The certificate and host name are always
    verified."""

    smtp_username: str | None = None
    """SMTP provider: user name for AUTH (the chart reads it from a Secret); unset: no AUTH."""

    smtp_password: str | None = None
    """SMTP provider: password for AUTH (the chart reads it from a Secret)."""

    smtp_from: str | None = None
    """SMTP provider: sender address (``From`` and the envelope); unset: ``from_email``."""

    smtp_max_connections: int = Field(default=4, ge=1, le=256)
    """SMTP provider: most connections one worker process keeps open to the relay (and
    messages it sends at once); the relay's limit of concurrent connections divided by
    the worker replicas."""

    smtp_messages_per_connection: int = Field(default=100, ge=0)
    """SMTP provider: messages sent over one connection before it is closed and a new one
    opened (the relay's per-connection limit); 0: no limit."""

    smtp_timeout: float = Field(default=30.0, gt=0)
    """SMTP provider: seconds to wait for the relay's answer to any command."""

    smtp_domains: list[str] = []
    """Email to these domains goes to the SMTP relay under ``provider: auto`` (instead of
    SES); ``["*"]``: every address that is not at a mock domain. JSON list in the env."""

    rate_limit_smtp: float = Field(default=0, ge=0)
    """Sends per second through the SMTP relay, shared by all workers (the relay's
    per-second limit; 0: unlimited)."""

    mock_quota: int = Field(default=0, ge=0)
    """Mock provider: a quota of this many sends in any sliding 1-second window, shared by
    every worker process through Redis (one provider account); sends beyond it are answered
    ``Throttling`` and logged (``throttled-<pid>.log`` next to the delivery log). 0: none."""

    rate_limit_mock: float = Field(default=0, ge=0)
    """Sends per second planned for the mock provider, shared by all workers (0: unlimited)."""

    rate_limit_ses: float | None = Field(default=None, ge=0)
    """Sends per second for SES, shared by all workers. Unset: the account's own
    ``MaxSendRate`` from ``GetSendQuota`` (read at start and every ``ses_quota_interval``;
    14/s, SES's starting rate, until it could be read). Set: overrides it."""

    rate_limit_sns: float = Field(default=20, ge=0)
    """Sends per second for SNS, shared by all workers."""

    ses_quota_interval: float = Field(default=60.0, gt=0)
    """Seconds between reads of SES's ``GetSendQuota`` (rate and 24-hour quota)."""

    quota_burst: int = Field(default=4, ge=1, le=1000)
    """Most sends granted at once to one campaign (one slice): the burst a provider may see.
    The planned rate leaves room for it, so no 1-second window exceeds the quota."""

    quota_headroom: float = Field(default=0.01, ge=0, lt=0.5)
    """Share of a provider's quota left unplanned, for jitter between the worker's send and
    the provider's clock (network, a process descheduled). 0.01 with a 15 ms tolerance:
    no Throttling at a 200/s quota on a loaded 2-core machine (bench/quota.py)."""

    quota_tolerance_ms: float = Field(default=15.0, ge=0, le=1000)
    """How late after its booked slot a slice may still be sent; later, it books again (the
    slot is lost, not bunched with the next ones). The planned rate is lowered by the same
    share, so late sends seldom meet the last check (the sliding 1-second windows of actual
    sends, which hold them back). Smaller loses more slots on a busy machine (measured: ~3 %
    of slots later than 15 ms at load 6-10 on 2 cores)."""

    quota_hold_ms: float = Field(default=120.0, ge=0, le=1000)
    """How far ahead a slot is booked, and longest a job waits in place for quota that is
    about to free (a slot, or room in the sliding 1-second window right before the send).
    A job whose quota frees later goes back to the queue, due this much early: the queue
    wakes delayed jobs some tens of milliseconds late. 0: never waits."""

    claim_lease_seconds: float = Field(default=600.0, ge=10)
    """Longest a claim on message rows lasts even when its worker still looks alive."""

    worker_lease_seconds: float = Field(default=10.0, ge=2)
    """Lease of a live worker, renewed every quarter of it: rows claimed by a worker whose
    lease ran out (it died, or stalled longer) may be claimed and sent by another."""

    status_write_retry_seconds: float = Field(default=120.0, ge=0)
    """How long a job retries a status write through a database outage. After that the
    outcome stays in the worker's memory and is written when the database is back (the
    rows stay claimed meanwhile, so nothing is sent twice while the worker lives)."""

    provider_failover: dict[str, dict[str, str]] = {}
    """Secondary provider per channel and primary, used while the primary is down
    (``{"email": {"ses": "smtp"}}``; JSON in the env): a campaign with ``provider: auto``
    whose route leads to a primary that is down sends through its secondary instead (an
    explicit provider is never switched). Only real providers that serve the channel may be
    named (email: ``ses``, ``smtp``; sms and push: ``sns``, so none has a secondary yet);
    the mock never. "Down" is the circuit breaker's word (docs/failover.md): throttling,
    quotas and rejected recipients never fail over. Empty (the default): no failover."""

    failover_failure_threshold: int = Field(default=5, ge=1, le=10_000)
    """Consecutive sends that fail because the provider is unreachable or answers 5xx
    (connection refused or lost, timeouts, ``ServiceUnavailable``) after which a worker
    process counts the provider down and opens its breaker."""

    failover_open_seconds: float = Field(default=30.0, ge=1)
    """Seconds a provider's open breaker sends its messages to the secondary; then one
    slice probes the primary (half-open): answered, the breaker closes; down, it opens
    again for this long. At least 1: a probe per second at most, per worker process."""

    @field_validator("provider_failover")
    @classmethod
    def _real_failover_pairs(cls, value: dict[str, dict[str, str]]) -> dict[str, dict[str, str]]:
        for channel, pairs in value.items():
            serving = CHANNEL_PROVIDERS.get(channel)
            if serving is None:
                raise ValueError(f"provider_failover: unknown channel {channel!r}")
            for primary, secondary in pairs.items():
                for name in (primary, secondary):
                    if name not in serving:
                        raise ValueError(
                            f"provider_failover: {name!r} is not a real provider of "
                            f"{channel} (one of {', '.join(sorted(serving))})"
                        )
                if primary == secondary:
                    raise ValueError(f"provider_failover: {primary!r} fails over to itself")
        return value

    @field_validator("rate_limit_ses", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    def rate_limit(self, provider: str) -> float | None:
        """Configured sends/second for ``provider`` (0: unlimited; None: ask the provider)."""
        value = getattr(self, f"rate_limit_{provider}", 0)
        return None if value is None else float(value)


class ApiSettings(UnsubscribeSettings):
    """Settings of the REST API."""

    jwt_secret: str = ""
    """HS256 signing secret for tokens; required, and no placeholder outside development."""

    jwt_ttl_seconds: int = 24 * 3600
    """Lifetime of an issued token."""

    namespace: str = "default"
    """Default namespace of the REST API: where a campaign is created and what is listed
    when a request names no ``namespace`` (and the only one anonymous reads may see)."""

    admin_email: str | None = None
    """Admin account created at start when missing (with ``admin_password``)."""

    admin_password: str | None = None
    """Password of that admin account; never defaulted."""

    admin_kube_user: str | None = None
    """Kubernetes user the ``admin_email`` account acts as (its rights are checked with a
    SubjectAccessReview for every action); unset: ``notifq:<admin_email>``. ``system:``
    names are refused."""

    admin_kube_groups: list[str] = []
    """Kubernetes groups of that account (JSON list in the env); ``system:authenticated``
    is always added, ``system:`` names are refused."""

    authz_cache_seconds: float = Field(default=5.0, ge=0, le=300)
    """How long an answer of Kubernetes (SubjectAccessReview: may this user do that
    there?) is reused, allowed or denied; a changed RoleBinding takes effect within this
    time. 0: ask for every request."""

    account_cache_seconds: float = Field(default=30.0, ge=0, le=3600)
    """How long the API keeps an account row it read (a local token's account is checked
    on every request: its token version revokes old tokens). A change is heard at once
    from Postgres (``NOTIFY notifq_admin``, migration 0013) and drops the row; rows are
    kept only while the API listens, so this bounds only a notification never heard.
    0: read the account for every request."""

    oidc_issuer_url: str | None = None
    """OIDC issuer whose ID tokens the API accepts as bearer tokens (as kube-apiserver's
    ``--oidc-issuer-url``); keys from its discovery document's JWKS. Unset: no OIDC.
    Must be https outside development and test."""

    oidc_client_id: str | None = None
    """The audience an ID token must carry (``--oidc-client-id``); required with the issuer."""

    oidc_username_claim: str = "sub"
    """Claim holding the Kubernetes user name (``--oidc-username-claim``)."""

    oidc_username_prefix: str | None = None
    """Prefix of user names (``--oidc-username-prefix``); unset: none for ``email``, else
    ``<issuer URL>#``; ``-``: none."""

    oidc_groups_claim: str | None = None
    """Claim holding the user's groups, a string or a list (``--oidc-groups-claim``);
    unset: no groups (besides ``system:authenticated``)."""

    oidc_groups_prefix: str = ""
    """Prefix of group names (``--oidc-groups-prefix``)."""

    oidc_jwks_seconds: float = Field(default=3600.0, ge=10)
    """How long the issuer's keys are kept before they are fetched again (an unknown key
    id fetches them early, at most every 10 s)."""

    anonymous_reads: bool = False
    """Allow ``GET /campaigns`` and ``GET /campaigns/{id}`` without a token (the reference
    service's clients expect it): only for the default namespace, at most
    ``anonymous_page_limit`` per page, answers cached ``anonymous_cache_seconds`` and
    ``anonymous_reads_per_minute`` per client address. Off: every read needs a token."""

    anonymous_page_limit: int = Field(default=20, ge=1, le=100)
    """Largest ``limit`` of an anonymous list request."""

    anonymous_cache_seconds: float = Field(default=1.0, ge=0, le=60)
    """How long one anonymous answer is served again to every anonymous caller."""

    anonymous_reads_per_minute: int = Field(default=60, ge=1)
    """Anonymous requests allowed per client address per minute (429 + Retry-After past
    it; shared by replicas through Redis)."""

    cors_origins: list[str] = []
    """Origins allowed by CORS (e.g. ``["http://localhost:5173"]``); empty: same-origin only."""

    retry_wait_seconds: float = 10.0
    """How long ``POST /campaigns/{id}/retry`` waits for the operator to re-queue the failed
    messages before answering 202 instead of 200."""

    login_attempts: int = 5
    """Failed logins allowed per client and per account within ``login_window_seconds``."""

    login_window_seconds: int = 300
    """Window of the login limiter."""

    max_body_bytes: int = 2 * 1024 * 1024
    """Largest request body accepted."""

    trusted_proxies: list[str] = ["127.0.0.1"]
    """Addresses or networks (CIDR) whose X-Forwarded-For / X-Forwarded-Proto are believed:
    the ingress controllers in front of the API; ``["*"]`` trusts everyone (never with a
    NodePort or LoadBalancer reachable by clients)."""

    reports_port: int = 0
    """Port of the aggregated reports API (``reports.notifq.dev``, TLS, reached only through
    the Kubernetes API server); 0 turns it off."""

    reports_host: str = "0.0.0.0"
    """Address the reports API listens on (``::`` for IPv6 pod networks)."""

    reports_client_ca_file: str | None = None
    """Front-proxy CA bundle; unset: read from kube-system/extension-apiserver-authentication."""

    reports_cert_file: str | None = None
    """Serving certificate of the reports API; unset: self-signed at start."""

    reports_key_file: str | None = None
    """Key of ``reports_cert_file``."""

    @field_validator(
        "admin_kube_user",
        "oidc_issuer_url",
        "oidc_client_id",
        "oidc_username_prefix",
        "oidc_groups_claim",
        mode="before",
    )
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @model_validator(mode="after")
    def _check_oidc(self) -> ApiSettings:
        if self.oidc_issuer_url is None:
            return self
        if not self.oidc_client_id:
            raise ValueError("NOTIFQ_OIDC_CLIENT_ID is required with NOTIFQ_OIDC_ISSUER_URL")
        if not self.oidc_issuer_url.startswith("https://") and (
            self.environment == "production" or not self.oidc_issuer_url.startswith("http://")
        ):
            raise ValueError("NOTIFQ_OIDC_ISSUER_URL must be an https:// URL")
        return self

    @model_validator(mode="after")
    def _refuse_placeholder_secret(self) -> ApiSettings:
        if self.environment == "production" and (
            self.jwt_secret.lower() in PLACEHOLDER_SECRETS or len(self.jwt_secret) < 32
        ):
            raise ValueError(
                "NOTIFQ_JWT_SECRET must be set to a random value of at least 32 characters "
                "outside development"
            )
        return self


@lru_cache
def get_operator_settings() -> OperatorSettings:
    """The operator's settings, read once."""
    return OperatorSettings()


@lru_cache
def get_worker_settings() -> WorkerSettings:
    """The worker's settings, read once."""
    return WorkerSettings()


@lru_cache
def get_api_settings() -> ApiSettings:
    """The API's settings, read once."""
    return ApiSettings()
