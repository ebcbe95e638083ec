"""Deterministic simulation testing (``dst.py``): a bounded number of seeds in ``make test``.

Each seed runs a few hundred random steps through a durable engine in a child process and the
reference model, with SIGKILLs, torn journal tails and restarts (see ``dst.py``). A failure
names the seed and the one-line command that replays it. Knobs (environment variables):

    BOXOFFICE_DST_SEEDS  a count N (seeds 1..N, default 20) or a list like ``5,9,100-119``
                         (one seed: ``7,``)
    BOXOFFICE_DST_STEPS  steps per seed (default 300)

The other tests prove that the simulator can fail: planted bugs in the child (a wrong result,
a journal that loses an acknowledged command) must be reported with the seed and the replay
command; and that the WAL tear drops exactly SQLite's last transaction.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import sqlite3
from pathlib import Path

import dst
import pytest


def seeds_from_env() -> list[int]:
    text = os.environ.get("BOXOFFICE_DST_SEEDS", "20").strip()
    if text.isdigit():
        return list(range(1, int(text) + 1))
    seeds: list[int] = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        first, _, last = part.partition("-")
        seeds += range(int(first), int(last or first) + 1)
    return seeds


STEPS = int(os.environ.get("BOXOFFICE_DST_STEPS", "300"))


def forget(failure: dst.DstFailure) -> None:
    """Removes the store a planted failure kept."""
    if failure.directory is not None:
        shutil.rmtree(failure.directory)


@pytest.mark.parametrize("seed", seeds_from_env())
def test_seed(seed: int) -> None:
    """The engine agrees with the model through crashes, torn tails and restarts."""
    try:
        summary = dst.run_seed(seed, dst.Options(steps=STEPS))
    except dst.DstFailure as exc:
        pytest.fail(str(exc), pytrace=False)
    assert summary.steps == STEPS
    assert summary.commands > STEPS


def test_every_kind_of_kill_and_tear_is_exercised() -> None:
    """A seed with a crash every ~10 steps: every kill mode, many torn tails, and commands
    that were answered but not acknowledged are really lost sometimes."""
    summary = dst.run_seed(42, dst.Options(steps=300, crash_p=0.1, tear_p=0.8))
    assert set(summary.kills) == set(dst.KILL_MODES), summary
    assert summary.tears >= 5, summary
    assert summary.lost >= 1, summary


def test_a_wrong_result_is_reported_with_the_seed_and_the_replay_command() -> None:
    with pytest.raises(dst.DstFailure) as failure:
        dst.run_seed(3, dst.Options(steps=300, plant="wrong_result"))
    forget(failure.value)
    message = str(failure.value)
    assert "seed=3" in message
    assert "charge: engine and model disagree" in message
    assert message.endswith(
        "replay: .venv/bin/python tests/python/dst.py --seed 3 --steps 300 --plant wrong_result"
    )


def test_a_lost_acknowledged_command_is_reported() -> None:
    """The planted child deletes the journal's last group before it reopens the store: a
    kill right after ``wait_durable`` acknowledged it must be caught at the restart."""
    options = dst.Options(
        steps=200,
        plant="lose_acked",
        crash_p=0.05,
        tear_p=0.0,
        kill_modes=("durable",),
        snapshot_every_records=0,
    )
    with pytest.raises(dst.DstFailure) as failure:
        dst.run_seed(5, options)
    forget(failure.value)
    message = str(failure.value)
    assert "seed=5" in message
    assert "an acknowledged command is lost" in message
    assert "replay: .venv/bin/python tests/python/dst.py --seed 5 --steps 200" in message


def test_the_command_line_prints_the_replay_command(capsys: pytest.CaptureFixture[str]) -> None:
    assert dst.main(["--seed", "3", "--steps", "300", "--plant", "wrong_result"]) == 1
    err = capsys.readouterr().err
    kept = re.search(r"store and logs kept in (\S+)", err)
    assert kept is not None
    shutil.rmtree(kept.group(1))
    assert "DST failure: seed=3 " in err
    assert ".venv/bin/python tests/python/dst.py --seed 3 --steps 300 --plant wrong_result" in err


def test_the_command_line_runs_seeds_and_prints_totals(capsys: pytest.CaptureFixture[str]) -> None:
    assert dst.main(["--seed", "7", "--seeds", "2", "--steps", "40"]) == 0
    out = capsys.readouterr().out
    assert "seed 7: 40 steps" in out and "seed 8: 40 steps" in out
    assert "DST: 2 seeds (7..8) passed: 80 steps" in out


def crash_image(con: sqlite3.Connection, db: Path, into: Path) -> Path:
    """The files of an open WAL database as a SIGKILL would leave them."""
    into.mkdir()
    for suffix in ("", "-wal", "-shm"):
        shutil.copyfile(f"{db}{suffix}", into / f"{db.name}{suffix}")
    return into / db.name


def rows(path: Path) -> list[int]:
    con = sqlite3.connect(path)
    try:
        return [r[0] for r in con.execute("SELECT v FROM t ORDER BY v")]
    finally:
        con.close()


def test_a_wal_tear_drops_exactly_the_last_transaction(tmp_path: Path) -> None:
    db = tmp_path / "w.db"
    con = sqlite3.connect(db, isolation_level=None)
    con.execute("PRAGMA journal_mode=WAL")
    con.execute("PRAGMA wal_autocheckpoint=0")
    con.execute("CREATE TABLE t (v INTEGER, pad BLOB)")
    for v in (1, 2, 3):  # three transactions, the last one spanning several pages
        con.execute("BEGIN")
        con.executemany("INSERT INTO t VALUES (?, zeroblob(?))", [(v, 3000 * v)] * v)
        con.execute("COMMIT")
    everything = [1, 2, 2, 3, 3, 3]
    for i in range(8):
        rng = random.Random(i)
        torn = crash_image(con, db, tmp_path / f"truncate{i}")
        assert dst.tear_wal(str(torn), "truncate", rng) is not None
        assert rows(torn) == [1, 2, 2]
        garbage = crash_image(con, db, tmp_path / f"garbage{i}")
        assert dst.tear_wal(str(garbage), "garbage", rng) is not None
        assert rows(garbage) == everything
    # Once the checkpointer copied the last transaction into the database file, truncating
    # the WAL could not undo it (and would corrupt the file): the simulator must not tear.
    con.execute("PRAGMA wal_checkpoint(PASSIVE)")
    copied = crash_image(con, db, tmp_path / "checkpointed")
    assert dst.tear_wal(str(copied), "truncate", random.Random(0)) is None
    assert rows(copied) == everything
    con.close()
