"""boxoffice.sim and ``boxoffice simulate``: reproducible drops whose numbers are the engine's.

Every drop here is small (a few thousand users) so the whole file runs in seconds; a failing
case names its seed in the SimConfig it builds.
"""
# mypy: disallow-untyped-defs=False, disallow-incomplete-defs=False, disallow-untyped-calls=False

from __future__ import annotations

import argparse
import json
import math

import numpy as np
import pandas as pd
import pytest

from boxoffice import sim, simulate_cli

SMALL = sim.SimConfig(
    users=3_000,
    seed=11,
    venue=sim.Venue(seats=600, seats_per_row=20),
    sale=sim.Sale(queue_capacity=150, poll_interval_s=5.0),
    arrivals=sim.BurstArrivals(early_fraction=0.2, early_window_s=120, spread_s=30),
    horizon_s=3_600,
)


def small(**changes) -> sim.SimConfig:
    """SMALL with some fields replaced (``sale=``, ``behaviour=``, ... whole models)."""
    fields = {name: getattr(SMALL, name) for name in SMALL.__dataclass_fields__}
    fields.update(changes)
    return sim.SimConfig(**fields)


@pytest.fixture(scope="module")
def drop() -> sim.SimResult:
    return sim.run(SMALL)


def assert_consistent_with_engine(result: sim.SimResult) -> None:
    """The summary's numbers are the engine's own, read back independently here."""
    s, eng = result.summary, result.engine
    now = eng.clock
    stats = eng.stats(result.concert_id, now=now)
    sold_seats = eng.seats(result.schedule_id, "SOLD", now=now)
    assert s.sold == stats.seats_sold == len(sold_seats)
    assert s.revenue_won == stats.revenue
    buyers = result.users[result.users.outcome == "bought"]
    assert s.buyers == len(buyers) == stats.reservations_confirmed
    assert int(buyers.seats_bought.sum()) == s.sold
    assert int(buyers.paid_won.sum()) == s.revenue_won
    payments = 0
    for user in buyers.user_id.tolist():
        payments += sum(h.amount for h in eng.history(user, now=now) if h.kind == "PAYMENT")
    assert payments == s.revenue_won
    assert s.oversold == 0
    assert s.problems == ()
    assert s.consistent
    assert s.abandoned == stats.queue_abandoned_total
    assert s.expired_holds == stats.reservations_expired
    assert s.admitted == stats.queue_admitted_total == result.users.admitted_s.notna().sum()
    eng.check_invariants()


def test_a_small_drop_sells_out_and_agrees_with_the_engine(drop):
    s = drop.summary
    assert s.sold_out and s.end_reason == "sold_out"
    assert s.sold == 600
    assert s.sell_out_s is not None and 0 < s.sell_out_s <= s.end_s
    assert s.wait_p50_s is not None and s.wait_p90_s is not None and s.wait_p99_s is not None
    assert 0 <= s.wait_p50_s <= s.wait_p90_s <= s.wait_p99_s
    assert s.gave_up > 0
    assert_consistent_with_engine(drop)


def test_same_seed_gives_identical_results(drop):
    again = sim.run(SMALL)
    pd.testing.assert_frame_equal(drop.users, again.users)
    pd.testing.assert_frame_equal(drop.timeseries, again.timeseries)
    assert drop.summary == again.summary
    assert drop.engine.state_hash() == again.engine.state_hash()


def test_another_seed_gives_other_results(drop):
    other = sim.run(small(seed=12))
    assert not drop.users.arrived_s.equals(other.users.arrived_s)
    assert not drop.timeseries.equals(other.timeseries)
    assert drop.summary != other.summary
    assert drop.engine.state_hash() != other.engine.state_hash()
    assert_consistent_with_engine(other)


