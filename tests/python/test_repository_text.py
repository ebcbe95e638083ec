"""Comments and docstrings say the rule itself, not where a rule was once written down.

A reader of this repository has the code and ``docs/``: design documents kept elsewhere
(numbered design files and their flows, a product write-up, an issue tracker) cannot be
opened from here, so a comment that points to one explains nothing. This test reads every
source file under the code directories and fails on such a pointer, naming file, line and
the words. Random seeds (``seed``, ``--seeds``, "the seed's stream") are not pointers and
do not match.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DIRECTORIES = ("cpp", "python", "api", "tests", "bench", "fuzz", "notebooks", "docs")
# Source and text files; fuzz corpora and regression inputs (no suffix) are bytes, not text.
SUFFIXES = frozenset(
    {".py", ".pyi", ".cc", ".h", ".md", ".sh", ".txt", ".dict", ".lua", ".json", ".toml",
     ".cmake", ".ipynb", ".cfg", ".ini", ".yml", ".yaml"}
)  # fmt: skip
# Each alternative is written so that this file does not match itself (``\s`` is not a space).
POINTER = re.compile(
    r"""
      \bthe\s+seeds\b                # the design documents, as a set
    | \bseeds?\s+0\d\d\b             # one numbered design file
    | \b0\d\d's\b                    # ... as a possessive
    | \bflows?\s+\d                  # a numbered flow of the product write-up
    | \b(?:the|product)\s+brief\b    # the product write-up itself
    | \bbrief's\b
    | \bissue\s*\#?\s*\d             # an issue of the tracker, by number
    | \bdurability\s+issue\b         # ... or by name
    | \bPRODUCT\.md\b
    """,
    re.IGNORECASE | re.VERBOSE,
)


def source_files() -> list[Path]:
    files = []
    for top in DIRECTORIES:
        for path in sorted((ROOT / top).rglob("*")):
            parts = path.relative_to(ROOT).parts
            # Caches (``__pycache__``, ``.pytest_cache``, ``.hypothesis``) are not sources.
            if any(part.startswith((".", "__pycache__")) for part in parts):
                continue
            if path.suffix in SUFFIXES and path.is_file():
                files.append(path)
    return files


def pointers(text: str) -> list[tuple[int, str]]:
    """(line number, matched words) of every pointer in ``text``."""
    return [
        (number, match.group(0))
        for number, line in enumerate(text.splitlines(), 1)
        for match in POINTER.finditer(line)
    ]


def test_the_scan_reads_the_code_directories() -> None:
    files = {path.relative_to(ROOT).as_posix() for path in source_files()}
    for expected in (
        "cpp/include/boxoffice/engine.h",
        "python/boxoffice/_core.pyi",
        "api/boxoffice_api/deps.py",
        "tests/python/test_repository_text.py",
        "bench/common.py",
        "fuzz/run.sh",
    ):
        assert expected in files


# Written with "|" inside the pointer words, so that this file does not match itself.
@pytest.mark.parametrize(
    "line",
    [
        "// The| seeds' SAGA compensation: give the seats back at once.",
        '"""Sign-up (flow| 1, seeds| 000 and 004) and the current user."""',
        "# Releases one seat (000|'s unselect)",
        "// AdmissionQueue: the waiting room of one concert (Flows| 3-5).",
        "Checks every invariant of the| brief.",
        'TEST_CASE("the codes named by the product| brief")',
        "# Our brief|'s 50x compares the locking designs",
        "(issue| #3), Security hardening (issue| 7)",
        "// journal (durability| issue) keeps all of them",
        "Targets (PRODUCT|.md):",
    ],
)
def test_a_pointer_to_an_outside_document_is_found(line: str) -> None:
    assert "|" in line and pointers(line.replace("|", ""))


@pytest.mark.parametrize(
    "line",
    [
        "seed: seeds every random draw and the engine (pre-queue shuffle).",
        "    .venv/bin/python tests/python/dst.py --seed 1 --seeds 20        # seeds 1..20",
        '"""One run: ``steps`` actions of the seed\'s stream."""',
        "PRE_QUEUE_USERS = 10  # 10! orders: two random seeds agree with probability 3e-7",
        "// make_corpus: writes the seed corpora of the fuzz targets.",
        "the engine has issued 4294967294 queue tokens",
        "def brief(x: object) -> str:",
        "a workflow 2 steps long",
    ],
)
def test_random_seeds_and_ordinary_words_are_not_pointers(line: str) -> None:
    assert pointers(line) == []


def test_no_source_file_points_to_a_document_outside_the_repository() -> None:
    found = [
        f"{path.relative_to(ROOT)}:{number}: {words!r}"
        for path in source_files()
        for number, words in pointers(path.read_text(encoding="utf-8", errors="replace"))
    ]
    assert found == [], (
        "say the rule itself, or point to a docs/ section (docs/engine-rules.md, "
        "docs/architecture.md, docs/http-api.md):\n" + "\n".join(found)
    )
