"""Deterministic simulation testing (DST) of boxoffice, in the spirit of TigerBeetle's VOPR.

For one seed the simulator generates a long random command stream in virtual time (the
command generators of ``model_driver.Driver``: small and large clock jumps, late
callers, jumps landing exactly on deadlines, idempotent retries; plus bursts of joins at one
instant, "expiry races" (a payment, cancel, release or competing hold exactly at, or 1 us
around, the instant a hold or a session expires) and ``apply_batch`` calls whose times step
onto deadlines). Every command goes to a durable engine running in a **child process** (over
a ``multiprocessing`` pipe) and to the plain-Python ``ReferenceModel``; after every command
the results must be equal and the invariants of both must hold, and the observable state is
compared after every step (the whole of it every 10 steps and after every restart). With
every answer the child reports the journal sequence it reached and ``state_hash()``: a command
that leaves the sequence where it was must leave the hash too (a state change that is not
journaled would be lost by a crash); a call journals at most one record, a batch one per row.

At random steps the child process is stopped (a real SIGKILL unless said otherwise):

* ``durable``: after ``wait_durable`` acknowledged every command sent;
* ``applied``: every command answered, the tail not yet acknowledged durable;
* ``mid``: while a command (or a batch) is in flight: sent, the kill 0 to 2 ms later;
* ``closing`` / ``snapshotting``: in the middle of ``close()`` / ``snapshot()``;
* ``clean``: no kill: ``close()`` returns (a final snapshot), the process exits.

Sometimes the journal tail is torn before the restart: the SQLite ``-wal`` file is truncated
at a random offset inside its last committed transaction (only when SQLite's checkpointer has
not copied that transaction into the database file yet, which a real torn write could not
undo either), or garbage is written after its last valid frame, or the data of the journal's
last group is damaged (the engine must skip a torn last group). Sometimes the store is
reopened with another durability mode or snapshot interval. The new child opens the same
store and the parent checks that it opens (a torn tail is not an error), that its invariants
hold and ``recovery`` adds up, that the recovered state is exactly the state after some prefix
P of the commands sent (the recovered journal sequence is the one after command P, and
``state_hash()`` equals the hash the child reported after it), that every command acknowledged
durable before the crash is in P unless the tail was truncated or damaged, and that P is
everything when ``close()`` had returned. A SIGKILL kills the process, not the OS, so every
durability mode (``full``, ``normal``, ``off``) promises to keep every acknowledged command
(``cpp/include/boxoffice/journal.h``, ``docs/operations.md``); the simulator asserts exactly
that. The model is then rebuilt by replaying the first P commands, the whole state is
compared, and the run goes on (retries of commands lost in the crash included).

Run (from the repository root)::

    .venv/bin/python tests/python/dst.py --seed 7 --steps 400      # one seed
    .venv/bin/python tests/python/dst.py --seed 1 --seeds 20        # seeds 1..20
    .venv/bin/python tests/python/dst.py --minutes 30 -v            # seeds until time is up

Every failure prints the seed, what broke, the restarts with the prefix each kept, the last
commands, and the command that replays it (``.venv/bin/python tests/python/dst.py --seed N
--steps M``), and keeps the store directory. ``--plant wrong_result|lose_acked`` plants a bug
in the child, to see a failure.

Determinism: a seed fixes the engine settings, the command stream and every fault decision
(at which step to stop the child and how, whether and how to tear, reopen settings), drawn
from streams that crashes cannot shift; kill points are "after command k". What stays
nondeterministic is timing inside the child: how many answered but unacknowledged commands
(``applied``, ``mid``, ``closing``) the journal writer committed before the SIGKILL landed,
whether a ``mid`` command was applied at all, how commands were grouped into SQLite
transactions and when background snapshots and checkpoints ran (so whether and where a tear
lands). A different prefix P changes the model state, hence the commands that follow. The P
kept at each restart is printed with a failure; a replay with the same seed follows the same
path whenever those prefixes come out the same, which ``durable`` and ``clean`` always do.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import multiprocessing
import multiprocessing.forkserver
import os
import random
import shutil
import sqlite3
import struct
import sys
import tempfile
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, NoReturn, cast

import numpy as np
from batch_oracle import apply_single, batch_outcome, command
from model_driver import (
    ACTIONS,
    FIELDS,
    Driver,
    Keyed,
    RandomChooser,
    diff,
    small_limits,
)
from reference_model import K_HOLD, K_SESSION, ReferenceModel

import boxoffice as bo
from boxoffice import errors
from boxoffice.batch import Op

REPLAY = ".venv/bin/python tests/python/dst.py"
DEFAULT_STEPS = 400
ANSWER_TIMEOUT_S = 120.0  # a child that does not answer a command within this is hung
DURABILITY_MODES = ("full", "normal", "off")
MID_DELAYS_S = (0.0, 0.0, 2e-5, 1e-4, 5e-4, 2e-3)  # from sending a command to the kill
KILL_MODES = ("durable", "applied", "mid", "mid", "clean", "closing", "snapshotting")
TEAR_KINDS = ("truncate", "truncate", "garbage", "group")
PLANTED_FAULTS = ("wrong_result", "lose_acked")


Call = tuple[str, tuple[Any, ...], dict[str, Any]]
"""A command as the model takes it: method name, arguments, keyword arguments."""
BATCH_ROW = "<batch row>"
"""The name of a call that is one row of an ``apply_batch``: args (row dict, grades)."""


class DstFailure(AssertionError):
    """A failed simulation; the message names the seed and the command that replays it.
    ``directory`` is the run's store and logs, kept for a look (None if not created)."""

    directory: str | None = None


class Crashed(BaseException):
    """The child process is gone (killed on purpose); raised through the driver's calls.

    A ``BaseException`` so that ``Driver.call``'s ``except Exception`` lets it through.
    """


class Fatal(BaseException):
    """A failed check inside a command's round trip; like :class:`Crashed` it must pass
    through ``Driver.call`` (which would report any ``Exception`` as the engine's answer)."""


# --- what goes over the pipe ----------------------------------------------------------------


@dataclass
class Spec:
    """An input object of the engine (``ScheduleSpec``, ``SectionSpec``, ``SaleSettings``)."""

    kind: str
    fields: dict[str, Any]


@dataclass
class PlainView:
    """A result view of the engine (``Reservation``, ``QueueToken``, ...) as plain data."""

    name: str
    fields: dict[str, Any]


@dataclass
class Status:
    """What the child reports after every command: journal sequence (the last record this
    engine journaled, or the recovered one), ``state_hash()``, clock (seconds), last event
    sequence, and the message of a broken invariant (None when ``check_invariants`` passed)."""

    seq: int
    state_hash: int
    clock: float
    last_event_seq: int
    broken: str | None


SECTION_FIELDS = ("name", "rows", "seats_per_row", "grade", "price")