def test_per_user_frame_shape_and_meaning(drop):
    users = drop.users
    assert len(users) == SMALL.users
    assert users.user_id.tolist() == list(range(1, SMALL.users + 1))
    assert users.arrived_s.is_monotonic_increasing  # users are numbered in arrival order
    assert set(users.outcome.cat.categories) == set(sim.OUTCOMES)
    joined = users[users.joined_s.notna()]
    # Joining happens at the first tick at or after arrival, never before.
    assert (joined.joined_s >= joined.arrived_s - 1e-9).all()
    assert (joined.joined_s - joined.arrived_s < SMALL.tick_s + 1e-9).all()
    admitted = users[users.admitted_s.notna()]
    assert (admitted.wait_s >= 0).all()
    assert sorted(admitted.admission_rank.tolist()) == list(range(len(admitted)))
    assert users.loc[users.admitted_s.isna(), "admission_rank"].isna().all()
    assert (users.seats_wanted.between(1, 4)).all()
    bought = users.outcome == "bought"
    assert (users.loc[bought, "token_end"] == "COMPLETED").all()
    assert (users.loc[~bought, "seats_bought"] == 0).all()
    assert users.prequeue.sum() > 0
    # Only the pre-queue is shuffled: everyone who joined after the opening is admitted in
    # arrival order.
    late = admitted[~admitted.prequeue].sort_values("admission_rank")
    assert late.user_id.is_monotonic_increasing


def test_timeseries_is_sampled_at_fixed_steps(drop):
    ts = drop.timeseries
    steps = ts.t_s.diff().dropna()
    assert (steps.iloc[:-1] == SMALL.sample_every_s).all()  # the last row is the end
    assert ts.seats_sold.is_monotonic_increasing
    assert ts.revenue_won.is_monotonic_increasing
    assert (ts.active <= SMALL.sale.queue_capacity).all()
    total = ts.seats_available + ts.seats_held + ts.seats_sold
    assert (total == SMALL.venue.seats).all()
    assert ts.iloc[-1].seats_sold == drop.summary.sold
    assert ts.iloc[-1].revenue_won == drop.summary.revenue_won


def test_fairness_measure():
    assert sim.fairness(np.arange(10))[1:] == (0.0, 0.0)
    disp, mean, norm = sim.fairness(np.arange(5)[::-1])
    assert disp.tolist() == [-4, -2, 0, 2, 4]  # the last to arrive came in first
    assert mean == pytest.approx(12 / 5)
    assert norm == pytest.approx((12 / 5) / ((25 - 1) / 15))
    rng = np.random.default_rng(0)
    assert sim.fairness(rng.permutation(20_000))[2] == pytest.approx(1.0, abs=0.02)


def test_without_a_prequeue_admission_is_first_come_first_served():
    result = sim.run(small(arrivals=sim.PoissonArrivals(rate_per_s=50.0)))
    s = result.summary
    assert not result.users.prequeue.any()
    assert s.fairness_displacement == 0.0 and s.fairness_normalized == 0.0
    assert_consistent_with_engine(result)


def test_the_prequeue_shuffle_shows_in_fairness():
    result = sim.run(
        small(arrivals=sim.BurstArrivals(early_fraction=1.0, early_window_s=300, spread_s=10))
    )
    assert result.users.prequeue.mean() > 0.99  # those in the last second join at the opening
    assert result.summary.fairness_normalized > 0.5


def test_arrival_models_draw_what_they_say():
    rng = np.random.default_rng(3)
    times = sim.PoissonArrivals(rate_per_s=100.0, start_s=-5.0).sample(20_000, rng)
    assert np.all(np.diff(times) >= 0) and times[0] > -5.0
    assert (times[-1] - times[0]) / len(times) == pytest.approx(0.01, rel=0.05)
    burst = sim.BurstArrivals(early_fraction=0.3, early_window_s=100, spread_s=20)
    times = burst.sample(20_000, rng)
    assert np.all(np.diff(times) >= 0)
    early = times < 0
    assert early.mean() == pytest.approx(0.3, abs=0.02)
    assert times.min() >= -100
    assert times[~early].mean() == pytest.approx(20, rel=0.05)


