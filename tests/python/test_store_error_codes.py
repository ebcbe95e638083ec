"""Each condition of the durable store reaches Python as its own exception, with the code and
HTTP status of the C++ table, decided where the condition is detected: a path that happens to
contain the words of another condition's message ("closed", "format version", "already open for
writing") changes nothing."""
# mypy: disallow-untyped-defs=False, disallow-incomplete-defs=False, disallow-untyped-calls=False

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

import boxoffice as bo
from boxoffice import _core, errors


def run_sql(path: Path, sql: str) -> None:
    con = sqlite3.connect(path)
    con.executescript(sql)
    con.commit()
    con.close()


def make_store(path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    engine = bo.Engine(path, snapshot_every_records=0)
    engine.create_user(now=1)
    engine.wait_durable()
    engine.close()


def expect(cls: type[errors.BoxOfficeError], call) -> errors.BoxOfficeError:
    """Runs ``call``, which must raise exactly ``cls`` with the table's code and status."""
    with pytest.raises(errors.BoxOfficeError) as info:
        call()
    err = info.value
    assert type(err) is cls, (type(err), err)
    _, http_status, _ = _core.ERROR_CODES[err.code]
    assert err.http_status == http_status
    return err


def test_store_locked(tmp_path):
    path = tmp_path / "closed" / "store.db"
    make_store(path)
    first = bo.Engine(path)
    err = expect(errors.StoreLocked, lambda: bo.Engine(path))
    assert "already open for writing" in err.message
    expect(errors.StoreLocked, lambda: _core.journal_records(str(path)))
    first.close()
    bo.Engine(path).close()


@pytest.mark.parametrize("version", [99, 0])
def test_store_version_unsupported(tmp_path, version):
    path = tmp_path / "closed" / "store.db"
    make_store(path)
    run_sql(path, f"UPDATE meta SET value = {version} WHERE key = 'format_version'")
    err = expect(errors.StoreVersionUnsupported, lambda: bo.Engine(path))
    assert f"format version {version}" in err.message
    expect(errors.StoreVersionUnsupported, lambda: _core.journal_records(str(path)))


def test_store_closed(tmp_path):
    path = tmp_path / "format version" / "store.db"
    make_store(path)
    engine = bo.Engine(path)
    engine.close()
    expect(errors.StoreClosed, engine.snapshot)


def test_data_loss(tmp_path):
    path = tmp_path / "closed" / "store.db"
    make_store(path)
    run_sql(path, "DROP TABLE journal_groups")
    err = expect(errors.DataLoss, lambda: bo.Engine(path))
    assert "damaged" in err.message


@pytest.mark.parametrize("words", ["closed", "format version", "already open for writing"])
def test_store_unavailable_whatever_the_path_says(tmp_path, words):
    directory = tmp_path / words
    directory.mkdir()
    (directory / "file").write_text("x")
    # A file where a directory should be.
    err = expect(errors.StoreUnavailable, lambda: bo.Engine(directory / "file" / "store.db"))
    assert words in err.message
    # An SQLite file that is not a store.
    foreign = directory / "foreign.db"
    run_sql(foreign, "CREATE TABLE users(id INTEGER)")
    err = expect(errors.StoreUnavailable, lambda: bo.Engine(foreign))
    assert words in err.message
    expect(errors.StoreUnavailable, lambda: _core.journal_records(str(foreign)))
    # A directory that cannot be created (a file is in its way) and a missing file.
    expect(errors.StoreUnavailable, lambda: bo.Engine(directory / "file" / "sub" / "store.db"))
    expect(errors.StoreUnavailable, lambda: _core.journal_records(str(directory / "none.db")))
