"""The conformance suite ships inside the sidecar package, and only it needs pytest."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TEST_ONLY = {"pytest", "pytest_asyncio", "_pytest", "hypothesis"}


def test_no_module_of_the_sidecar_but_the_conformance_suite_imports_pytest() -> None:
    offenders = []
    for path in sorted((ROOT / "sidecar").rglob("*.py")):
        if path == ROOT / "sidecar" / "conformance.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            offenders += [
                f"{path.relative_to(ROOT)}:{node.lineno}: {name}"
                for name in names
                if name.split(".")[0] in TEST_ONLY
            ]
    assert offenders == []


def test_the_suite_imports_from_the_installed_package_outside_the_checkout(
    tmp_path: Path,
) -> None:
    """What a third-party provider's tests do: import it from anywhere, no tests/ needed."""
    script = (
        "from sidecar.conformance import ProviderConformance, WriterConformance\n"
        "print(ProviderConformance.__module__, WriterConformance.__module__)\n"
    )
    done = subprocess.run(
        [sys.executable, "-I", "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["sidecar.conformance", "sidecar.conformance"]
