"""Writes the OpenAPI document of the app: ``python -m boxoffice_api.openapi [PATH]``.

The checked-in copy is ``api/openapi.json``; ``tests/api/test_openapi.py`` fails when it no
longer matches the app (regenerate with ``make openapi``).
"""

from __future__ import annotations

import json
import sys
from typing import Any

from .app import create_app
from .settings import Settings


def document() -> dict[str, Any]:
    """The app's OpenAPI document (built without opening a store)."""
    schema: dict[str, Any] = create_app(Settings()).openapi()
    return schema


def render() -> str:
    """The document as stable JSON text (sorted keys, two-space indent, final newline)."""
    return json.dumps(document(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    text = render()
    if len(sys.argv) > 1:
        with open(sys.argv[1], "w", encoding="utf-8") as out:
            out.write(text)
    else:
        sys.stdout.write(text)
