"""The store on disk: who may read it, the secret shuffle seed, and room to write.

The store file holds the argon2 password hashes and, when generated, the JWT secret and the
admin key (``api_meta``), so only the server's own user may read it:

- directories the server creates for it are 0700;
- the engine creates a new store file 0600 (``cpp/src/store.cc``; SQLite gives ``-wal`` and
  ``-shm`` the same mode); an older store with group or other bits (``store.db``, ``-wal``,
  ``-shm``, ``.lock``) is tightened to 0600 at start, with a warning.

A new store gets a random seed for the pre-queue shuffle (the engine keeps it in its
snapshots), so nobody can compute the opening order of a pre-queue offline. Replay stays
deterministic: ``boxoffice.sim.replay`` uses the seed the store keeps.

The clock: a store records in ``api_meta`` (key ``clock``) whether it was served on the wall
clock or in test mode (``BOXOFFICE_TEST_CLOCK``, a clock a test moves forward at will). A server
in test mode refuses a store that was ever served on the wall clock, or that existed before
this record did: moving time forward there would expire real holds and sessions. A store
first served in test mode may later be served on the wall clock (and is then marked so).

Free space: a store whose filesystem has less than ``BOXOFFICE_STORE_FREE_BYTES_MIN`` free
answers ``/healthz`` 503 ``STORE_UNAVAILABLE`` (and the server warns at start), before the
journal's first failing write stops it.
"""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path

import boxoffice as bo
from boxoffice.errors import StoreUnavailable

from .accounts import AccountStore
from .errors import ApiError
from .logs import get_logger

PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600
# The files of one store: SQLite's database, WAL and shared-memory index, and the writer lock.
STORE_FILE_SUFFIXES = ("", "-wal", "-shm", ".lock")
# Freeing disk space takes an operator: a retry sooner would find the same.
FREE_SPACE_RETRY_AFTER_S = 30.0


def make_private_dirs(directory: Path) -> None:
    """Creates ``directory`` and its missing parents, each 0700; existing ones are left as
    they are (the store's directory may be shared, such as /tmp)."""
    missing: list[Path] = []
    for path in (directory, *directory.parents):
        if path.exists():
            break
        missing.append(path)
    for path in reversed(missing):
        try:
            path.mkdir(mode=PRIVATE_DIR_MODE)
        except FileExistsError:  # created meanwhile by someone else: theirs to set
            continue
        os.chmod(path, PRIVATE_DIR_MODE)  # a umask such as 0177 would take the owner's bits too


def tighten(db: Path) -> list[tuple[str, int]]:
    """Removes group and other permissions from the store's files that exist (0600).

    Returns:
        ``(path, old mode)`` of each file changed.
    """
    changed: list[tuple[str, int]] = []
    for suffix in STORE_FILE_SUFFIXES:
        path = f"{db}{suffix}"
        try:
            mode = stat.S_IMODE(os.stat(path).st_mode)
        except FileNotFoundError:
            continue
        if mode & 0o077:
            os.chmod(path, PRIVATE_FILE_MODE)
            changed.append((path, mode))
    return changed


def prepare(db: Path) -> None:
    """Before the engine opens ``db``: its directory (0700 when created here), and an
    existing store's files tightened to 0600 (a warning names each one changed)."""
    make_private_dirs(db.parent)
    for path, mode in tighten(db):
        get_logger().warning(
            "store file was readable by other users; tightened to 0600",
            path=path,
            mode=oct(mode),
        )


def new_store_seed() -> int:
    """A random, nonzero 64-bit seed for a new store's pre-queue shuffles (the ``secrets``
    generator: the seed must not be guessable). An existing store keeps its own."""
    seed = 0
    while seed == 0:  # 0 is the seed of stores made before seeds were random
        seed = secrets.randbits(64)
    return seed


def free_bytes(db: Path) -> int:
    """Bytes an unprivileged writer may still use on the filesystem of ``db``'s directory."""
    st = os.statvfs(db.parent)
    return st.f_bavail * st.f_frsize


def check_free_space(db: Path, free_bytes_min: int) -> None:
    """Returns while the store's filesystem has at least ``free_bytes_min`` bytes free
    (always, when ``free_bytes_min`` is 0).

    Raises:
        ApiError: 503 ``STORE_UNAVAILABLE`` (Retry-After 30 s) with the free and required
            bytes in the detail.
    """
    if free_bytes_min <= 0:
        return
    free = free_bytes(db)
    if free < free_bytes_min:
        raise ApiError(  # the engine's code and status, with a detail the operator can act on
            StoreUnavailable.http_status,
            StoreUnavailable.code,
            f"the store's filesystem has {free} bytes free, below the "
            f"{free_bytes_min} bytes BOXOFFICE_STORE_FREE_BYTES_MIN asks for; "
            "free space before writes fail",
            retry_after_s=FREE_SPACE_RETRY_AFTER_S,
        )


def check_opened(engine: bo.Engine, db: Path, free_bytes_min: int) -> None:
    """After the engine opened ``db``: warns about a store whose pre-queue shuffles are
    predictable (seed 0, made before seeds were random) and about a store short of space."""
    log = get_logger()
    if engine.seed == 0:
        log.warning(
            "the store's pre-queue shuffle seed is 0: anyone can compute the opening order of "
            "a pre-queue; a new store gets a random seed",
            db=str(db),
        )
    try:
        check_free_space(db, free_bytes_min)
    except ApiError as exc:
        log.warning("store short of space: /healthz answers 503", detail=exc.detail)


CLOCK_META_KEY = "clock"
WALL_CLOCK = "wall"
TEST_CLOCK = "test"


class TestClockRefused(Exception):
    """Test mode on a store that was served on the wall clock (or predates the record)."""

    code = "TEST_CLOCK_REFUSED"

    def __str__(self) -> str:
        return f"{self.code}: {self.args[0]}"


def mark_clock(accounts: AccountStore, db: Path, *, test_clock: bool, created: bool) -> None:
    """Records which clock serves the store ``db`` (its ``api_meta``), after the engine opened
    it; ``created``: the engine has just created it.

    Raises:
        TestClockRefused: ``test_clock`` on a store that was not created in test mode or was
            served on the wall clock since.
    """
    if not test_clock:
        accounts.set_meta(CLOCK_META_KEY, WALL_CLOCK)
        return
    if not created and accounts.meta(CLOCK_META_KEY) != TEST_CLOCK:
        raise TestClockRefused(
            f"the store {db} was served without the test clock; test mode "
            "(BOXOFFICE_TEST_CLOCK) only serves a store it created: give it a new --db"
        )
    accounts.set_meta(CLOCK_META_KEY, TEST_CLOCK)
