"""Durability through the Python API: a real SQLite file, reopened, and killed with SIGKILL.

The crash test runs the deterministic stream of ``durability_workload.py`` in a child
process that acknowledges each command after ``wait_durable``; the parent kills it at random
moments, reopens the store, and checks that the recovered state is exactly the state after a
prefix of the stream that contains every acknowledged command (same ``state_hash`` as an
in-memory engine fed that prefix), and that the invariants hold. The next child continues the
stream from there, so recovery after recovery (and snapshots taken mid-stream) are covered.
``BOXOFFICE_CRASH_KILLS`` sets the number of kills (default 50; ``make soak`` runs more).
"""

from __future__ import annotations

import os
import random
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from durability_workload import apply

import boxoffice as bo
from boxoffice import errors

WORKLOAD = Path(__file__).with_name("durability_workload.py")


def run_stream(engine: bo.Engine, start: int, stop: int, seed: int) -> None:
    for i in range(start, stop):
        apply(engine, i, seed)


def test_reopen_gives_the_same_state(tmp_path):
    path = tmp_path / "store.db"
    with bo.Engine(path, seed=3) as engine:
        assert engine.recovery["created"] is True
        run_stream(engine, 0, 1_500, seed=1)
        engine.wait_durable()
        expected = engine.state_hash()
        seq = engine.last_seq
    assert seq > 1_000
    reopened = bo.Engine(path)
    assert reopened.state_hash() == expected
    assert reopened.recovery["created"] is False
    assert reopened.recovery["replayed"] == 0  # a clean close leaves a snapshot at the end
    reopened.check_invariants()
    # The reopened engine goes on exactly like one that never stopped.
    twin = bo.Engine(seed=3)
    run_stream(twin, 0, 2_000, seed=1)
    run_stream(reopened, 1_500, 2_000, seed=1)
    assert reopened.state_hash() == twin.state_hash()
    reopened.close()


