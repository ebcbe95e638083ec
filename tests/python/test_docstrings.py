"""``help()`` on the engine shows the stub's docs: ``python/boxoffice/_core.pyi`` is the one
text, compiled into the module (``cpp/bindings/stub_docs.py``, ``UseStubDocs``)."""

from __future__ import annotations

import importlib.util
import inspect
from pathlib import Path

import pytest

import boxoffice as bo
from boxoffice import _core

ROOT = Path(__file__).resolve().parents[2]
STUB = ROOT / "python" / "boxoffice" / "_core.pyi"


def _generator():  # the build's own script, loaded as a module
    spec = importlib.util.spec_from_file_location("stub_docs", ROOT / "cpp/bindings/stub_docs.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


STUB_DOCS = {(d.cls, d.name): d for d in _generator().stub_docs(STUB.read_text())}
PUBLIC = sorted(name for name in vars(_core.Engine) if not name.startswith("_"))


@pytest.mark.parametrize("name", PUBLIC)
def test_every_public_engine_member_has_the_stubs_docstring(name):
    assert ("Engine", name) in STUB_DOCS, f"Engine.{name} has no docstring in _core.pyi"
    entry = STUB_DOCS["Engine", name]
    doc = inspect.getdoc(getattr(bo.Engine, name))
    assert doc is not None
    assert entry.doc in doc
    if entry.signature:  # a method: its stub signature first, not pybind11's C++ one
        assert doc.startswith(entry.signature + "\n")
        assert "boxoffice._core" not in doc and "SupportsInt" not in doc