def test_csv_arrivals_relative_and_absolute(tmp_path):
    relative = tmp_path / "relative.csv"
    relative.write_text("arrival_s\n3.5\n-2\n0.25\n10\n")
    model = sim.CsvArrivals(relative)
    assert model.sample(3, np.random.default_rng(0)).tolist() == [-2.0, 0.25, 3.5]
    with pytest.raises(ValueError, match="fewer than 5"):
        model.sample(5, np.random.default_rng(0))
    absolute = tmp_path / "absolute.csv"
    absolute.write_text(
        "user,ts\na,2027-03-01T10:00:05Z\nb,2027-03-01T09:59:58Z\nc,2027-03-01T10:01:00Z\n"
    )
    model = sim.CsvArrivals(absolute, column="ts", opens_at="2027-03-01T10:00:00Z")
    assert model.load().tolist() == [-2.0, 5.0, 60.0]
    with pytest.raises(ValueError, match="no column"):
        sim.CsvArrivals(absolute, column="nope").load()
    bad = tmp_path / "bad.csv"
    bad.write_text("t\n1\nsoon\n")
    with pytest.raises(ValueError, match="not a time"):
        sim.CsvArrivals(bad).load()
    result = sim.run(small(users=3, arrivals=sim.CsvArrivals(relative), venue=sim.Venue(seats=5)))
    assert result.users.arrived_s.tolist() == [-2.0, 0.25, 3.5]
    assert result.users.prequeue.tolist() == [True, False, False]


def test_users_who_never_pay_buy_nothing_and_their_holds_expire():
    result = sim.run(small(behaviour=sim.Behaviour(pay_p=0.0, tidy_p=0.0), users=500))
    s = result.summary
    assert s.sold == 0 and s.revenue_won == 0 and not s.sold_out
    assert s.end_reason == "all_done"
    assert s.expired_holds > 0
    assert (result.users.outcome == "declined").sum() == s.expired_holds
    assert_consistent_with_engine(result)


def test_empty_wallets_fail_to_pay_unless_topped_up():
    broke = sim.Behaviour(funded_p=0.0, topup_p=0.0, pay_p=1.0)
    result = sim.run(small(behaviour=broke, users=500))
    assert result.summary.sold == 0
    assert result.summary.payment_failures > 0
    assert (result.users.outcome == "payment_failed").sum() > 0
    assert_consistent_with_engine(result)
    topping = sim.Behaviour(funded_p=0.0, topup_p=1.0, pay_p=1.0)
    result = sim.run(small(behaviour=topping, users=500))
    bought = result.users[result.users.outcome == "bought"]
    assert len(bought) > 0 and bought.topped_up.all()
    assert (bought.payment_failures == 1).all()
    assert (bought.balance_won == 0).all()  # they charged exactly the shortfall
    assert_consistent_with_engine(result)


def test_release_on_payment_failure_frees_the_seats_at_once():
    broke = sim.Behaviour(funded_p=0.0, topup_p=0.0, pay_p=1.0, tidy_p=0.0)
    sale = sim.Sale(queue_capacity=150, poll_interval_s=5.0, release_on_payment_failure=True)
    result = sim.run(small(behaviour=broke, sale=sale, users=500))
    assert result.summary.payment_failures > 0
    assert result.summary.expired_holds == 0  # canceled by the failure, not expired
    assert_consistent_with_engine(result)


def test_paying_after_the_hold_ttl_is_refused_by_the_engine():
    slow = sim.Behaviour(pay_time_s=1_000.0, pay_p=1.0)
    sale = sim.Sale(queue_capacity=150, poll_interval_s=5.0, hold_ttl_s=5.0, session_ttl_s=3_000)
    result = sim.run(small(behaviour=slow, sale=sale, users=500))
    users = result.users
    assert (users.outcome == "hold_expired").sum() > 0
    assert result.summary.expired_holds > 0
    assert_consistent_with_engine(result)