def encode(x: Any) -> Any:
    """Command arguments as picklable data (the engine's input classes are not picklable)."""
    if isinstance(x, bo.ScheduleSpec):
        return Spec("ScheduleSpec", {"starts_at": x.starts_at, "sections": encode(x.sections)})
    if isinstance(x, bo.SectionSpec):
        return Spec("SectionSpec", {f: getattr(x, f) for f in SECTION_FIELDS})
    if isinstance(x, bo.SaleSettings):
        return Spec("SaleSettings", {f: getattr(x, f) for f in FIELDS["SaleSettings"]})
    if isinstance(x, list):
        return [encode(v) for v in x]
    if isinstance(x, tuple):
        return tuple(encode(v) for v in x)
    if isinstance(x, dict):
        return {k: encode(v) for k, v in x.items()}
    return x


def decode(x: Any) -> Any:
    """The inverse of :func:`encode`, in the child."""
    if isinstance(x, Spec):
        f = x.fields
        if x.kind == "ScheduleSpec":
            return bo.ScheduleSpec(f["starts_at"], decode(f["sections"]))
        if x.kind == "SectionSpec":
            return bo.SectionSpec(*(f[k] for k in SECTION_FIELDS))
        return bo.SaleSettings(**f)
    if isinstance(x, list):
        return [decode(v) for v in x]
    if isinstance(x, tuple):
        return tuple(decode(v) for v in x)
    if isinstance(x, dict):
        return {k: decode(v) for k, v in x.items()}
    return x


def to_plain(x: Any) -> Any:
    """A result of the engine as picklable data (views become :class:`PlainView`)."""
    if x is None or isinstance(x, bool | int | float | str):
        return x
    if isinstance(x, list | tuple):
        return [to_plain(v) for v in x]
    name = type(x).__name__
    if name not in FIELDS:
        raise TypeError(f"no plain form for {name}")
    return PlainView(name, {f: to_plain(getattr(x, f)) for f in FIELDS[name]})


def query_key(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> str:
    return repr((name, args, sorted(kwargs.items())))


def answer_of(answer: tuple[Any, ...]) -> Any:
    """The result an answer carries, or its error raised."""
    if answer[0] == "ok":
        return from_plain(answer[1])
    raise error_from_plain(answer[1])


class RemoteView:
    """A view rebuilt in the parent: its class has the engine's class name, so
    ``model_driver.norm`` treats it like the engine's own object."""

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.__dict__!r})"


_VIEW_TYPES: dict[str, type[RemoteView]] = {}
_OTHER_ERRORS: dict[str, type[Exception]] = {}


def from_plain(x: Any) -> Any:
    if isinstance(x, list):
        return [from_plain(v) for v in x]
    if isinstance(x, PlainView):
        cls = _VIEW_TYPES.get(x.name)
        if cls is None:
            cls = _VIEW_TYPES[x.name] = type(x.name, (RemoteView,), {})
        view = cls()
        view.__dict__.update({k: from_plain(v) for k, v in x.fields.items()})
        return view
    return x


def error_to_plain(e: BaseException) -> tuple[Any, ...]:
    if isinstance(e, errors.BoxOfficeError):
        return ("box", type(e).__name__, e.code, e.message, e.position, e.eta_s, e.seat_id,
                e.retry_after_s)  # fmt: skip
    return ("other", type(e).__name__, str(e))


def error_from_plain(p: tuple[Any, ...]) -> Exception:
    if p[0] == "box":
        _, name, code, message, position, eta_s, seat_id, retry_after_s = p
        cls = getattr(errors, name, None)
        if not (isinstance(cls, type) and issubclass(cls, errors.BoxOfficeError)):
            cls = errors.error_class(code)
        return cls(
            message, position=position, eta_s=eta_s, seat_id=seat_id, retry_after_s=retry_after_s
        )
    name, message = p[1], p[2]
    other = _OTHER_ERRORS.get(name)
    if other is None:
        other = _OTHER_ERRORS[name] = type(name, (Exception,), {})
    return other(message)


# --- the child: one durable engine, commands in, results and hashes out ---------------------


@dataclass
class StoreConfig:
    """How the child opens the store (the same every time, as a server would)."""

    path: str
    durability: str
    snapshot_every_records: int
    engine_seed: int
    limits: dict[str, int | float]


def _status(engine: bo.Engine, seq: int) -> Status:
    broken = None
    try:
        engine.check_invariants()
    except errors.BoxOfficeError as exc:
        broken = str(exc)
    return Status(seq, engine.state_hash(), engine.clock, engine.last_event_seq, broken)


def _drop_last_group(path: str) -> None:
    """Planted fault ``lose_acked``: deletes the newest journal group before opening."""
    if not os.path.exists(path):
        return
    con = sqlite3.connect(path)
    with con:
        con.execute(
            "DELETE FROM journal_groups"
            " WHERE first_seq = (SELECT max(first_seq) FROM journal_groups)"
        )
    con.close()


def child_main(conn: Connection, config: StoreConfig, stderr_path: str, fault: str) -> None:
    """The child process: opens the store, answers ``opened``, then serves commands until
    the pipe closes or it is killed. Never raises across the pipe: errors are answers."""
    fd = os.open(stderr_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 2)  # the engine's log lines (torn tails) go to the run's log file
    os.close(fd)
    if fault == "lose_acked":
        _drop_last_group(config.path)
    try:
        engine = bo.Engine(
            config.path,
            durability=config.durability,
            snapshot_every_records=config.snapshot_every_records,
            seed=config.engine_seed,
            limits=bo.Limits(**config.limits),
        )
    except BaseException as exc:
        conn.send(("open_failed", error_to_plain(exc)))
        return
    seq = int(engine.recovery["last_seq"])
    conn.send(("opened", dict(engine.recovery), _status(engine, seq)))
    charges = 0
    while True:
        try:
            msg = conn.recv()
        except EOFError:
            return
        kind = msg[0]
        if kind == "call":
            _, name, args, kwargs = msg
            try:
                result: tuple[Any, ...] = (
                    "ok",
                    to_plain(getattr(engine, name)(*decode(args), **decode(kwargs))),
                )
            except Exception as exc:
                result = ("err", error_to_plain(exc))
            seq = max(seq, engine.last_seq)
            if fault == "wrong_result" and name == "charge" and result[0] == "ok":
                charges += 1
                if charges == 3:  # a planted bug: the third charge reports one won too many
                    result[1].fields["balance"] += 1
            conn.send((result, _status(engine, seq)))
        elif kind == "queries":  # read-only queries at the clock (a state comparison)
            answers = []
            for name, args, kwargs in msg[1]:
                try:
                    answers.append(("ok", to_plain(getattr(engine, name)(*args, **kwargs))))
                except Exception as exc:
                    answers.append(("err", error_to_plain(exc)))
            conn.send((answers, _status(engine, max(seq, engine.last_seq))))
        elif kind == "apply_batch":
            try:
                results = engine.apply_batch(np.array(msg[1], dtype=bo.COMMAND_DTYPE))
                out: tuple[Any, ...] = (
                    "ok",
                    [{k: int(r[k]) for k in ("code", "status", "id", "value")} for r in results],
                )
            except Exception as exc:
                out = ("err", error_to_plain(exc))
            seq = max(seq, engine.last_seq)
            conn.send((out, _status(engine, seq)))
        elif kind == "wait_durable":
            try:
                engine.wait_durable(msg[1])
                conn.send(("ok", None))
            except Exception as exc:
                conn.send(("err", error_to_plain(exc)))
        elif kind == "snapshot":
            try:
                engine.snapshot()
                conn.send(("ok", None))
            except Exception as exc:
                conn.send(("err", error_to_plain(exc)))
        elif kind == "close":
            engine.close()
            conn.send(("ok", None))
            return


