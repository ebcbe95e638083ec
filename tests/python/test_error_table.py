"""One source for error meaning: the C++ code table (``BOXOFFICE_ERROR_CODES`` in
``cpp/include/boxoffice/errors.h``, exposed as ``boxoffice._core.ERROR_CODES``) gives every
core code its class and HTTP status; the classes of ``boxoffice.errors`` and every code and
status the docs write agree with it."""
# mypy: disallow-untyped-defs=False, disallow-incomplete-defs=False, disallow-untyped-calls=False

from __future__ import annotations

import re
from pathlib import Path

import pytest

from boxoffice import _core, errors

ROOT = Path(__file__).resolve().parents[2]
DOCS = [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
# code -> HTTP status, as the C++ table writes it.
TABLE: dict[str, int] = {
    code: http for code, (_, http, _) in _core.ERROR_CODES.items() if code != "OK"
}


def error_classes() -> list[type[errors.BoxOfficeError]]:
    """Every exception class that boxoffice.errors defines."""
    return [
        obj
        for obj in vars(errors).values()
        if isinstance(obj, type)
        and issubclass(obj, errors.BoxOfficeError)
        and obj.__module__ == errors.__name__
    ]


def table_mismatches(table: dict[str, int]) -> list[str]:
    """Where the classes of boxoffice.errors and ``table`` (code -> HTTP status) disagree."""
    problems = []
    registered = errors._BY_CODE
    for code, http in sorted(table.items()):
        cls = registered.get(code)
        if cls is None:
            problems.append(f"{code} has no class in boxoffice.errors")
            continue
        if cls.code != code or cls.http_status != http:
            problems.append(f"{cls.__name__} says {cls.code} {cls.http_status}, not {code} {http}")
        if cls.__name__ not in errors.__all__ or getattr(errors, cls.__name__) is not cls:
            problems.append(f"{cls.__name__} is not exported by boxoffice.errors")
    for cls in error_classes():
        # A class whose code is not a table code groups others (a family) and raises none.
        if cls.code not in table and (cls.code in registered or not cls.__subclasses__()):
            problems.append(f"{cls.__name__}: {cls.code} is not a code of the C++ table")
    return problems


def test_the_classes_agree_with_the_table():
    assert table_mismatches(TABLE) == []
    assert set(errors._BY_CODE) == set(TABLE)


@pytest.mark.parametrize(
    ("table", "expected"),
    [
        ({**TABLE, "SEAT_MELTED": 409}, ["SEAT_MELTED has no class in boxoffice.errors"]),
        (
            {**TABLE, "HOLD_EXPIRED": 410},
            ["HoldExpired says HOLD_EXPIRED 409, not HOLD_EXPIRED 410"],
        ),
        (
            {code: http for code, http in TABLE.items() if code != "QUEUE_FULL"},
            ["QueueFull: QUEUE_FULL is not a code of the C++ table"],
        ),
    ],
    ids=["a code without a class", "another status", "a class without a code"],
)
def test_a_disagreement_is_reported(table, expected):
    assert table_mismatches(table) == expected


def test_http_status_comes_from_the_table_only():
    for code, cls in errors._BY_CODE.items():
        assert cls.http_status == TABLE[code]
    # A class body that writes the status of a table code is refused when it is defined.
    with pytest.raises(TypeError, match="C\\+\\+ code table"):

        class HandWritten(errors.Conflict):
            code = "HOLD_EXPIRED"
            http_status = 410

    with pytest.raises(TypeError, match="already has HoldExpired"):

        class Twin(errors.Conflict):
            code = "HOLD_EXPIRED"

    assert errors.error_class("HOLD_EXPIRED") is errors.HoldExpired


# --- the docs ---------------------------------------------------------------------------------

# A core code with an HTTP status written before it: "409 `SEAT_UNAVAILABLE`".
STATUS_THEN_CODE = re.compile(r"\b([1-5]\d\d)\s+`([A-Z][A-Z0-9_]*[A-Z0-9])`")
# ... or after it: "INSUFFICIENT_BALANCE 409", "`QUEUE_FULL` (429)".
CODE_THEN_STATUS = re.compile(r"\b([A-Z][A-Z0-9_]*[A-Z0-9])`?\s+\(?([1-5]\d\d)\b")
CODE = re.compile(r"\b[A-Z][A-Z0-9_]*[A-Z0-9]\b")
GROUP_STATUS = re.compile(r"\(([1-5]\d\d)\)")


def cells(line: str) -> list[str]:
    return [cell.strip() for cell in line.strip().strip("|").split("|")]


def table_statuses(lines: list[str]) -> list[tuple[int, str, int]]:
    """(line number, code, status) for each core code in the ``code``/``codes`` column of a
    Markdown table that has an ``HTTP`` column. In the code column, "A, B (409), C (429)"
    gives 409 to A and B and 429 to C; codes after the last such group take the row's status."""
    found = []
    header: list[str] | None = None
    for number, line in enumerate(lines, 1):
        if not line.lstrip().startswith("|"):
            header = None
            continue
        row = cells(line)
        if header is None:
            header = [cell.lower() for cell in row]
            continue
        if set("".join(row)) <= set("-: "):
            continue  # the separator line
        if "http" not in header or not any(h.startswith("code") for h in header):
            continue
        code_cell = row[next(i for i, h in enumerate(header) if h.startswith("code"))]
        http_cell = row[header.index("http")] if header.index("http") < len(row) else ""
        pending: list[str] = []
        position = 0
        for group in GROUP_STATUS.finditer(code_cell):
            pending += CODE.findall(code_cell[position : group.start()])
            found += [(number, c, int(group.group(1))) for c in pending if c in TABLE]
            pending, position = [], group.end()
        pending += CODE.findall(code_cell[position:])
        if http_cell.isdigit():
            found += [(number, c, int(http_cell)) for c in pending if c in TABLE]
    return found


def doc_statuses(path: Path) -> list[tuple[int, str, int]]:
    """(line number, code, status) for every core code written with a status in ``path``."""
    lines = path.read_text(encoding="utf-8").splitlines()
    found = table_statuses(lines)
    for number, line in enumerate(lines, 1):
        found += [(number, c, int(s)) for s, c in STATUS_THEN_CODE.findall(line) if c in TABLE]
        found += [(number, c, int(s)) for c, s in CODE_THEN_STATUS.findall(line) if c in TABLE]
    return found


def codes_section(path: Path) -> list[str]:
    """The lines of the "### Codes" section of ``path``."""
    lines = path.read_text(encoding="utf-8").splitlines()
    start = lines.index("### Codes") + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("#")), len(lines))
    return lines[start:end]


