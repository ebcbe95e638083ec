"""The README's curl walkthrough runs, as written, against a real `boxoffice serve --demo`."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def walkthrough() -> str:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## A drop over HTTP", 1)[1]
    blocks = re.findall(r"```bash\n(.*?)```", section, re.S)
    assert blocks, "the README lost its curl walkthrough"
    return str(blocks[0])


def test_the_readme_walkthrough_sells_two_vip_seats(start_server):
    server = start_server(demo="1")
    env = server.env | {"B": server.base_url, "BOXOFFICE_DB": str(server.db)}
    done = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", walkthrough()],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert '{"id":1,"title":"IU 2027 World Tour","venue":"KSPO Dome"}' in lines
    assert '{"status":"ACTIVE","position":null,"eta_s":null,"poll_after_s":5}' in lines
    assert '{"id":1,"seat":"A-1-1","grade":"VIP","price":165000}' in lines
    held = [line for line in lines if line.startswith('{"id":1,"status":"PENDING"')]
    assert len(held) == 1 and '"amount":330000' in held[0], lines
    assert '{"status":409,"code":"INSUFFICIENT_BALANCE"}' in lines
    assert '{"status":"SUCCEEDED","amount":330000,"balance":170000}' in lines
    assert (
        '[{"kind":"CHARGE","amount":500000,"balance_after":500000},'
        '{"kind":"PAYMENT","amount":330000,"balance_after":170000}]' in lines
    )
    assert '{"queue_active":0,"seats_sold":2,"revenue":330000}' in lines
