"""``boxoffice simulate``: a ticket drop through the engine in virtual time.

    boxoffice simulate [--users N] [--seats N] [--seed S] [--json] [sale, crowd, clock flags]

Runs :func:`boxoffice.sim.run` with a progress bar of seats sold on standard error and prints
a readable summary (or, with ``--json``, only the summary as one JSON object on standard
output, plus ``commands``, ``commands_by_op`` and ``wall_s``). Exit status: 0 when the
summary is consistent with the engine's own state, 1 when a cross-check failed or the
simulation hit an unexpected engine answer, 2 for invalid flags.
``docs/simulation.md`` explains every flag; the defaults are those of ``boxoffice.sim``.

``add_parser`` registers the subcommand on the ``boxoffice`` command line's subparsers.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import sys
from typing import Any

__all__ = ["add_parser", "config_from_args", "run_simulate"]


def _int_at_least(minimum: int) -> Any:
    def parse(text: str) -> int:
        try:
            value = int(text.replace("_", ""))
        except ValueError:
            raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def _positive(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a positive finite number, got {text}")
    return value


def _probability(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a probability: {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"must be in [0, 1], got {text}")
    return value


def _options(
    group: argparse._ArgumentGroup, flags: list[tuple[str, str | None, Any, Any, str]]
) -> None:
    """Adds each (flag, earlier spelling, type, default, help) to ``group``. Units come last
    (``--hold-ttl-s``); an earlier spelling still parses but is not shown. The help ends
    with the default."""
    for flag, old, type_, default, help_ in flags:
        shown = help_ if default is None else f"{help_} (default {default:,})"
        metavar = "S" if flag.endswith("-s") and not flag.endswith("-per-s") else None
        group.add_argument(flag, type=type_, default=default, help=shown, metavar=metavar)
        if old is not None:
            dest = flag.lstrip("-").replace("-", "_")
            group.add_argument(
                old, dest=dest, type=type_, help=argparse.SUPPRESS, default=argparse.SUPPRESS
            )


def add_parser(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> argparse.ArgumentParser:
    """Registers ``simulate`` on ``subparsers``; its defaults set ``run=run_simulate``."""
    from .sim import Behaviour, BurstArrivals, PoissonArrivals, Sale, SimConfig

    sale, crowd, conf = Sale(), Behaviour(), SimConfig()
    burst, poisson = BurstArrivals(), PoissonArrivals()
    p = subparsers.add_parser(
        "simulate",
        help="a ticket drop through the engine in virtual time",
        description=(
            "A seeded ticket drop through the real engine in virtual time: prints sold seats, "
            "sell-out time, waits, abandonment, expired holds, fairness and oversold (= 0)."
        ),
    )
    p.add_argument(
        "--users",
        type=_int_at_least(1),
        help=f"users arriving (default {conf.users:,}; with --csv, one per row)",
    )
    p.add_argument("--seats", type=_int_at_least(1), default=conf.venue.seats, help="seats on sale")
    p.add_argument("--seed", type=_int_at_least(0), default=conf.seed, help="random seed")
    p.add_argument("--json", action="store_true", help="print only the summary, as JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.add_argument("--users-csv", metavar="PATH", help="write the per-user DataFrame as CSV")
    p.add_argument("--timeseries-csv", metavar="PATH", help="write the time series as CSV")

    # (flag, its earlier spelling or None, type, default, help), by group.
    Flags = list[tuple[str, str | None, Any, Any, str]]
    sale_flags: Flags = [
        (
            "--queue-capacity",
            "--capacity",
            _int_at_least(1),
            sale.queue_capacity,
            "most ACTIVE queue tokens (shoppers) at once",
        ),
        (
            "--admission-per-minute",
            None,
            _int_at_least(1),
            sale.admission_per_minute,
            "admission rate cap (default: none)",
        ),
        (
            "--session-ttl-s",
            "--session-ttl",
            _positive,
            sale.session_ttl_s,
            "how long an ACTIVE token stays active",
        ),
        (
            "--hold-ttl-s",
            "--hold-ttl",
            _positive,
            sale.hold_ttl_s,
            "how long a PENDING reservation holds its seats",
        ),
        (
            "--max-seats-per-reservation",
            "--max-seats",
            _int_at_least(1),
            sale.max_seats_per_reservation,
            "seats one hold may take",
        ),
        (
            "--abandon-timeout-s",
            "--abandon-timeout",
            _positive,
            sale.abandon_timeout_s,
            "a WAITING user who has not polled for this long loses the place",
        ),
        (
            "--poll-interval-s",
            "--poll-interval",
            _positive,
            sale.poll_interval_s,
            "the poll interval clients are told and follow",
        ),
    ]
    arrival_flags: Flags = [
        (
            "--early-fraction",
            None,
            _probability,
            burst.early_fraction,
            "burst: share of users already waiting before the opening",
        ),
        (
            "--early-window-s",
            "--early-window",
            _positive,
            burst.early_window_s,
            "burst: how early the early users arrive",
        ),
        (
            "--spread-s",
            "--spread",
            _positive,
            burst.spread_s,
            "burst: the spread of arrivals after the opening",
        ),
        ("--rate-per-s", "--rate", _positive, poisson.rate_per_s, "poisson: arrivals per second"),
        (
            "--start-s",
            "--start",
            float,
            poisson.start_s,
            "poisson: first arrival, seconds after the opening",
        ),
    ]
    behaviour_flags: Flags = [
        (
            "--patience-s",
            "--patience",
            float,
            crowd.patience_s,
            "mean wait before giving up (inf: never)",
        ),
        (
            "--tidy",
            None,
            _probability,
            crowd.tidy_p,
            "share of users who leave the queue or cancel when they give up",
        ),
        (
            "--best-available",
            None,
            _probability,
            crowd.best_available_p,
            "share of users who take the best available seats of any grade",
        ),
        (
            "--hold-attempts",
            None,
            _int_at_least(1),
            crowd.hold_attempts,
            "holds a user tries before giving up",
        ),
        (
            "--choose-time-s",
            "--choose-time",
            float,
            crowd.choose_time_s,
            "mean time from ACTIVE (or a failed hold) to the next hold",
        ),
        (
            "--pay-time-s",
            "--pay-time",
            float,
            crowd.pay_time_s,
            "mean time from the hold to paying or walking away",
        ),
        (
            "--pay-probability",
            None,
            _probability,
            crowd.pay_p,
            "share of users who pay for their hold",
        ),
        (
            "--funded",
            None,
            _probability,
            crowd.funded_p,
            "share of users whose wallet is funded at the start",
        ),
        (
            "--topup-probability",
            None,
            _probability,
            crowd.topup_p,
            "share of users who top up after a payment fails for lack of balance",
        ),
    ]
    clock_flags: Flags = [
        ("--tick-s", "--tick", _positive, conf.tick_s, "virtual seconds per simulation step"),
        (
            "--sample-every-s",
            "--sample-every",
            _positive,
            conf.sample_every_s,
            "virtual seconds between time-series samples",
        ),
        (
            "--horizon-s",
            "--horizon",
            _positive,
            conf.horizon_s,
            "virtual seconds after which the run stops",
        ),
    ]

    s = p.add_argument_group("sale settings under test")
    _options(s, sale_flags)
    s.add_argument(
        "--release-on-payment-failure",
        action="store_true",
        help="a failed payment cancels the hold at once",
    )
    a = p.add_argument_group("arrivals")
    a.add_argument(
        "--arrivals",
        choices=["burst", "poisson", "csv"],
        default="burst",
        help="how users arrive (default: burst)",
    )
    _options(a, arrival_flags)
    a.add_argument("--csv", metavar="PATH", help="CSV of arrival timestamps (--arrivals csv)")
    a.add_argument("--csv-column", help="the timestamp column (default: the first)")
    a.add_argument(
        "--csv-opens-at",
        help="the opening in the file's clock (epoch seconds or ISO 8601); "
        "without it the values are seconds relative to the opening",
    )
    _options(p.add_argument_group("user behaviour"), behaviour_flags)
    c = p.add_argument_group("clock")
    _options(c, clock_flags)
    c.add_argument(
        "--keep-going", action="store_true", help="do not stop at sell-out (run until all done)"
    )
    p.set_defaults(run=run_simulate)
    return p


def config_from_args(args: argparse.Namespace) -> Any:
    """The :class:`boxoffice.sim.SimConfig` the flags describe.

    Raises:
        ValueError: an invalid combination (e.g. ``--arrivals csv`` without ``--csv``).
    """
    from .sim import (
        Behaviour,
        BurstArrivals,
        CsvArrivals,
        PoissonArrivals,
        Sale,
        SimConfig,
        Venue,
    )

    arrivals: BurstArrivals | PoissonArrivals | CsvArrivals
    users: int | None = args.users
    if args.arrivals == "csv" or args.csv is not None:
        if args.csv is None:
            raise ValueError("--arrivals csv needs --csv PATH")
        opens_at: float | str | None = args.csv_opens_at
        if opens_at is not None:
            with contextlib.suppress(ValueError):  # else an ISO 8601 string
                opens_at = float(opens_at)
        arrivals = CsvArrivals(args.csv, column=args.csv_column, opens_at=opens_at)
        if users is None:
            users = len(arrivals.load())
    elif args.arrivals == "poisson":
        arrivals = PoissonArrivals(rate_per_s=args.rate_per_s, start_s=args.start_s)
    else:
        arrivals = BurstArrivals(
            early_fraction=args.early_fraction,
            early_window_s=args.early_window_s,
            spread_s=args.spread_s,
        )
    return SimConfig(
        users=SimConfig.users if users is None else users,
        seed=args.seed,
        venue=Venue(seats=args.seats),
        sale=Sale(
            queue_capacity=args.queue_capacity,
            admission_per_minute=args.admission_per_minute,
            session_ttl_s=args.session_ttl_s,
            hold_ttl_s=args.hold_ttl_s,
            max_seats_per_reservation=args.max_seats_per_reservation,
            release_on_payment_failure=args.release_on_payment_failure,
            abandon_timeout_s=args.abandon_timeout_s,
            poll_interval_s=args.poll_interval_s,
        ),
        behaviour=Behaviour(
            patience_s=math.inf if math.isinf(args.patience_s) else args.patience_s,
            tidy_p=args.tidy,
            best_available_p=args.best_available,
            hold_attempts=args.hold_attempts,
            choose_time_s=args.choose_time_s,
            pay_time_s=args.pay_time_s,
            pay_p=args.pay_probability,
            funded_p=args.funded,
            topup_p=args.topup_probability,
        ),
        arrivals=arrivals,
        tick_s=args.tick_s,
        sample_every_s=args.sample_every_s,
        horizon_s=args.horizon_s,
        stop_at_sell_out=not args.keep_going,
    )


def run_simulate(args: argparse.Namespace) -> int:
    """Runs the simulation the flags describe and prints its summary; returns the exit status."""
    try:
        import pandas  # noqa: F401  (the results are DataFrames)

        from .sim import SimulationError, run
    except ImportError as exc:  # the analysis extra
        print(
            f"boxoffice simulate needs the analysis extra ({exc.name} is missing): "
            "pip install 'boxoffice[analysis]'",
            file=sys.stderr,
        )
        return 2
    try:
        config = config_from_args(args)
    except (ValueError, OSError) as exc:
        print(f"boxoffice simulate: error: {exc}", file=sys.stderr)
        return 2
    try:
        result = run(config, progress=not args.no_progress)
    except ValueError as exc:
        print(f"boxoffice simulate: error: {exc}", file=sys.stderr)
        return 2
    except SimulationError as exc:
        print(f"boxoffice simulate: {exc}", file=sys.stderr)
        return 1
    summary = result.summary
    if args.users_csv:
        result.users.to_csv(args.users_csv, index=False)
    if args.timeseries_csv:
        result.timeseries.to_csv(args.timeseries_csv, index=False)
    rate = result.commands / result.wall_s if result.wall_s > 0 else 0.0
    if args.json:
        out = summary.to_dict()
        out["commands"] = result.commands
        out["commands_by_op"] = {k: v for k, v in result.commands_by_op.items() if v}
        out["wall_s"] = round(result.wall_s, 3)
        print(json.dumps(out, indent=2))
    else:
        print(
            f"boxoffice simulate: {config.users:,} users, {config.venue.seats:,} seats, "
            f"seed {config.seed} (virtual time, through the engine)"
        )
        print(summary.format())
        polls = result.commands_by_op["STATUS"]
        print(
            f"  {'run':<22} {result.commands:,} engine commands ({polls:,} polls) "
            f"in {result.wall_s:.1f} s ({rate / 1e6:.2f} M commands/s)"
        )
    return 0 if summary.consistent else 1