@pytest.mark.parametrize("path", DOCS, ids=lambda p: p.name)
def test_every_status_the_docs_give_a_core_code_is_the_tables(path):
    wrong = [
        f"{path.name}:{number}: {code} {status}, the C++ table says {TABLE[code]}"
        for number, code, status in doc_statuses(path)
        if status != TABLE[code]
    ]
    assert wrong == []


def test_the_http_api_codes_table_lists_every_core_code_with_its_status():
    listed = {
        code: status
        for _, code, status in table_statuses(codes_section(ROOT / "docs" / "http-api.md"))
    }
    assert listed == {code: TABLE[code] for code in listed}
    assert sorted(set(TABLE) - set(listed)) == []


def test_the_docs_check_sees_a_wrong_status():
    lines = [
        "| code | HTTP | meaning |",
        "|---|---|---|",
        "| `HOLD_EXPIRED`, `QUEUE_FULL` | 409 | x |",
    ]
    assert table_statuses(lines) == [(3, "HOLD_EXPIRED", 409), (3, "QUEUE_FULL", 409)]
    grouped = [
        "| class | codes | HTTP |",
        "|-|-|-|",
        "| x | LIMIT_EXCEEDED (422), QUEUE_FULL (429), HOLD_EXPIRED | 409 |",
    ]
    assert table_statuses(grouped) == [
        (3, "LIMIT_EXCEEDED", 422),
        (3, "QUEUE_FULL", 429),
        (3, "HOLD_EXPIRED", 409),
    ]
