"""The README's five-minute tour must keep working as the code changes."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def test_readme_tour_runs(capsys):
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    assert blocks, "the README lost its Python tour"
    exec(compile(blocks[0], str(README), "exec"), {})
    out = capsys.readouterr().out
    assert "INSUFFICIENT_BALANCE 409" in out
    assert "170000 ['CHARGE', 'PAYMENT']" in out


def test_readme_starts_with_the_two_commands():
    head = README.read_text().splitlines()[:10]
    assert any("make serve" in line for line in head)
    assert any("make test" in line for line in head)


def test_demo_sells_out_without_breaking_invariants():
    from boxoffice import demo

    summary = demo.run(fans=1_500, seed=3)
    assert summary["sold"] == summary["seats"] == 900
    assert summary["revenue_won"] > 0