def test_recovery_replays_the_journal_after_the_last_snapshot(tmp_path):
    path = tmp_path / "store.db"
    code = (
        "import sys, os; sys.path.insert(0, sys.argv[2]);"
        "import boxoffice as bo; from durability_workload import apply;"
        "e = bo.Engine(sys.argv[1], snapshot_every_records=0);"
        "[apply(e, i, 5) for i in range(800)]; e.snapshot();"
        "[apply(e, i, 5) for i in range(800, 1300)]; e.wait_durable();"
        "print(e.state_hash(), flush=True); os._exit(0)"  # no close: no final snapshot
    )
    out = subprocess.run(
        [sys.executable, "-c", code, str(path), str(WORKLOAD.parent)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    reopened = bo.Engine(path)
    assert reopened.state_hash() == int(out)
    assert reopened.recovery["snapshot_seq"] > 0
    assert reopened.recovery["replayed"] > 400
    reopened.check_invariants()
    reopened.close()


def test_sigkill_loses_nothing_acknowledged(tmp_path):
    path = tmp_path / "crash.db"
    seed = int(os.environ.get("BOXOFFICE_CRASH_SEED", "11"))
    kills = int(os.environ.get("BOXOFFICE_CRASH_KILLS", "50"))
    rng = random.Random(seed)
    reference = bo.Engine()  # the same stream, in memory
    applied = 0
    acked_total = 0
    for kill in range(kills):
        child = subprocess.Popen(
            [sys.executable, str(WORKLOAD), str(path), str(seed), str(applied)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert child.stdout is not None
        first = child.stdout.readline()
        assert first.startswith("open"), child.stderr.read() if child.stderr else first
        time.sleep(rng.uniform(0.0, 0.15))
        child.kill()
        child.wait()
        acked = [int(x) for x in child.stdout.read().split() if x.isdigit()]
        last_acked = acked[-1] if acked else applied - 1
        acked_total += len(acked)

        recovered = bo.Engine(path)
        recovered.check_invariants()
        got = recovered.state_hash()
        recovered.close()
        while applied <= last_acked:
            apply(reference, applied, seed)
            applied += 1
        extra = 0
        while reference.state_hash() != got and extra < 3:
            apply(reference, applied, seed)  # committed but killed before it was acknowledged
            applied += 1
            extra += 1
        assert reference.state_hash() == got, (
            f"kill {kill} (BOXOFFICE_CRASH_SEED={seed}): the recovered store is not the state "
            f"after a prefix holding every acknowledged command (last acknowledged {last_acked})"
        )
    assert acked_total > kills  # the children really worked between kills


def test_a_damaged_last_group_is_ignored_and_the_rest_recovers(tmp_path):
    path = tmp_path / "torn.db"
    code = (
        "import sys, os; sys.path.insert(0, sys.argv[2]);"
        "import boxoffice as bo; from durability_workload import apply;"
        "e = bo.Engine(sys.argv[1], snapshot_every_records=0);"
        "[(apply(e, i, 2), i % 50 == 49 and e.wait_durable()) for i in range(300)];"
        "e.wait_durable(); os._exit(0)"  # several groups, no closing snapshot
    )
    subprocess.run([sys.executable, "-c", code, str(path), str(WORKLOAD.parent)], check=True)
    con = sqlite3.connect(path)
    groups = con.execute("SELECT first_seq FROM journal_groups ORDER BY first_seq").fetchall()
    assert len(groups) >= 2
    last_first = groups[-1][0]
    con.execute(
        "UPDATE journal_groups SET data = zeroblob(length(data)) WHERE first_seq = ?",
        (last_first,),
    )
    con.commit()
    con.close()
    recovered = bo.Engine(path)
    assert recovered.recovery["torn_groups_skipped"] == 1
    assert recovered.recovery["last_seq"] == last_first - 1
    expected = bo.Engine()
    run_stream(expected, 0, last_first - 1, seed=2)  # command i has journal seq i + 1
    assert recovered.state_hash() == expected.state_hash()
    recovered.check_invariants()
    recovered.close()


def test_a_store_is_created_with_its_missing_directories(tmp_path):
    path = tmp_path / "var" / "drops" / "drop.db"
    eng = bo.Engine(path)
    user = eng.create_user(now=1.0)
    eng.close()
    assert path.is_file()
    assert bo.Engine(path).user_count == user  # reopened: the same store


def test_store_errors_are_clear(tmp_path):
    path = tmp_path / "locked.db"
    first = bo.Engine(path)
    with pytest.raises(errors.StoreLocked):
        bo.Engine(path)
    first.close()
    bo.Engine(path).close()  # the lock is gone with the first writer
    (tmp_path / "a-file").write_text("not a directory")
    with pytest.raises(errors.StoreUnavailable):
        bo.Engine(tmp_path / "a-file" / "x.db")
    with pytest.raises(errors.InvalidArgument):
        bo.Engine(tmp_path / "y.db", durability="sometimes")
    for interval in (-0.001, 1.5, float("nan")):
        with pytest.raises(errors.InvalidArgument, match="group_commit_interval_s"):
            bo.Engine(tmp_path / "y.db", group_commit_interval_s=interval)
    assert not (tmp_path / "y.db").exists()
    con = sqlite3.connect(path)
    con.execute("UPDATE meta SET value = 99 WHERE key = 'format_version'")
    con.commit()
    con.close()
    with pytest.raises(errors.StoreVersionUnsupported):
        bo.Engine(path)


def test_writers_share_group_commits_spaced_by_the_interval(tmp_path):
    import threading

    path = tmp_path / "spaced.db"
    interval_s = 0.02
    start = time.monotonic()  # the writer spaces its commits by this clock
    engine = bo.Engine(path, group_commit_interval_s=interval_s)
    users = [engine.create_user(now=1) for _ in range(4)]

    def writer(user: int) -> None:
        for k in range(20):
            engine.charge(user, 10, now=2 + k)
            engine.wait_durable()  # this thread's last command

    threads = [threading.Thread(target=writer, args=(u,)) for u in users]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed_s = time.monotonic() - start
    con = sqlite3.connect(path)  # before close, whose snapshot compacts the journal
    groups, records = con.execute(
        "SELECT count(*), sum(record_count) FROM journal_groups"
    ).fetchone()
    con.close()
    engine.close()
    assert records == 4 + 4 * 20
    assert groups <= elapsed_s / interval_s + 1  # at least one interval between commits
    reopened = bo.Engine(path)
    assert [reopened.balance(u, now=30) for u in users] == [200] * 4
    reopened.close()


def test_closing_a_store_does_not_wait_out_the_group_commit_interval(tmp_path):
    # close() takes a snapshot, which waits for the last command: with a 1 s interval, a wait
    # for it would show beside an fsync's milliseconds.
    engine = bo.Engine(tmp_path / "close.db", group_commit_interval_s=1.0)
    user = engine.create_user(now=1)
    engine.wait_durable()
    engine.charge(user, 10, now=2)  # within the interval: its group waits
    start = time.monotonic()
    engine.close()
    assert time.monotonic() - start < 0.8
    reopened = bo.Engine(tmp_path / "close.db")
    assert reopened.balance(user, now=3) == 10
    reopened.close()


def test_in_memory_engines_have_nothing_to_wait_for():
    engine = bo.Engine()
    engine.create_user(now=1)
    assert engine.wait_durable() == 0
    with pytest.raises(errors.StoreClosed):
        engine.snapshot()


def test_wait_durable_async_does_not_block_the_event_loop(tmp_path):
    import asyncio

    # Commits at least 0.2 s apart: a group appended just after a commit waits that long, so
    # the wait below always has a group to wait for (racing the writer, a busy machine's
    # writer could commit between the check and the wait, and the wait had nothing to do).
    engine = bo.Engine(tmp_path / "async.db", group_commit_interval_s=0.2)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0)

    async def main() -> tuple[int, int, int]:
        nonlocal ticks
        task = asyncio.create_task(ticker())
        for attempt in range(20):
            apply(engine, attempt * 201, seed=9)
            engine.wait_durable()  # a commit has just started
            for i in range(1, 201):
                apply(engine, attempt * 201 + i, seed=9)
            seq = engine.last_seq
            if engine._poll_durable(seq):
                continue  # this machine stalled for the whole interval: again
            ticks = 0
            waited = await engine.wait_durable_async(seq)
            task.cancel()
            return waited, seq, ticks
        raise AssertionError("every group was durable before its wait began")

    waited, seq, ticks_during = asyncio.run(main())
    assert waited == seq > 0
    assert ticks_during > 0  # the loop ran other work while the group was committed
    engine.close()


def test_many_async_waiters_share_group_commits_without_a_thread_and_all_wake(tmp_path):
    import asyncio
    import threading

    engine = bo.Engine(tmp_path / "waiters.db")
    user = engine.create_user(now=1)

    async def one_request(i: int) -> tuple[int, int]:
        await asyncio.sleep(0)
        engine.charge(user, 10, now=2 + i * 1e-3)
        seq = engine.last_seq
        return seq, await engine.wait_durable_async(seq)

    async def main() -> list[tuple[int, int]]:
        return await asyncio.gather(*(one_request(i) for i in range(500)))

    before = threading.active_count()
    results = asyncio.run(main())
    assert [seq for seq, _ in results] == [waited for _, waited in results]
    assert len({seq for seq, _ in results}) == 500
    assert threading.active_count() == before  # the loop watches an eventfd: no thread
    assert engine.balance(user, now=3) == 5000
    engine.close()
    reopened = bo.Engine(tmp_path / "waiters.db")
    assert reopened.balance(user, now=4) == 5000  # every acknowledged charge is there
    reopened.close()

    async def after_close() -> int:
        engine.charge(user, 10, now=5)  # applies in memory only: the store is closed
        return await engine.wait_durable_async(10**9)

    with pytest.raises(errors.StoreClosed):
        asyncio.run(after_close())


# Regressions found in review: each of these once corrupted a store or crashed the process.


def test_a_commit_just_before_a_loops_first_listener_still_wakes_the_wait(tmp_path):
    """The group commit lands between the first poll and the listener's creation (forced here
    by committing inside the creation): the wait must not sleep until the next commit."""
    import asyncio

    class CommitFirst(bo.Engine):
        polls = 0

        def _poll_durable(self, seq: int) -> bool:
            self.polls += 1
            return self.polls > 1 and super()._poll_durable(seq)  # the first: not yet

        def _add_durable_listener(self) -> int:
            self.wait_durable()  # the commit happens now, before the fd is on the list
            return super()._add_durable_listener()

    engine = CommitFirst(tmp_path / "first-wait.db", durability="off")
    engine.create_user(now=1)

    async def main() -> int:
        return await asyncio.wait_for(engine.wait_durable_async(), timeout=10)

    assert asyncio.run(main()) == engine.last_seq  # not a TimeoutError
    engine.close()


def test_closing_the_store_from_another_thread_settles_the_pending_async_waits(tmp_path):
    import asyncio
    import threading

    engine = bo.Engine(tmp_path / "close-while-waiting.db")
    user = engine.create_user(now=1)

    async def main() -> list[int]:
        for i in range(300):
            engine.charge(user, 1, now=2 + i * 1e-3)
        last = engine.last_seq
        waits = [asyncio.ensure_future(engine.wait_durable_async(seq)) for seq in (2, last)]
        await asyncio.sleep(0)
        closer = threading.Thread(target=engine.close)
        closer.start()
        results = await asyncio.wait_for(asyncio.gather(*waits), timeout=30)
        closer.join(timeout=30)
        return results

    results = asyncio.run(main())
    assert results[0] == 2 and results[1] > 2
    reopened = bo.Engine(tmp_path / "close-while-waiting.db")
    assert reopened.balance(user, now=5) == 300  # whatever was acknowledged is on disk
    reopened.close()


def test_a_failed_journal_fails_the_pending_async_waits(tmp_path):
    """A file-size limit makes the writer fail (EFBIG); the event loop hears of it through the
    eventfd and the waits raise StoreUnavailable, in a child process (the limit is its own)."""
    code = """
import asyncio, resource, sys
import boxoffice as bo
from boxoffice import errors
engine = bo.Engine(sys.argv[1], snapshot_every_records=0)
user = engine.create_user(now=1)
engine.wait_durable()
resource.setrlimit(resource.RLIMIT_FSIZE, (400_000, 400_000))
async def main():
    outcomes = []
    for i in range(20_000):
        engine.charge(user, 1, idempotency_key="k" * 100 + str(i), now=2 + i * 1e-3)
        try:
            await engine.wait_durable_async()
            outcomes.append("durable")
        except errors.StoreUnavailable:
            outcomes.append("unavailable")
            return outcomes
        except errors.StoreError as exc:
            return outcomes + [type(exc).__name__]
    return outcomes
outcomes = asyncio.run(main())
print(outcomes[0], outcomes[-1], len(outcomes))
"""
    import signal

    out = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "full.db")],
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=lambda: signal.signal(signal.SIGXFSZ, signal.SIG_IGN),
    )
    assert out.returncode == 0, out.stderr
    first, last, count = out.stdout.split()
    assert (first, last) == ("durable", "unavailable"), out.stdout
    assert int(count) > 1