def test_impatient_users_give_up_and_the_engine_abandons_silent_ones():
    impatient = sim.Behaviour(patience_s=10.0, tidy_p=0.5)
    result = sim.run(small(behaviour=impatient))
    users = result.users
    assert (users.outcome == "gave_up").sum() > 0
    assert (users.loc[users.outcome == "gave_up", "token_end"] == "LEFT").all()
    silent = users[users.outcome == "stopped_polling"]
    assert len(silent) > 0
    assert set(silent.token_end) <= {"ABANDONED", "SESSION_EXPIRED", ""}
    assert (silent.token_end == "ABANDONED").sum() > 0
    assert_consistent_with_engine(result)


def test_admission_rate_is_enforced_by_the_engine():
    sale = sim.Sale(queue_capacity=1_000, admission_per_minute=120, poll_interval_s=5.0)
    result = sim.run(small(sale=sale, users=1_000, horizon_s=120))
    admitted = np.sort(result.users.admitted_s.dropna().to_numpy())
    assert len(admitted) > 10
    assert np.diff(admitted).min() >= 0.5 - 1e-6  # 120 per minute: one every 0.5 s
    assert_consistent_with_engine(result)


def test_capacity_bounds_active_users():
    sale = sim.Sale(queue_capacity=20, poll_interval_s=5.0)
    result = sim.run(small(sale=sale, users=1_000, horizon_s=300))
    assert result.summary.end_reason == "horizon"
    assert result.timeseries.active.max() == 20
    assert (result.users.outcome == "waiting").sum() > 0
    assert_consistent_with_engine(result)


def test_invalid_models_are_refused():
    with pytest.raises(ValueError):
        sim.Sale(queue_capacity=0)
    with pytest.raises(ValueError):
        sim.Sale(poll_interval_s=90, abandon_timeout_s=60)
    with pytest.raises(ValueError):
        sim.Behaviour(pay_p=1.5)
    with pytest.raises(ValueError):
        sim.Venue(grades=(sim.Grade("A", 0.5, 1000),))
    with pytest.raises(ValueError):
        sim.SimConfig(users=0)
    assert sim.Behaviour(patience_s=math.inf).patience_s == math.inf


def test_venue_sections_add_up():
    venue = sim.Venue(seats=199_999, seats_per_row=50)
    sections = venue.sections()
    assert sum(s.rows * s.seats_per_row for s in sections) == 199_999
    assert all(s.rows <= 1_000 for s in sections)
    assert [s.name for s in sections] == ["VIP", "R", "R2", "S", "S2", "S3"]
    assert venue.seats_per_grade() == [40_000, 80_000, 79_999]


# -- the command line -------------------------------------------------------------------------


def cli(*argv: str) -> int:
    parser = argparse.ArgumentParser(prog="boxoffice")
    simulate_cli.add_parser(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["simulate", *argv])
    status: int = args.run(args)
    return status


def test_cli_json_prints_only_the_summary(capsys):
    assert cli("--users", "2000", "--seats", "300", "--seed", "5", "--json") == 0
    out = capsys.readouterr().out
    summary = json.loads(out)
    assert summary["users"] == 2_000 and summary["seats"] == 300 and summary["seed"] == 5
    assert summary["oversold"] == 0 and summary["consistent"] is True
    assert summary["sold"] <= 300
    assert {"sell_out_s", "wait_p50_s", "wait_p90_s", "wait_p99_s", "fairness_normalized"} <= set(
        summary
    )


def test_cli_same_seed_same_json(capsys):
    runs = []
    for _ in range(2):
        assert cli("--users", "1500", "--seats", "200", "--seed", "9", "--json") == 0
        out = json.loads(capsys.readouterr().out)
        del out["wall_s"]
        runs.append(out)
    assert runs[0] == runs[1]


def test_cli_readable_summary_and_settings(capsys, tmp_path):
    users_csv = tmp_path / "users.csv"
    status = cli(
        "--users",
        "1500",
        "--seats",
        "200",
        "--queue-capacity",
        "50",
        "--hold-ttl-s",
        "120",
        "--max-seats-per-reservation",
        "2",
        "--arrivals",
        "poisson",
        "--rate",
        "20",
        "--no-progress",
        "--users-csv",
        str(users_csv),
    )
    assert status == 0
    out = capsys.readouterr().out
    assert "1,500 users, 200 seats" in out
    for label in ("sold", "wait p50 / p90 / p99", "fairness", "oversold", "consistency"):
        assert label in out
    users = pd.read_csv(users_csv)
    assert len(users) == 1_500 and users.seats_wanted.max() <= 2


