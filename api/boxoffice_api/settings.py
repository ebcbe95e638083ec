"""Server settings: environment variables ``BOXOFFICE_*`` and ``boxoffice serve`` flags.

Every setting has a default that works on a fresh machine. Secrets left unset
(``BOXOFFICE_JWT_SECRET``, ``BOXOFFICE_ADMIN_KEY``) are generated once and kept in the
store, so tokens and the admin key survive restarts.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


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
    login_attempts_per_minute: int = Field(
        10, ge=1, description="Failed logins per email per minute before 429."
    )
    demo: bool = Field(False, description="Load a demo concert into an empty store.")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    access_log: bool = Field(True, description="One log line per request.")
    log_json: bool = Field(True, description="One JSON object per log line (else key=value).")