# --- tearing the journal tail ---------------------------------------------------------------

WAL_MAGICS = (0x377F0682, 0x377F0683)
WAL_HEADER = 32
FRAME_HEADER = 24


@dataclass
class WalTail:
    """The layout of a WAL file's valid tail (byte offsets)."""

    last_txn_start: int  # the first frame of the last committed transaction
    last_txn_end: int  # just after its commit frame
    last_txn_first_frame: int  # 1-based frame number of last_txn_start
    frame_size: int


def wal_tail(wal: bytes) -> WalTail | None:
    """Finds the last committed transaction of the current WAL generation, or None.

    Frames of the current generation carry the header's salts; the log ends at the first
    frame that does not (a leftover of an earlier generation, or a torn frame). Checksums are
    not verified: the simulator's own tears never leave a frame with matching salts that
    SQLite would refuse.
    """
    if len(wal) < WAL_HEADER or struct.unpack(">I", wal[:4])[0] not in WAL_MAGICS:
        return None
    page_size = struct.unpack(">I", wal[8:12])[0]
    salts = wal[16:24]
    frame_size = FRAME_HEADER + page_size
    commits: list[int] = []  # frame numbers (1-based) with a commit marker
    frame, off = 1, WAL_HEADER
    while off + frame_size <= len(wal) and wal[off + 8 : off + 16] == salts:
        if struct.unpack(">I", wal[off + 4 : off + 8])[0] != 0:
            commits.append(frame)
        frame += 1
        off += frame_size
    if not commits:
        return None
    first = commits[-2] + 1 if len(commits) > 1 else 1
    start = WAL_HEADER + (first - 1) * frame_size
    return WalTail(start, WAL_HEADER + commits[-1] * frame_size, first, frame_size)


def checkpointed_through(shm: bytes, wal: bytes) -> int | None:
    """The last WAL frame SQLite's checkpointer may have copied into the database file
    (``max(nBackfill, nBackfillAttempted)`` of the wal-index), or None when the wal-index
    does not describe this WAL generation (then nothing may be torn safely)."""
    if len(shm) < 136 or shm[:48] != shm[48:96] or shm[12] != 1:
        return None
    if shm[32:40] != wal[16:24]:  # the salts: the same generation of the log
        return None
    n_backfill: int = struct.unpack("=I", shm[96:100])[0]
    n_attempted: int = struct.unpack("=I", shm[128:132])[0]
    return max(n_backfill, n_attempted)


def tear_wal(path: str, kind: str, rng: random.Random) -> str | None:
    """Truncates the WAL inside its last transaction, or writes garbage after its last valid
    frame. Returns a description, or None when the tail cannot be torn safely."""
    wal_path, shm_path = path + "-wal", path + "-shm"
    try:
        wal = Path(wal_path).read_bytes()
        shm = Path(shm_path).read_bytes()[:136]
    except FileNotFoundError:
        return None
    tail = wal_tail(wal)
    if tail is None:
        return None
    if kind == "garbage":
        size = rng.choice([1, 7, FRAME_HEADER, tail.frame_size, 3 * tail.frame_size + 5])
        with open(wal_path, "r+b") as f:
            f.seek(tail.last_txn_end)
            f.write(rng.randbytes(size))
        return f"garbage: {size} bytes at offset {tail.last_txn_end} of {len(wal)}"
    backfilled = checkpointed_through(shm, wal)
    if backfilled is None or tail.last_txn_first_frame <= backfilled:
        return None  # the checkpointer may have copied it: a real tear could not undo that
    if rng.random() < 0.3:  # at a frame boundary
        frames = (tail.last_txn_end - tail.last_txn_start) // tail.frame_size
        offset = tail.last_txn_start + rng.randrange(frames) * tail.frame_size
    else:
        offset = rng.randrange(tail.last_txn_start, tail.last_txn_end)
    os.truncate(wal_path, offset)
    span = f"{tail.last_txn_start}..{tail.last_txn_end}"
    return f"truncate: WAL {len(wal)} -> {offset} bytes (last transaction at {span})"


def damage_last_group(path: str, rng: random.Random) -> tuple[str, int] | None:
    """Damages the data of the journal's last group when it lies after the newest snapshot
    (so recovery must read it). Returns (description, its first seq) or None."""
    con = sqlite3.connect(path)
    try:
        row = con.execute(
            "SELECT first_seq, last_seq, data FROM journal_groups ORDER BY first_seq DESC LIMIT 1"
        ).fetchone()
        snap = con.execute("SELECT max(seq) FROM snapshots").fetchone()[0] or 0
        if row is None or row[0] <= snap:
            return None
        first, last, data = row[0], row[1], bytes(row[2])
        how = rng.choice(["flip", "cut", "zero"])
        if how == "flip":
            i = rng.randrange(len(data))
            damaged = data[:i] + bytes([data[i] ^ (1 << rng.randrange(8))]) + data[i + 1 :]
        elif how == "cut":
            damaged = data[: rng.randrange(len(data))]
        else:
            damaged = bytes(len(data))
        with con:
            con.execute("UPDATE journal_groups SET data = ? WHERE first_seq = ?", (damaged, first))
        return f"group {first}..{last} ({how})", first
    finally:
        con.close()


def holders_of(path: str) -> str:
    """Which live processes have ``path`` open (from /proc), for a StoreLocked report."""
    found = []
    for pid in os.listdir("/proc") if os.path.isdir("/proc") else []:
        if not pid.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in os.listdir(f"/proc/{pid}/fd"):
                with contextlib.suppress(OSError):
                    if os.readlink(f"/proc/{pid}/fd/{fd}") == path:
                        cmd = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
                        found.append(f"pid {pid} fd {fd}: {cmd.decode(errors='replace')[:120]}")
    return "\nopen by: " + "; ".join(found) if found else "\nopen by no live process"


# --- the parent: the engine behind a pipe, the model, the faults ----------------------------


class RemoteEngine:
    """Stands in for ``bo.Engine`` inside ``Driver``: every method call is a command sent to
    the child; ``clock``, ``last_event_seq``, ``state_hash()`` and ``check_invariants()`` are
    answered from what the child reported with the last command."""

    def __init__(self, sim: Simulation) -> None:
        self._sim = sim

    def __getattr__(self, name: str) -> Callable[..., Any]:
        if name.startswith("_"):
            raise AttributeError(name)
        return lambda *args, **kwargs: self._sim.call(name, args, kwargs)

    @property
    def clock(self) -> float:
        return self._sim.status.clock

    @property
    def last_event_seq(self) -> int:
        return self._sim.status.last_event_seq

    def state_hash(self) -> int:
        return self._sim.status.state_hash

    def check_invariants(self) -> None:
        if self._sim.status.broken is not None:
            raise errors.InternalError(self._sim.status.broken)