def test_a_failed_recovery_leaves_the_store_as_it_was(tmp_path):
    path = tmp_path / "damaged.db"
    code = (
        "import os, sys; import boxoffice as bo;"
        "e = bo.Engine(sys.argv[1], snapshot_every_records=0);"
        "[(e.create_user(now=1), e.wait_durable()) for _ in range(6)]; os._exit(0)"
    )
    subprocess.run([sys.executable, "-c", code, str(path)], check=True)
    con = sqlite3.connect(path)
    assert con.execute("SELECT count(*) FROM journal_groups").fetchone()[0] >= 3
    (first,) = con.execute(
        "SELECT first_seq FROM journal_groups ORDER BY first_seq LIMIT 1 OFFSET 1"
    ).fetchone()
    (orig,) = con.execute(
        "SELECT data FROM journal_groups WHERE first_seq = ?", (first,)
    ).fetchone()
    damaged = bytes(orig[:-1]) + bytes([orig[-1] ^ 0xFF])
    con.execute("UPDATE journal_groups SET data = ? WHERE first_seq = ?", (damaged, first))
    snapshots_before = con.execute("SELECT seq, data FROM snapshots").fetchall()
    con.commit()
    con.close()
    with pytest.raises(errors.DataLoss):
        bo.Engine(path)  # a damaged group in the middle
    con = sqlite3.connect(path)
    assert con.execute("SELECT seq, data FROM snapshots").fetchall() == snapshots_before
    con.execute("UPDATE journal_groups SET data = ? WHERE first_seq = ?", (orig, first))
    con.commit()
    con.close()
    repaired = bo.Engine(path)
    assert repaired.user_count == 6  # nothing applied twice
    repaired.close()


