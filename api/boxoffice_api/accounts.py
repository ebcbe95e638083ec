"""Accounts (email and password hash per engine user) and the server's own secrets.

The engine knows users only by id; logging in is the HTTP layer's business, so the
credentials live here, in two tables of the same SQLite file as the journal (``api_accounts``,
``api_meta``). Every statement is parameterized. A sign-up creates the engine user first
(journaled and durable) and the account row second, so a crash in between leaves at worst
an engine user nobody can log in as — never an account without a user.
"""

from __future__ import annotations

import secrets
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path

# Every statement is a constant (tests/api/test_security.py checks): values are parameters.
_ACCOUNT_BY_EMAIL = (
    "SELECT user_id, email, password_hash, created_at FROM api_accounts WHERE email = ?"
)
_ACCOUNT_BY_USER = (
    "SELECT user_id, email, password_hash, created_at FROM api_accounts WHERE user_id = ?"
)


class EmailTaken(Exception):
    """Another account already uses this email."""


@dataclass(frozen=True)
class Account:
    """One account: the engine user, the normalized email, the argon2id hash, when (s)."""

    user_id: int
    email: str
    password_hash: str
    created_at: float


class AccountStore:
    """The ``api_accounts`` and ``api_meta`` tables; thread-safe, blocking (call it from a
    worker thread in async code).

    Args:
        path: the SQLite store, already opened (and created) by the engine.
    """

    def __init__(self, path: Path) -> None:
        self._lock = threading.Lock()
        # The journal writer also writes this file; the busy timeout waits for its commits.
        self._db = sqlite3.connect(
            path, timeout=30.0, check_same_thread=False, isolation_level=None
        )
        self._db.execute("PRAGMA synchronous = FULL")
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS api_accounts ("
            " user_id INTEGER PRIMARY KEY,"
            " email TEXT NOT NULL UNIQUE,"
            " password_hash TEXT NOT NULL,"
            " created_at REAL NOT NULL)"
        )
        self._db.execute(
            "CREATE TABLE IF NOT EXISTS api_meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)"
        )
        # Reads (every login) get their own connection: in WAL mode they see the last commit
        # without waiting behind a sign-up's fsync on the writing connection.
        self._read_lock = threading.Lock()
        self._read = sqlite3.connect(
            path, timeout=30.0, check_same_thread=False, isolation_level=None
        )

    def close(self) -> None:
        """Closes both connections (the tables stay in the store)."""
        with self._lock, self._read_lock:
            self._read.close()
            self._db.close()

    def find(self, email: str) -> Account | None:
        """The account with this (normalized) email, or None."""
        with self._read_lock:
            row = self._read.execute(_ACCOUNT_BY_EMAIL, (email,)).fetchone()
        return None if row is None else Account(*row)

    def by_user(self, user_id: int) -> Account | None:
        """The account of an engine user, or None."""
        with self._read_lock:
            row = self._read.execute(_ACCOUNT_BY_USER, (user_id,)).fetchone()
        return None if row is None else Account(*row)

    def add(self, user_id: int, email: str, password_hash: str) -> Account:
        """Stores a new account, durably (the row is committed when this returns).

        Raises:
            EmailTaken: the email is in use.
        """
        account = Account(user_id, email, password_hash, time.time())
        with self._lock:
            try:
                self._db.execute(
                    "INSERT INTO api_accounts (user_id, email, password_hash, created_at)"
                    " VALUES (?, ?, ?, ?)",
                    (account.user_id, account.email, account.password_hash, account.created_at),
                )
            except sqlite3.IntegrityError as exc:
                raise EmailTaken(email) from exc
        return account

    def set_password_hash(self, user_id: int, password_hash: str) -> None:
        """Replaces a hash (after a login with outdated argon2 parameters)."""
        with self._lock:
            self._db.execute(
                "UPDATE api_accounts SET password_hash = ? WHERE user_id = ?",
                (password_hash, user_id),
            )

    def meta(self, name: str) -> str | None:
        """The value stored under ``name`` in ``api_meta``, or None."""
        with self._lock:
            row = self._db.execute("SELECT value FROM api_meta WHERE key = ?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, name: str, value: str) -> None:
        """Stores ``value`` under ``name`` in ``api_meta``, durably (replacing any)."""
        with self._lock:
            self._db.execute(
                "INSERT OR REPLACE INTO api_meta (key, value) VALUES (?, ?)", (name, value)
            )

    def secret(self, name: str) -> str:
        """The named server secret, generated (256 random bits) and stored on first use."""
        with self._lock:
            self._db.execute(
                "INSERT OR IGNORE INTO api_meta (key, value) VALUES (?, ?)",
                (name, secrets.token_urlsafe(32)),
            )
            (value,) = self._db.execute(
                "SELECT value FROM api_meta WHERE key = ?", (name,)
            ).fetchone()
        return str(value)