class DstDriver(Driver):
    """``model_driver.Driver`` on a remote durable engine, with DST's extra actions."""

    sim: Simulation

    def compare_state(self, full: bool = True) -> None:
        """``Driver.compare_state``, its queries fetched from the child in one round trip."""
        m = self.model
        now = m.clock
        concerts = m.concert_ids()
        users = m.user_ids()
        queries: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = [
            ("events", (self.events_seen, 10**4), {})
        ]
        for c in [*concerts, len(concerts) + 1]:
            queries += [("concert", (c,), {"now": now}), ("stats", (c,), {"now": now})]
        queries += [("seats", (s,), {"now": now}) for s in m.schedule_ids()]
        for u in [*users, len(users) + 1]:
            queries.append(("balance", (u,), {"now": now}))
            if full:
                queries += [("reservations", (u,), {"now": now}), ("history", (u,), {"now": now})]
        self.sim.prefetch(queries)
        try:
            super().compare_state(full)
        finally:
            self.sim.prefetched.clear()

    def fail(self, what: str, lines: list[str]) -> None:
        shown = "\n".join(lines[:30])
        recent = "\n".join(self.trace[-15:])
        raise DstFailure(f"{what}\n{shown}\nlast commands (model's answer after #):\n{recent}")

    def burst_joins(self, ch: RandomChooser) -> None:
        """Every user joins one concert at the same instant (a drop opening), then a few poll."""
        concert = self.pick_concert(ch)
        now = self.now()
        for user in self.model.user_ids():
            self.call("join_queue", user, concert, now=now)
        for _ in range(ch.pick("polls", [0, 1, 3])):
            self.queue_status(ch)

    def expiry_race(self, ch: RandomChooser) -> None:
        """A command on a reservation or token at exactly (or 1 us around) its deadline."""
        due = [d for d in self.model.pending_deadlines() if d[1] in (K_HOLD, K_SESSION)]
        if not due:
            self.jump_to_deadline(ch)
            return
        at, kind, ident = ch.pick("race", due[:4])
        self.now_us = at + ch.pick("race_offset_us", [0, 0, 0, -1, 1])
        self.now_noise = 0.0
        now = self.now()
        if kind == K_SESSION:
            rows = {t: (u, c) for t, u, c, _ in self.model.token_rows()}
            user, concert = rows[ident]
            pending = [
                r for r in self.model.reservation_rows() if r[1] == user and r[3] == "PENDING"
            ]
            if pending and ch.pick("session_race", ["pay", "pay", "hold"]) == "pay":
                self.call("pay", user, ident, pending[-1][0], now=now)
            else:
                schedule = self.pick_schedule_of(ch, concert)
                self.call("hold", user, ident, schedule, quantity=1, now=now)
            return
        r = self.model.reservation(
            self._owner_of(ident), ident, now=self.model.clock
        )  # a read at the model's clock: changes nothing
        what = ch.pick("hold_race", ["pay", "pay", "cancel", "release", "steal"])
        if what == "pay":
            missing = r.amount - self.model.wallet(r.user_id)
            if missing > 0 and ch.pick("fund", [True, False]):
                self.call("charge", r.user_id, min(missing, 100_000), now=now)
            self.call("pay", r.user_id, r.token_id, r.id, idempotency_key="r", now=now)
            self.keyed.append(Keyed("pay", (r.user_id, r.token_id, r.id), {"idempotency_key": "r"}))
        elif what == "cancel":
            self.call("cancel", r.user_id, r.id, now=now)
        elif what == "release":
            self.call("release_seat", r.user_id, r.id, r.seat_ids[0], now=now)
        else:  # another user wants exactly those seats at the instant they are freed
            others = [
                (u, t)
                for t, u, c, state in self.model.token_rows()
                if state == "ACTIVE" and c == r.concert_id and u != r.user_id
            ]
            user, token = ch.pick("thief", others) if others else (r.user_id, r.token_id)
            self.call("hold", user, token, r.schedule_id, list(r.seat_ids), now=now)

    def batch(self, ch: RandomChooser) -> None:
        """A few commands through ``apply_batch`` (the model takes them one by one through
        ``batch_oracle.apply_single``); times may step onto deadlines inside the batch."""
        m = self.model
        now_us = max(self.now_us, m.clock_us)
        rows: list[tuple[int, ...]] = []
        grades: list[list[str]] = []
        for _ in range(ch.pick("batch_size", [1, 2, 3, 4, 6, 8])):
            dt = ch.pick("batch_dt_us", [0, 0, 0, 1, 250_000, 2_000_000, -1])
            due = [d[0] for d in m.pending_deadlines() if d[0] > now_us]
            now_us = (due[0] if due else now_us) if dt < 0 else now_us + dt
            op = ch.pick("batch_op", BATCH_OPS)
            fields, concert = self._batch_fields(ch, op)
            rows.append(command(op, now_us, **fields))
            grades.append(m.concert_grades(concert) if concert in m.concert_ids() else [])
        self.now_us, self.now_noise = now_us, 0.0
        self.trace.append(f"eng.apply_batch({rows!r})")
        results = self.sim.apply_batch(rows, grades)
        names = bo.COMMAND_DTYPE.names or ()
        for i, (row, g, result) in enumerate(zip(rows, grades, results, strict=True)):
            expected = apply_single(
                cast(Any, m), cast(Any, Grades(g)), dict(zip(names, row, strict=True))
            )
            got = batch_outcome(result, expected)
            if got != expected:
                self.fail(f"apply_batch row {i} ({Op(row[0]).name})", diff(got, expected))
        self.engine_check()

    def _batch_fields(self, ch: RandomChooser, op: Op) -> tuple[dict[str, int], int]:
        """The fields of one batch command, and the concert it concerns (for its grades)."""
        m = self.model
        if op in (Op.ADVANCE, Op.CREATE_USER):
            return {}, 0
        if op is Op.CHARGE:
            amount = ch.pick("amount", [50_000, 30_000, 100_000, 1, 0, 100_001])
            return {"user": self.pick_user(ch), "arg": amount}, 0
        if op is Op.JOIN:
            concert = self.pick_concert(ch)
            return {"user": self.pick_user(ch), "target": concert}, concert
        if op in (Op.STATUS, Op.LEAVE):
            user = self.pick_user(ch)
            return {"user": user, "token": self.pick_token(ch, user, self.pick_concert(ch))}, 0
        if op is Op.HOLD:
            user, token, concert = self.pick_session(ch)
            schedule = self.pick_schedule_of(ch, concert)
            concert = self.concert_of_schedule(schedule)
            fields = {"user": user, "token": token, "target": schedule}
            if ch.pick("hold_explicit", [True, False]):  # arg != 0: explicit seats
                seats = self._seat_choice(ch, schedule)
                fields |= {"arg": seats[0], "quantity": ch.pick("quantity", [1, 1, 2, 3])}
            else:  # arg 0: best-available
                known = len(m.concert_grades(concert)) if concert in m.concert_ids() else 0
                fields |= {
                    "grade": ch.pick("grade_index", [0, 0, *range(1, known + 1)]),
                    "quantity": ch.pick("quantity", [2, 1, 1, 2, 3, 0, 5]),
                }
            return fields, concert
        if op is Op.PAY:
            active = {(u, c): t for t, u, c, state in m.token_rows() if state == "ACTIVE"}
            payable = [
                (r[1], active[(r[1], r[2])], r[0])
                for r in m.reservation_rows()
                if r[3] == "PENDING" and (r[1], r[2]) in active
            ]
            prefer_payable: bool = ch.pick("payable", [True, True, False])
            if payable and prefer_payable:
                user, token, reservation = ch.pick("pay", payable)
            else:
                user, reservation, concert = self.pick_reservation(ch, ("PENDING",))
                token = self.pick_token(ch, user, concert)
            return {"user": user, "token": token, "target": reservation}, 0
        statuses = ("CONFIRMED",) if op is Op.REFUND else ("PENDING",)
        user, reservation, _concert = self.pick_reservation(ch, statuses)
        fields = {"user": user, "target": reservation}
        if op is Op.RELEASE_SEAT:
            rows = {r[0]: r for r in m.reservation_rows()}
            seats = rows[reservation][4] if reservation in rows else []
            fields["arg"] = ch.pick("seat", seats * 3 + [1])
        return fields, 0

    def _owner_of(self, reservation: int) -> int:
        return next(r[1] for r in self.model.reservation_rows() if r[0] == reservation)


