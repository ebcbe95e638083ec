"""Server settings: environment variables ``BOXOFFICE_*`` and ``boxoffice serve`` flags.

Every setting has a default that works on a fresh machine. Secrets left unset
(``BOXOFFICE_JWT_SECRET``, ``BOXOFFICE_ADMIN_KEY``) are generated once and kept in the
store, so tokens and the admin key survive restarts.

Overload settings (docs/operations.md, "Overload"): ``BOXOFFICE_QUEUE_LENGTH_MAX`` bounds each
concert's queue (a join beyond is 429 ``QUEUE_FULL`` with Retry-After);
``BOXOFFICE_MAX_CONCURRENT_REQUESTS`` bounds the requests processed at once (beyond, 503
``OVERLOADED`` with Retry-After, at once); ``BOXOFFICE_REQUEST_BODY_TIMEOUT_S``,
``BOXOFFICE_KEEP_ALIVE_TIMEOUT_S`` and ``BOXOFFICE_MAX_CONNECTIONS`` bound what slow or idle
clients can hold.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from . import secret_strength


class Settings(BaseSettings):
    """The HTTP service's settings (``BOXOFFICE_<NAME>`` in the environment)."""

    model_config = SettingsConfigDict(env_prefix="BOXOFFICE_", extra="ignore")

    db: Path = Field(
        Path("var/boxoffice.db"),
        description="The SQLite store: journal, snapshots, catalog and accounts.",
    )
    durability: Literal["full", "normal", "off"] = Field(
        "full", description="Journal durability (docs/operations.md)."
    )
    group_commit_interval_s: float = Field(
        0.001,
        ge=0,
        le=1,
        description="The shortest time from one journal group commit to the next: writes "
        "arriving sooner share the next fsync (docs/operations.md). 0: every group as soon as "
        "the writer is free.",
    )
    snapshot_every_records: int = Field(1_000_000, ge=0)
    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)

    admin_key: SecretStr | None = Field(
        None,
        min_length=16,
        description="X-Admin-Key for /v1/admin (16+ characters); generated and kept if unset.",
    )
    jwt_secret: SecretStr | None = Field(
        None,
        min_length=32,
        description="HS256 signing key (32+ characters); generated and kept in the store if unset.",
    )
    jwt_issuer: str = "boxoffice"
    jwt_audience: str = "boxoffice-api"
    access_token_ttl_s: int = Field(3600, ge=1, le=30 * 86400)
    queue_token_ttl_s: int = Field(
        86400,
        ge=1,
        le=30 * 86400,
        description="Lifetime of the queue token's signature; the engine decides liveness.",
    )
    password_hash_profile: Literal["rfc9106_low_memory", "rfc9106_high_memory", "cheapest"] = Field(
        "rfc9106_low_memory",
        description="argon2id parameters (RFC 9106); 'cheapest' is for tests only.",
    )
    request_body_max_bytes: int = Field(64 * 1024, ge=1024)
    request_body_timeout_s: float = Field(
        10.0,
        gt=0,
        le=3600,
        description="A request body must arrive within this many seconds of its head, else "
        "408 REQUEST_TIMEOUT (and the connection is closed). It is read before the request "
        "takes a processing slot; at the 64 KiB body limit, 10 s is a 6.5 KB/s minimum rate.",
    )
    queue_length_max: int | None = Field(
        None,
        ge=1,
        description="Live (WAITING + ACTIVE) queue tokens per concert; a join beyond is 429 "
        "QUEUE_FULL with Retry-After (the concert's poll interval). The engine keeps its limits "
        "in the store: this applies when the store is created (an existing store keeps its "
        "own, and the server warns at start). Unset: the engine's 5,000,000.",
    )
    max_concurrent_requests: int = Field(
        1024,
        ge=1,
        description="Requests processed at once (counted once their body is in); a request "
        "beyond is answered at once with 503 OVERLOADED and Retry-After: 1. /healthz and "
        "/metrics are never refused.",
    )
    keep_alive_timeout_s: int = Field(
        5, ge=1, le=300, description="An idle keep-alive connection is closed after this."
    )
    # The edge (slow bodies, descriptor exhaustion, bad framing; server.py).
    max_connections: int | None = Field(
        None,
        ge=1,
        description="Open connections at most. A new connection beyond closes the one that has "
        "kept the server waiting longest (idle, or its request still arriving); if every other "
        "one is busy, the newcomer gets 503 OVERLOADED with Retry-After. Unset: 4096, or what "
        "the descriptor limit allows if less; a larger value is lowered to fit it.",
    )
    header_timeout_s: float = Field(
        10.0,
        gt=0,
        le=3600,
        description="A request head must arrive within this many seconds of the connection "
        "opening (or of its first byte, on a kept-alive connection); else the connection is "
        "closed, with 408 REQUEST_TIMEOUT if part of the head came.",
    )
    http_protocol: Literal["h11", "httptools"] = Field(
        "httptools",
        description="uvicorn's HTTP/1.1 parser: httptools (C, llhttp; the faster) or h11 "
        "(pure Python).",
    )
    login_attempts_per_minute: int = Field(
        10, ge=1, description="Failed logins per email per minute before 429."
    )
    # Accounts and passwords (log-in floods, weak passwords, distributed guessing).
    password_hash_threads: int | None = Field(
        None,
        ge=1,
        le=256,
        description="Password hashes (argon2id) running at once, on their own threads; memory "
        "for them is at most this x the profile's memory cost (64 MiB for rfc9106_low_memory). "
        "Unset: the CPUs less one, at least 1, so a core stays for the event loop.",
    )
    password_hash_queue_max: int = Field(
        32,
        ge=0,
        description="Sign-ups and log-ins waiting for a hashing thread; beyond, 503 OVERLOADED "
        "with Retry-After at once.",
    )
    password_hash_per_client_max: int = Field(
        4,
        ge=1,
        description="Sign-ups and log-ins of one client address running or waiting at once; "
        "beyond, 429 TOO_MANY_PASSWORD_CHECKS with Retry-After.",
    )
    password_min_score: int = Field(
        3,
        ge=0,
        le=4,
        description="The lowest zxcvbn strength score (0..4) of a new password; 3 means about "
        "10^8 guesses or more. Below it, sign-up answers 422 WEAK_PASSWORD.",
    )
    login_account_failures_free: int = Field(
        10,
        ge=1,
        description="Failed logins of one email, from any address, before its lock-outs start.",
    )
    login_account_lockout_base_s: float = Field(
        1.0,
        gt=0,
        le=3600,
        description="The first lock-out of an email past its free failures; each further "
        "failure doubles it (429 LOGIN_THROTTLED with Retry-After). A success resets it.",
    )
    login_account_lockout_max_s: float = Field(
        900.0,
        gt=0,
        le=86400,
        description="The longest lock-out of an email, however many failures.",
    )
    holds_per_minute: int | None = Field(
        20,
        ge=0,
        description="Hold attempts (POST /v1/reservations, successful or not) per user per "
        "concert in any 60 s; beyond, 429 HOLD_RATE_LIMITED with Retry-After. 0 switches it "
        "off. Counted by each server process on its own.",
    )
    demo: bool = Field(False, description="Load a demo concert into an empty store.")
    test_clock: bool = Field(
        False,
        description="Test mode: the server's clock is the wall clock plus an offset that "
        "POST /v1/admin/test-clock moves forward (so a test can pass a hold's expiry at once), "
        "and /healthz says so. For tests only: the server refuses to start in test mode on a "
        "store that was ever served without it, and a store served in test mode is marked so.",
    )
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    access_log: bool = Field(True, description="One log line per request.")
    log_json: bool = Field(True, description="One JSON object per log line (else key=value).")
    # The store, the secrets and the operators' endpoints (a readable store, weak secrets,
    # public metrics, a full disk).
    metrics_public: bool = Field(
        False,
        description="Serve /metrics without the admin key. By default it needs X-Admin-Key or "
        "Authorization: Bearer <admin key> (its numbers include held seats and revenue).",
    )
    store_free_bytes_min: int = Field(
        64 * 1024 * 1024,
        ge=0,
        description="Free bytes the store's filesystem must keep; below, /healthz answers 503 "
        "STORE_UNAVAILABLE (and the server warns at start) before a journal write fails. "
        "0: no check.",
    )

    # The scale-out deployment (docs/scale-out.md).
    cluster: str | None = Field(
        None,
        description="NATS server URLs, comma-separated (nats://host:port,...): serve through "
        "the cluster's replicated command log instead of an embedded store. Needs "
        "BOXOFFICE_JWT_SECRET and BOXOFFICE_ADMIN_KEY (every worker must share them).",
    )
    shard: str = Field("main", description="The cluster shard whose log to use.")
    reuse_port: bool = Field(
        False,
        description="Bind with SO_REUSEPORT, so that several worker processes share the port "
        "(the kernel spreads connections over them).",
    )
    append_timeout_s: float = Field(
        10.0,
        gt=0,
        le=60,
        description="Cluster mode: how long a write waits for the log's quorum (longer than a "
        "leader election) before 503 STORE_UNAVAILABLE with Retry-After.",
    )

    @property
    def cluster_urls(self) -> list[str]:
        """The NATS URLs of :attr:`cluster` (empty: embedded mode)."""
        return [u.strip() for u in (self.cluster or "").split(",") if u.strip()]

    @model_validator(mode="after")
    def _cluster_secrets(self) -> Settings:
        """In cluster mode every worker must sign and check the same tokens and key: the
        secrets cannot be generated per process. The test clock is per process and marks its
        store, so it is for the embedded store only."""
        if self.cluster is not None:
            if self.test_clock:
                raise ValueError("the test clock needs an embedded store (not BOXOFFICE_CLUSTER)")
            if not self.cluster_urls:
                raise ValueError("BOXOFFICE_CLUSTER: give at least one NATS URL")
            if self.jwt_secret is None or self.admin_key is None:
                raise ValueError(
                    "cluster mode needs BOXOFFICE_JWT_SECRET and BOXOFFICE_ADMIN_KEY (shared "
                    "by every worker)"
                )
        return self

    @field_validator("jwt_secret", "admin_key")
    @classmethod
    def _strong_secret(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        """Refuses a guessable secret (secret_strength.py says which bar and why)."""
        if value is not None:
            bar = (
                secret_strength.JWT_SECRET_GUESSES_LOG10_MIN
                if info.field_name == "jwt_secret"
                else secret_strength.ADMIN_KEY_GUESSES_LOG10_MIN
            )
            secret_strength.check(value.get_secret_value(), bar)
        return value