def test_absurd_requests_are_refused_not_journaled(tmp_path):
    engine = bo.Engine(tmp_path / "big.db")
    user = engine.create_user(now=1)
    with pytest.raises(errors.InvalidArgument):
        engine.charge(user, 1, idempotency_key="k" * (9 << 20), now=2)
    with pytest.raises(errors.InvalidArgument):
        engine.hold(user, 1, 1, list(range(1, 100_000)), now=2)
    assert engine.charge(user, 5, now=3).balance == 5
    engine.close()


def test_limits_are_validated_and_read_only():
    with pytest.raises(errors.InvalidArgument):
        bo.Engine(limits=bo.Limits(idempotency_ttl_s=-1))
    engine = bo.Engine()
    limits = engine.limits
    limits.balance_max = 5  # a copy: the engine keeps its own
    user = engine.create_user(now=1)
    assert engine.charge(user, 10, now=2).balance == 10
    assert engine.limits.balance_max == 100_000_000


def test_last_seq_is_per_engine_and_close_is_safe_from_many_threads(tmp_path):
    import threading

    a = bo.Engine(tmp_path / "a.db")
    b = bo.Engine(tmp_path / "b.db")
    a.create_user(now=1)
    b.create_user(now=1)
    b.create_user(now=2)
    assert (a.last_seq, b.last_seq) == (1, 2)
    assert a.wait_durable() == 1
    closers = [threading.Thread(target=a.close) for _ in range(4)]
    for t in closers:
        t.start()
    for t in closers:
        t.join(timeout=30)
    assert not any(t.is_alive() for t in closers)
    b.close()


