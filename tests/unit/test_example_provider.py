"""The third-party provider under examples/provider_example, run by the main suite.

The example is a distribution of its own (``pip install -e examples/provider_example``);
here it is imported from its directory instead (:mod:`tests.example_provider`), so that
``make test`` proves, without installing it, that a provider written outside
``sidecar/`` passes both conformance suites and is declared the way the sidecar finds it.
"""

from __future__ import annotations

import ast
import importlib.util
from importlib.metadata import EntryPoint
from pathlib import Path

import pytest

from sidecar.providers import ENTRY_POINT_GROUP, create_provider, provider_class
from sidecar.providers.base import Provider
from tests.example_provider import (
    EXAMPLE,
    PACKAGE,
    install_into,
    make_importable,
    pyproject,
)

make_importable()


def _example_tests() -> dict[str, object]:
    """The tests of the example's own module: both conformance suites and its own tests."""
    spec = importlib.util.spec_from_file_location(
        "hz_sidecar_jsonl_example_tests", EXAMPLE / "tests" / "test_conformance.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return {n: v for n, v in vars(module).items() if n.startswith(("test_", "Test"))}


def test_the_example_declares_its_provider_in_the_sidecars_entry_point_group() -> None:
    project = pyproject()
    declared = project["entry-points"][ENTRY_POINT_GROUP]
    assert declared == {"jsonl": f"{PACKAGE}:JsonLinesProvider"}
    [(name, target)] = declared.items()
    cls = EntryPoint(name, target, ENTRY_POINT_GROUP).load()
    assert isinstance(cls, type) and issubclass(cls, Provider)
    assert cls.name == name  # the configuration's provider.name is the entry point's name
    assert any(dep.startswith("hz-sidecar") for dep in project["dependencies"])


def test_the_sidecar_finds_the_example_by_name_once_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    install_into(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    cls = provider_class("jsonl")
    assert cls.__module__.startswith(PACKAGE)
    provider = create_provider("jsonl", {"directory": str(tmp_path / "store"), "fsync": False})
    assert isinstance(provider, cls)


def test_the_example_imports_nothing_of_the_sidecar_but_its_interface_and_errors() -> None:
    """The layering rule for providers (DESIGN.md): no writer, retry or deadline of its own."""
    imported: set[str] = set()
    for source in (EXAMPLE / PACKAGE).glob("*.py"):
        for node in ast.walk(ast.parse(source.read_text(), str(source))):
            if isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module)
            elif isinstance(node, ast.Import):
                imported.update(alias.name for alias in node.names)
    outside = {m for m in imported if m.split(".")[0] in {"sidecar", "tenacity"}}
    assert outside == {"sidecar.providers.base", "sidecar.errors"}


# Last, so that the check sees every test of this module.
_EXAMPLE_TESTS = _example_tests()
assert _EXAMPLE_TESTS.keys().isdisjoint(globals()), "an example test shadows one of ours"
globals().update(_EXAMPLE_TESTS)  # collected by pytest as this module's own