# DST's actions: the model-equivalence mix plus bursts, expiry races and batches.
DST_ACTIONS: list[tuple[str, int]] = [
    *ACTIONS,
    ("burst_joins", 2),
    ("expiry_race", 4),
    ("batch", 3),
]
# Batch ops, weighted; never an invalid time or an unknown op: those journal nothing, and
# every row must journal exactly one record (see ``Simulation.apply_batch``).
BATCH_OPS: list[Op] = [
    *[Op.JOIN] * 3, *[Op.STATUS] * 2, Op.LEAVE, *[Op.HOLD] * 6,
    Op.RELEASE_SEAT, Op.CANCEL, *[Op.CHARGE] * 2, *[Op.PAY] * 3, Op.REFUND, Op.ADVANCE,
    Op.CREATE_USER,
]  # fmt: skip


@dataclass
class Grades:
    """What ``batch_oracle.apply_single`` reads of a concert: its grade names."""

    grades: list[str]


def dst_limits(ch: RandomChooser) -> dict[str, int | float]:
    """The model comparison's small limits (``small_limits``: collisions, full queues,
    expiries) with room for a burst of users, and sometimes a roomier queue."""
    limits = small_limits(ch)
    limits["users_max"] = 12
    if ch.pick("roomy_queue", [False, False, False, False, True]):
        limits["queue_length_max"] = 10
    return limits


@dataclass
class Options:
    """One run: ``steps`` actions of the seed's stream. The rest is for tests: a planted
    fault in the child (``wrong_result``, ``lose_acked``), and overrides of the seed's fault
    plan (probabilities per step, kill modes)."""

    steps: int = DEFAULT_STEPS
    plant: str = ""
    crash_p: float | None = None
    tear_p: float | None = None
    kill_modes: tuple[str, ...] = KILL_MODES
    snapshot_every_records: int | None = None
    keep_dir: bool = False
    verbose: bool = False


@dataclass
class CrashRecord:
    step: int
    mode: str
    tear: str | None
    sent: int
    acked_seq: int
    kept: int = -1
    recovered_seq: int = -1

    def __str__(self) -> str:
        torn = f", tear {self.tear}" if self.tear else ""
        return (
            f"step {self.step}: {self.mode} kill{torn}: kept {self.kept} of {self.sent} "
            f"commands (journal seq {self.recovered_seq}, acknowledged {self.acked_seq})"
        )


@dataclass
class Summary:
    """What one seed's run did."""

    seed: int
    steps: int = 0
    commands: int = 0
    crashes: int = 0
    tears: int = 0
    kills: dict[str, int] = field(default_factory=dict)
    lost: int = 0  # commands sent but not kept by a restart (unacknowledged, or torn away)
    durability: str = ""
    seconds: float = 0.0

    def __str__(self) -> str:
        kills = ", ".join(f"{k} {v}" for k, v in sorted(self.kills.items()))
        return (
            f"seed {self.seed}: {self.steps} steps, {self.commands} commands, "
            f"{self.crashes} restarts ({kills or 'none'}), {self.tears} torn tails, "
            f"{self.lost} commands lost to crashes, "
            f"durability={self.durability}, {self.seconds:.1f} s"
        )


_CONTEXT: Any = None


def _context() -> Any:
    """A forkserver (fork without the parent's threads; boxoffice and this module
    preloaded once), so that a child starts in milliseconds."""
    global _CONTEXT
    if _CONTEXT is None:
        ctx = multiprocessing.get_context("forkserver")
        ctx.set_forkserver_preload(["boxoffice", "dst"])
        # The forkserver ignores the parent's sys.path when it preloads (Python 3.11), so it
        # starts with this directory on PYTHONPATH; the variable is put back right after.
        here = os.path.dirname(os.path.abspath(__file__))
        old = os.environ.get("PYTHONPATH")
        os.environ["PYTHONPATH"] = here if not old else here + os.pathsep + old
        try:
            multiprocessing.forkserver.ensure_running()
        finally:
            if old is None:
                del os.environ["PYTHONPATH"]
            else:
                os.environ["PYTHONPATH"] = old
        _CONTEXT = ctx
    return _CONTEXT