def test_one_bad_sequence_does_not_fail_the_other_waiters(tmp_path):
    import asyncio

    engine = bo.Engine(tmp_path / "bad-seq.db")
    user = engine.create_user(now=1)

    async def main() -> tuple[object, object]:
        engine.charge(user, 10, now=2)
        good = engine.last_seq
        first, second = await asyncio.gather(
            engine.wait_durable_async(good),
            engine.wait_durable_async(good + 1000),  # never appended
            return_exceptions=True,
        )
        return first, second

    good_result, bad_result = asyncio.run(main())
    assert good_result == engine.last_seq
    assert isinstance(bad_result, errors.InvalidArgument)
    engine.close()


def test_after_close_an_async_wait_never_reports_success(tmp_path):
    import asyncio

    engine = bo.Engine(tmp_path / "closed.db")
    user = engine.create_user(now=1)
    engine.close()
    engine.create_user(now=2)  # applied in memory only: the store is closed

    async def main() -> int:
        return await engine.wait_durable_async()

    with pytest.raises(errors.StoreClosed):
        asyncio.run(main())
    assert bo.Engine(tmp_path / "closed.db").user_count == user  # the second user is not there


def test_an_async_wait_does_not_keep_a_dropped_engine_open(tmp_path):
    import asyncio
    import gc

    engine = bo.Engine(tmp_path / "dropped.db")
    engine.create_user(now=1)
    asyncio.run(engine.wait_durable_async())
    del engine
    gc.collect()
    reopened = bo.Engine(tmp_path / "dropped.db")  # StoreLocked if the waiter kept it alive
    assert reopened.user_count == 1
    reopened.close()