def test_cli_csv_arrivals_default_to_one_user_per_row(tmp_path, capsys):
    path = tmp_path / "arrivals.csv"
    path.write_text("t\n" + "\n".join(str(i / 10) for i in range(-50, 250)) + "\n")
    assert cli("--csv", str(path), "--seats", "40", "--json") == 0
    assert json.loads(capsys.readouterr().out)["users"] == 300


def test_cli_rejects_bad_input(capsys):
    with pytest.raises(SystemExit) as exc:
        cli("--users", "0")
    assert exc.value.code == 2
    assert cli("--arrivals", "csv") == 2
    assert "needs --csv" in capsys.readouterr().err


def test_a_disagreement_with_the_engine_is_reported(monkeypatch, capsys):
    """The cross-checks bite: losing the engine's events makes the summary inconsistent."""
    from boxoffice.sim import runner

    monkeypatch.setattr(runner._Drop, "read_events", lambda self: None)
    result = sim.run(small(users=500))
    assert not result.summary.consistent
    assert any("QueueAdmitted events" in p for p in result.summary.problems)
    assert cli("--users", "500", "--seats", "100", "--no-progress") == 1
    assert "FAILED" in capsys.readouterr().out


def test_users_refused_by_a_full_queue_try_again(monkeypatch):
    """QUEUE_FULL is the engine's answer; users retry at their next poll until they get in."""
    import boxoffice as bo
    from boxoffice.sim import runner

    monkeypatch.setattr(runner, "Limits", lambda **kw: bo.Limits(queue_length_max=200, **kw))
    sale = sim.Sale(queue_capacity=50, poll_interval_s=5.0)
    result = sim.run(small(users=1_000, sale=sale, arrivals=sim.PoissonArrivals(100.0)))
    live = result.timeseries.waiting + result.timeseries.active
    assert live.max() == 200
    late = result.users[result.users.joined_s - result.users.arrived_s > 1]
    assert len(late) > 0  # joined only after a retry
    assert_consistent_with_engine(result)


def test_the_docs_example_runs(capsys):
    """docs/simulation.md's Python example, shrunk (fewer users and seats)."""
    import re
    from pathlib import Path

    import matplotlib  # a dev dependency (DataFrame.plot needs it)

    matplotlib.use("Agg")
    docs = Path(__file__).resolve().parents[2] / "docs" / "simulation.md"
    code = re.findall(r"```python\n(.*?)```", docs.read_text(), re.S)[0]
    code = code.replace("users=200_000", "users=2_000").replace("seats=20_000", "seats=200")
    exec(compile(code, str(docs), "exec"), {})
    assert "consistency            ok" in capsys.readouterr().out


def test_cli_earlier_flag_spellings_give_the_same_config(capsys):
    parser = argparse.ArgumentParser(prog="boxoffice")
    simulate_cli.add_parser(parser.add_subparsers(dest="command", required=True))
    new = ["--queue-capacity", "7", "--hold-ttl-s", "90", "--poll-interval-s", "4", "--tick-s", "2"]
    old = ["--capacity", "7", "--hold-ttl", "90", "--poll-interval", "4", "--tick", "2"]
    configs = [
        simulate_cli.config_from_args(parser.parse_args(["simulate", *argv])) for argv in (new, old)
    ]
    assert configs[0] == configs[1]
    assert configs[0].sale.queue_capacity == 7 and configs[0].sale.hold_ttl_s == 90
    assert configs[0].sale.poll_interval_s == 4 and configs[0].tick_s == 2
    with pytest.raises(SystemExit):
        parser.parse_args(["simulate", "--help"])
    help_text = capsys.readouterr().out
    assert "--hold-ttl-s" in help_text and "--hold-ttl " not in help_text