class Simulation:
    """One seed: the child, the driver (model + command generators) and the fault plan."""

    def __init__(self, seed: int, options: Options) -> None:
        self.seed = seed
        self.options = options
        self.started = time.monotonic()
        self.rng = random.Random(seed)  # the command stream
        self.faults = random.Random(f"{seed}:faults")  # kills, tears, acknowledgements
        plan = random.Random(f"{seed}:plan")
        self.durability = plan.choice(DURABILITY_MODES)
        snapshot_every = plan.choice([0, 5, 40, 200, 1_000_000])
        if options.snapshot_every_records is not None:
            snapshot_every = options.snapshot_every_records
        self.crash_p = (
            plan.choice([0.005, 0.01, 0.02]) if options.crash_p is None else options.crash_p
        )
        self.tear_p = plan.choice([0.2, 0.4]) if options.tear_p is None else options.tear_p
        self.ack_p = plan.choice([0.1, 0.3, 0.7])
        self.dir = tempfile.mkdtemp(prefix=f"boxoffice-dst-{seed}-")
        self.stderr_path = os.path.join(self.dir, "child-stderr.log")
        self.ch = RandomChooser(self.rng)
        engine_seed: int = self.ch.pick("seed", [0, 1, 7, 2**63 + 5])
        self.limits = dst_limits(self.ch)
        self.store = StoreConfig(
            os.path.join(self.dir, "store.db"), self.durability, snapshot_every, engine_seed,
            self.limits,
        )  # fmt: skip
        self.summary = Summary(seed, durability=self.durability)
        self.step = -1
        self.crashes: list[CrashRecord] = []
        # The surviving history: every call sent (as the model takes it) and, after each,
        # the child's (journal seq, state hash); marks[0] is the state before any call.
        self.calls: list[Call] = []
        self.marks: list[tuple[int, int | None]] = []  # None: a row inside a batch
        self.acked_seq = 0
        self.damaged_groups = 0  # journal groups damaged by a tear so far
        self.closed_everything = False  # the last crash was after close() returned
        self.inflight: list[Call] = []  # sent, never answered: lost in a ``mid`` kill
        self.arm_delay_s: float | None = None
        self.prefetched: dict[str, tuple[Any, ...]] = {}
        self.proc: Any = None
        self.conn: Connection | None = None
        self.status = Status(0, 0, 0.0, 0, None)
        self.recovery: dict[str, Any] = {}
        self.model_checkpoints: list[tuple[int, ReferenceModel]] = []
        self.start_child()
        self.marks.append((self.status.seq, self.status.state_hash))
        self.driver = DstDriver(engine_seed, self.limits)
        self.driver.engine = cast(bo.Engine, RemoteEngine(self))
        self.driver.sim = self
        self.model_checkpoints.append((0, copy.deepcopy(self.driver.model)))

    # --- the child --------------------------------------------------------------------------

    def start_child(self) -> None:
        if self.proc is not None and self.proc.is_alive():
            self.fail("a child is still running: the store has one writer at a time")
        ctx = _context()
        parent, child = ctx.Pipe()
        self.proc = ctx.Process(
            target=child_main,
            args=(child, self.store, self.stderr_path, self.options.plant),
            daemon=True,
        )
        self.proc.start()
        child.close()
        self.conn = parent
        answer = self.receive("open the store")
        if answer[0] == "open_failed":
            self.fail(
                f"the store does not open: {error_from_plain(answer[1])!r}"
                f"{holders_of(self.store.path + '.lock')}"
            )
        _, self.recovery, self.status = answer

    def receive(self, what: str) -> Any:
        assert self.conn is not None
        if not self.conn.poll(ANSWER_TIMEOUT_S):
            self.fail(f"the child did not answer within {ANSWER_TIMEOUT_S} s ({what})")
        try:
            return self.conn.recv()
        except (EOFError, OSError):
            self.proc.join(5)
            self.fail(f"the child died ({what}): exit code {self.proc.exitcode}")

    def kill(self) -> None:
        """SIGKILL, then wait for the child to be gone (its store lock goes with it)."""
        self.proc.kill()
        self.proc.join(30)
        if self.proc.is_alive():
            self.fail("the child survived SIGKILL")

    def drain(self) -> Any:
        """After a kill: the answer the child sent before it died, if any."""
        assert self.conn is not None
        try:
            if self.conn.poll(0):
                return self.conn.recv()
        except (EOFError, OSError):
            pass
        return None

    def stop_child(self) -> None:
        if self.proc is not None and self.proc.is_alive():
            self.proc.kill()
            self.proc.join(30)
        if self.conn is not None:
            self.conn.close()
        self.conn = None

    @property
    def dead(self) -> bool:
        return self.conn is None

    # --- commands ---------------------------------------------------------------------------

    def call(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        """Sends one command; returns its result or raises its error (rebuilt)."""
        if self.conn is None:
            raise Crashed
        cached = self.prefetched.pop(query_key(name, args, kwargs), None)
        if cached is not None:
            return answer_of(cached)
        answer = self.exchange(("call", name, encode(args), encode(kwargs)), [(name, args, kwargs)])
        result, status = answer
        before_seq, before_hash = self.marks[-1]
        if status.seq > before_seq + 1:
            self.fail(f"{name} journaled {status.seq - before_seq} records (at most 1 expected)")
        if status.seq == before_seq and status.state_hash != before_hash:
            self.fail(
                f"{name}{args!r} changed the state but journaled nothing: a crash would lose it"
            )
        self.status = status
        self.calls.append((name, args, kwargs))
        self.marks.append((status.seq, status.state_hash))
        self.summary.commands += 1
        return answer_of(result)

    def exchange(self, message: tuple[Any, ...], calls: list[Call]) -> Any:
        """Sends ``message`` (the ``calls``) and returns the answer; an armed kill lands
        while it is in flight (then the answer may be lost: ``Crashed``)."""
        assert self.conn is not None
        self.conn.send(message)
        if self.arm_delay_s is None:
            return self.receive(f"command {calls[0][0]}")
        if self.arm_delay_s:
            time.sleep(self.arm_delay_s)
        self.arm_delay_s = None
        self.kill()
        answer = self.drain()
        self.conn.close()
        self.conn = None
        if answer is None:
            self.inflight = calls
            raise Crashed
        return answer

    def apply_batch(self, rows: list[tuple[int, ...]], grades: list[list[str]]) -> list[Any]:
        """Sends ``apply_batch`` of ``rows`` (``COMMAND_DTYPE`` tuples; ``grades``: each
        row's concert grades, for the model); returns the result dicts. Every row must
        journal exactly one record, so a crash inside the batch keeps a known prefix."""
        if self.conn is None:
            raise Crashed
        names = bo.COMMAND_DTYPE.names or ()
        calls: list[Call] = [
            (BATCH_ROW, (dict(zip(names, row, strict=True)), g), {})
            for row, g in zip(rows, grades, strict=True)
        ]
        result, status = self.exchange(("apply_batch", rows), calls)
        if result[0] != "ok":
            self.fail(f"apply_batch raised {error_from_plain(result[1])!r} for {rows!r}")
        before_seq = self.marks[-1][0]
        if status.seq != before_seq + len(rows):
            self.fail(
                f"a batch of {len(rows)} commands journaled {status.seq - before_seq} records "
                f"(one each expected): {rows!r}"
            )
        self.status = status
        for i, call in enumerate(calls, start=1):
            self.calls.append(call)
            self.marks.append((before_seq + i, status.state_hash if i == len(rows) else None))
        self.summary.commands += len(rows)
        return list(result[1])

    def prefetch(self, queries: list[tuple[str, tuple[Any, ...], dict[str, Any]]]) -> None:
        """Sends read-only queries at the clock in one round trip; ``call`` answers them from
        here. They must change nothing: same journal seq, same state hash."""
        self.prefetched.clear()
        if self.conn is None or self.arm_delay_s is not None:
            return  # an armed kill lands on the next query, sent alone
        self.conn.send(("queries", queries))
        answers, status = self.receive("queries")
        if (status.seq, status.state_hash) != self.marks[-1]:
            self.fail(f"read-only queries changed the state: {queries!r}")
        self.status = status
        self.summary.commands += len(queries)
        for (name, args, kwargs), answer in zip(queries, answers, strict=True):
            self.prefetched[query_key(name, args, kwargs)] = answer

    def control(self, what: str, *args: Any) -> None:
        """``wait_durable``, ``snapshot`` or ``close`` in the child."""
        assert self.conn is not None
        self.conn.send((what, *args))
        answer = self.receive(what)
        if answer[0] != "ok":
            self.fail(f"{what}{args!r} failed: {error_from_plain(answer[1])!r}")

    def acknowledge(self) -> None:
        """A client waits for its commands to be durable: everything sent so far."""
        seq = self.marks[-1][0]
        self.control("wait_durable", seq)
        self.acked_seq = max(self.acked_seq, seq)

    # --- crashes ----------------------------------------------------------------------------

    def crash(self, mode: str) -> None:
        """Stops the child by ``mode`` (not ``mid``, which the next command triggers)."""
        assert self.conn is not None
        rng = self.crash_rng("crash")
        self.arm_delay_s = None
        if mode == "durable":
            self.acknowledge()
        self.closed_everything = False
        if mode == "clean":
            self.control("close")
            self.closed_everything = True
            self.proc.join(30)
            if self.proc.is_alive():
                self.fail("the child did not exit within 30 s after close()")
        elif mode in ("closing", "snapshotting"):  # killed in the middle of close/snapshot
            what = "close" if mode == "closing" else "snapshot"
            self.conn.send((what,))
            time.sleep(rng.choice([0.0, 1e-4, 1e-3, 5e-3, 2e-2]))
            self.kill()
            answer = self.drain()
            if answer is not None and answer[0] != "ok":
                self.fail(f"{what}() failed: {error_from_plain(answer[1])!r}")
            self.closed_everything = answer is not None and mode == "closing"
        else:
            self.kill()
        self.conn.close()
        self.conn = None
        if rng.random() < 0.2:  # the operator reopens it with other settings
            self.store.durability = rng.choice(DURABILITY_MODES)
            if self.store.durability not in self.summary.durability.split(">"):
                self.summary.durability += ">" + self.store.durability
            self.store.snapshot_every_records = rng.choice([0, 5, 40, 200, 1_000_000])

    def crash_rng(self, what: str) -> random.Random:
        """The random stream of one crash: whether a tear is possible, or a kill answered,
        depends on timing, and must not shift the decisions that follow."""
        return random.Random(f"{self.seed}:{what}:{len(self.crashes)}")

    def restart(self, mode: str) -> None:
        """Tears the tail (maybe), reopens the store in a new child and checks what it kept."""
        record = CrashRecord(self.step, mode, None, len(self.calls), self.acked_seq)
        self.crashes.append(record)
        self.summary.crashes += 1
        self.summary.kills[mode] = self.summary.kills.get(mode, 0) + 1
        damaged_first_seq = None
        rng = self.crash_rng("tear")
        if not self.closed_everything and rng.random() < self.tear_p:
            kind = rng.choice(TEAR_KINDS)
            if kind == "group":
                damaged = damage_last_group(self.store.path, rng)
                if damaged is not None:
                    record.tear, damaged_first_seq = damaged
            else:
                record.tear = tear_wal(self.store.path, kind, rng)
            if record.tear is not None:
                self.summary.tears += 1
        inflight, self.inflight = self.inflight, []
        self.start_child()
        recovered_seq = int(self.recovery["last_seq"])
        record.recovered_seq = recovered_seq
        if self.status.broken is not None:
            self.fail(f"the recovered engine breaks an invariant: {self.status.broken}")
        # A damaged last group is skipped at every open until the first group written after
        # an open replaces it (in the same transaction); a WAL tear may roll that back.
        torn_expected = {1} if damaged_first_seq is not None else {0}
        if damaged_first_seq is None and self.damaged_groups:
            torn_expected = {0, 1}
        if damaged_first_seq is not None:
            self.damaged_groups += 1
        if self.recovery["torn_groups_skipped"] not in torn_expected:
            self.fail(
                f"recovery skipped {self.recovery['torn_groups_skipped']} torn groups, "
                f"expected {' or '.join(map(str, sorted(torn_expected)))}: {self.recovery}"
            )
        rec = self.recovery
        if rec["snapshot_seq"] + rec["replayed"] != recovered_seq:
            self.fail(f"recovery does not add up (snapshot_seq + replayed != last_seq): {rec}")
        kept = self.resolve_prefix(recovered_seq, inflight)
        record.kept = kept
        self.summary.lost += record.sent + len(inflight) - kept
        if self.options.verbose:
            print(f"  seed {self.seed} {record}", flush=True)
        truncated = record.tear is not None and not record.tear.startswith("garbage")
        if not truncated and recovered_seq < self.acked_seq:
            self.fail(
                f"an acknowledged command is lost: journal seq {self.acked_seq} was acknowledged "
                f"durable, the store recovered only up to seq {recovered_seq}"
            )
        if damaged_first_seq is not None and recovered_seq != damaged_first_seq - 1:
            self.fail(
                f"the damaged last group starts at seq {damaged_first_seq}, but recovery "
                f"ended at seq {recovered_seq}"
            )
        if self.closed_everything and (kept != record.sent or rec["replayed"] != 0):
            self.fail(
                f"close() returned, yet the store kept {kept} of {record.sent} commands: {rec}"
            )
        self.acked_seq = min(self.acked_seq, recovered_seq)
        self.closed_everything = False
        self.rebuild_model(kept)
        self.driver.events_seen = 0
        self.driver.compare_state(full=True)

    def resolve_prefix(self, recovered_seq: int, inflight: list[Call]) -> int:
        """The number of commands the recovered store holds (P), from its journal seq; its
        state hash must be the one the child reported after command P. Cuts the history to P."""
        n = len(self.calls)
        at = [i for i, (seq, _) in enumerate(self.marks) if seq == recovered_seq]
        if at:
            kept = at[-1]
            expected = self.marks[kept][1]
            if expected is not None and self.status.state_hash != expected:
                self.fail(
                    f"recovered journal seq {recovered_seq} is the seq after command {kept} of "
                    f"{n}, but the state differs: hash {self.status.state_hash:#x}, after "
                    f"command {kept} it was {expected:#x}"
                )
            del self.calls[kept:]
            del self.marks[kept + 1 :]
        else:
            # Commands in flight were journaled but never answered: they are kept. A single
            # call journals at most one record, a batch row exactly one. Their hashes are
            # unknown; the full comparison with the model after the rebuild checks the state.
            extra = recovered_seq - self.marks[-1][0]
            if not 0 < extra <= len(inflight):
                self.fail(
                    f"the recovered store (journal seq {recovered_seq}) is not the state after "
                    f"any prefix of the {n + len(inflight)} commands sent (seqs "
                    f"{self.marks[0][0]}..{self.marks[-1][0]}, {len(inflight)} in flight)"
                )
            for call in inflight[:extra]:
                self.calls.append(call)
                self.marks.append((self.marks[-1][0] + 1, None))
            kept = n + extra
        self.marks[-1] = (recovered_seq, self.status.state_hash)
        return kept

    def rebuild_model(self, kept: int) -> None:
        """The model after exactly the first ``kept`` commands (from the nearest checkpoint)."""
        self.model_checkpoints = [(i, m) for i, m in self.model_checkpoints if i <= kept]
        start, base = self.model_checkpoints[-1]
        model = copy.deepcopy(base)
        for name, args, kwargs in self.calls[start:kept]:
            if name == BATCH_ROW:
                apply_single(
                    cast(Any, model), cast(Any, Grades(args[1])), args[0]
                )  # catches the engine's errors
                continue
            with contextlib.suppress(errors.BoxOfficeError):
                getattr(model, name)(*args, **kwargs)
        self.model_checkpoints.append((kept, copy.deepcopy(model)))
        self.driver.model = model

    # --- the run ----------------------------------------------------------------------------

    def fail(self, what: str) -> NoReturn:
        raise Fatal(what)

    def run(self) -> Summary:
        started = time.monotonic()
        names = [name for name, weight in DST_ACTIONS for _ in range(weight)]
        d = self.driver
        self.guarded(lambda: self.setup(d))
        for step in range(self.options.steps):
            self.step = step
            self.guarded(lambda: self.one_step(d, names))
            self.summary.steps = step + 1
        self.step = self.options.steps
        self.guarded(lambda: self.finish(d))
        self.guarded(lambda: self.reopen())
        self.summary.crashes -= 1  # the final reopen is a check, not a crash of the plan
        self.summary.kills["clean"] -= 1
        if not self.summary.kills["clean"]:
            del self.summary.kills["clean"]
        self.stop_child()
        self.summary.seconds = time.monotonic() - started
        return self.summary

    def finish(self, d: DstDriver) -> None:
        d.observe_tokens(self.ch)
        d.compare_state(full=True)

    def reopen(self) -> None:
        """The end of a run: a clean close, and the reopened store must hold everything."""
        self.crash("clean")
        self.restart("clean")

    def setup(self, d: DstDriver) -> None:
        for _ in range(self.ch.pick("users", [3, 5, 8])):
            d.create_user(self.ch)
        d.create_concert(self.ch, valid=True)

    def guarded(self, body: Callable[[], object]) -> None:
        """Runs ``body``; a crash it triggers (a ``mid`` kill) is followed by the restart."""
        try:
            body()
        except Crashed:
            self.restart("mid")
            return
        if self.dead:  # the armed kill landed on a command that still answered
            self.restart("mid")

    def one_step(self, d: DstDriver, names: list[str]) -> None:
        # Every fault decision of the step is drawn up front, so that where a crash lands
        # never shifts the decisions of later steps.
        f = self.faults
        crash, mode = f.random() < self.crash_p, f.choice(self.options.kill_modes)
        delay_s, snapshot = f.choice(MID_DELAYS_S), f.random() < 0.005
        ack, retry = f.random() < self.ack_p, f.random() < 0.5
        if crash and mode == "mid":
            self.arm_delay_s = delay_s
        elif crash:
            self.crash(mode)
            self.restart(mode)
            if retry:  # a client retries what it sent just before the crash
                d.replay(self.ch)
        if snapshot:
            self.control("snapshot")
        getattr(d, self.rng.choice(names))(self.ch)
        if self.dead:
            raise Crashed
        if ack:
            self.acknowledge()
        d.compare_state(full=self.step % 10 == 9)

    def replay_command(self) -> str:
        cmd = f"{REPLAY} --seed {self.seed} --steps {self.options.steps}"
        if self.options.plant:
            cmd += f" --plant {self.options.plant}"
        return cmd

    def report(self, exc: BaseException) -> str:
        trace = ""
        if not isinstance(exc, Fatal | AssertionError):  # a bug of the simulator itself
            trace = "".join(traceback.format_exception(exc)[-6:])
        history = "\n".join(f"  {c}" for c in self.crashes) or "  (none)"
        log = ""
        with contextlib.suppress(OSError):
            lines = Path(self.stderr_path).read_text().splitlines()[-8:]
            log = "\nchild stderr (last lines):\n" + "\n".join(f"  {x}" for x in lines)
        return (
            f"DST failure: seed={self.seed} step={self.step} after "
            f"{time.monotonic() - self.started:.1f} s "
            f"(durability={self.durability}, snapshot_every_records="
            f"{self.store.snapshot_every_records}, {len(self.calls)} commands kept)\n"
            f"{exc if isinstance(exc, Fatal | DstFailure) else f'{type(exc).__name__}: {exc}'}\n"
            f"{trace}restarts (with the prefix each kept):\n{history}{log}\n"
            f"store and logs kept in {self.dir}\n"
            f"replay: {self.replay_command()}"
        )


def run_seed(seed: int, options: Options | None = None) -> Summary:
    """Runs one seed; raises :class:`DstFailure` (seed and replay command in the message)."""
    options = options or Options()
    sim: Simulation | None = None
    try:
        sim = Simulation(seed, options)
        summary = sim.run()
    except (Fatal, Exception) as exc:
        if sim is None:
            raise DstFailure(
                f"DST failure: seed={seed} at start: {exc!r}\n"
                f"replay: {REPLAY} --seed {seed} --steps {options.steps}"
            ) from exc
        sim.stop_child()
        failure = DstFailure(sim.report(exc))
        failure.directory = sim.dir
        raise failure from exc
    if not options.keep_dir:
        shutil.rmtree(sim.dir, ignore_errors=True)
    return summary


# --- command line ---------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seed", type=int, help="the (first) seed; default: random")
    parser.add_argument("--steps", type=int, default=DEFAULT_STEPS, help="actions per seed")
    parser.add_argument("--seeds", type=int, default=1, help="run this many seeds from --seed")
    parser.add_argument("--minutes", type=float, help="run seeds until this time is up")
    parser.add_argument("--plant", choices=PLANTED_FAULTS, default="", help="a planted bug")
    parser.add_argument("-v", "--verbose", action="store_true", help="print every restart")
    args = parser.parse_args(argv)
    first = args.seed if args.seed is not None else random.SystemRandom().randrange(10**9)
    deadline = None if args.minutes is None else time.monotonic() + args.minutes * 60
    totals = Summary(seed=first)
    seeds = 0
    started = time.monotonic()
    seed = first
    while deadline is not None or seeds < args.seeds:
        if deadline is not None and time.monotonic() >= deadline:
            break
        try:
            summary = run_seed(
                seed, Options(steps=args.steps, plant=args.plant, verbose=args.verbose)
            )
        except DstFailure as exc:
            print(exc, file=sys.stderr, flush=True)
            print(f"after {seeds} passing seeds", file=sys.stderr)
            return 1
        print(summary, flush=True)
        seeds += 1
        totals.steps += summary.steps
        totals.commands += summary.commands
        totals.crashes += summary.crashes
        totals.tears += summary.tears
        totals.lost += summary.lost
        for k, v in summary.kills.items():
            totals.kills[k] = totals.kills.get(k, 0) + v
        seed += 1
    kills = ", ".join(f"{k} {v}" for k, v in sorted(totals.kills.items()))
    print(
        f"DST: {seeds} seeds ({first}..{seed - 1}) passed: {totals.steps} steps, "
        f"{totals.commands} commands, {totals.crashes} crashes and restarts ({kills}), "
        f"{totals.tears} torn tails, {totals.lost} commands lost to crashes, "
        f"{time.monotonic() - started:.0f} s",
        flush=True,
    )
    return 0


if __name__ == "__main__":
    # Run as the module ``dst`` (not ``__main__``) so that the forkserver's children find
    # ``dst.child_main`` by name.
    import dst

    raise SystemExit(dst.main())
