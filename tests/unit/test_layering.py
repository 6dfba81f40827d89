"""The layering of DESIGN.md, enforced: imports point down only.

``cli`` → ``server`` → ``service`` → {``writer``, ``codec``, ``routing``} →
``providers`` → {call deadline, ``errors``}. Telemetry, retry policies and dead
letters reach lower layers as values passed in, never as imports, so a provider
module imports nothing of the sidecar but its interface, errors and the deadline.

Every module of ``sidecar/`` is parsed with :mod:`ast`; every import counts,
wherever it is written: at the top, inside a function, under ``if TYPE_CHECKING``.
(Imports by name string, such as the provider registry's lazy
``importlib.import_module``, are not imports of the module that holds the string.)
A violation names the module, the file and line, and the import as written.
"""

from __future__ import annotations

import ast
import subprocess
import sys
import textwrap
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Module patterns: "a.b" is that module; "a.b.*" is a.b and every module under it.
# OWN_PACKAGE stands for the importer's own package under sidecar.providers: a
# provider made a package (its migrations beside it, say) may import its own modules.
OWN_PACKAGE = "<own provider package>"

#: Layers above everything else, top first: a module may import no module of a layer
#: above its own. Every module not listed is below the service.
LAYERS: tuple[tuple[str, str], ...] = (
    ("cli", "sidecar.cli.*"),
    ("server", "sidecar.server"),
    ("service", "sidecar.service"),
)


@dataclass(frozen=True)
class Rule:
    """Modules matching ``subject`` and the ``modules`` the rule names, and why."""

    subject: str
    modules: tuple[str, ...]
    why: str


#: A module matching the subject may import, of the sidecar, only these modules.
MAY_IMPORT_ONLY: tuple[Rule, ...] = (
    Rule("sidecar.errors", (), "errors are the bottom layer"),
    Rule("sidecar.deadline", ("sidecar.errors",), "the call deadline is the bottom layer"),
    Rule(
        "sidecar.retry",
        ("sidecar.errors", "sidecar.deadline"),
        "a retry policy is a value handed down, bounded by the call's deadline",
    ),
    Rule(
        "sidecar.providers.*",
        (
            "sidecar.providers.base",
            "sidecar.errors",
            "sidecar.deadline",
            OWN_PACKAGE,
            # A compiled helper (Cython, built by setup.py): it imports nothing of the sidecar.
            "sidecar.providers._pgarrays",
        ),
        "a provider imports nothing of the sidecar but its interface, errors and the deadline",
    ),
    Rule(
        "sidecar.codec.*",
        ("sidecar.codec.*", "sidecar.errors", "sidecar.providers.base"),
        "the codec knows bytes, documents and schema records, nothing of the service",
    ),
    Rule(
        "sidecar.callstream",
        (),
        "the Calls stream is transport: it serves the service's handlers passed in",
    ),
    Rule(
        "sidecar.writer",
        (
            "sidecar.providers",
            "sidecar.providers.base",
            "sidecar.retry",
            "sidecar.deadline",
            "sidecar.errors",
        ),
        "the one write path, for every provider: it knows only their interface",
    ),
)

#: The subject (a third-party module too) may be imported only by these modules.
MAY_BE_IMPORTED_ONLY_BY: tuple[Rule, ...] = (
    Rule(
        "psycopg.*",
        ("sidecar.providers.postgres.*",),
        "a deployment on SQLite never loads psycopg",
    ),
    Rule(
        "psycopg_pool.*",
        ("sidecar.providers.postgres.*",),
        "a deployment on SQLite never loads psycopg",
    ),
    Rule(
        "asyncmy.*",
        ("sidecar.providers.mysql.*",),
        "the MySQL driver is an extra: only its provider loads it",
    ),
    Rule(
        "sidecar.providers._pgarrays",
        ("sidecar.providers.postgres.*",),
        "PostgreSQL's binary array form is the PostgreSQL provider's helper",
    ),
    Rule(
        "sidecar.deadletter",
        ("sidecar.service",),
        "dead letters reach lower layers as values passed in",
    ),
    Rule(
        "sidecar.telemetry.*",
        ("sidecar.telemetry.*", "sidecar.service", "sidecar.server", "sidecar.cli.*"),
        "telemetry reaches lower layers as values passed in",
    ),
)

#: A module matching the subject must not import these (besides the layers above it).
MUST_NOT_IMPORT: tuple[Rule, ...] = (
    Rule(
        "sidecar.telemetry.*",
        (
            "sidecar.service",
            "sidecar.server",
            "sidecar.providers.*",
            "sidecar.codec.*",
            "sidecar.deadletter",
        ),
        "telemetry is handed its figures; it reaches into no other layer",
    ),
)


def matches(name: str, pattern: str) -> bool:
    """Whether module ``name`` is ``pattern`` ("a.b") or under it ("a.b.*")."""
    if pattern.endswith(".*"):
        package = pattern[:-2]
        return name == package or name.startswith(package + ".")
    return name == pattern


def matches_any(name: str, patterns: Sequence[str]) -> bool:
    return any(matches(name, pattern) for pattern in patterns)


@dataclass(frozen=True)
class Import:
    """One import statement's target, as found in a module."""

    importer: str
    target: str
    path: Path
    line: int
    text: str

    def violation(self, rule: str) -> str:
        where = f"{self.path}:{self.line}"
        return f"{where}: {self.importer} imports {self.target} ({self.text}): {rule}"


def module_names(root: Path, package: str) -> dict[str, Path]:
    """Every module of ``package`` (a directory under ``root``) → its file."""
    names: dict[str, Path] = {}
    for path in sorted((root / package).rglob("*.py")):
        relative = path.relative_to(root)
        parts = list(relative.with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        names[".".join(parts)] = relative
    return names


def imports_of(root: Path, name: str, path: Path, known: set[str]) -> Iterator[Import]:
    """Every import in the module ``name`` (at any depth), resolved to module names."""
    source = (root / path).read_text(encoding="utf-8")
    tree = ast.parse(source, filename=str(path))
    is_package = path.name == "__init__.py"
    for node in ast.walk(tree):
        if not isinstance(node, ast.Import | ast.ImportFrom):
            continue
        text = " ".join((ast.get_source_segment(source, node) or "").split())
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        else:
            base = node.module or ""
            if node.level:
                anchor = name.split(".") if is_package else name.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, base] if base else anchor)
            # ``from a import b`` imports the module a.b when there is one, else a.
            targets = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                for alias in node.names
            ]
        for target in dict.fromkeys(targets):
            yield Import(name, target, path, node.lineno, text)


def own_package(importer: str) -> str | None:
    parts = importer.split(".")
    if len(parts) > 2 and parts[:2] == ["sidecar", "providers"]:
        return ".".join(parts[:3]) + ".*"
    return None


def layer_of(name: str) -> int:
    """0 for the top layer (cli); len(LAYERS) for every module below the service."""
    for rank, (_, pattern) in enumerate(LAYERS):
        if matches(name, pattern):
            return rank
    return len(LAYERS)


def check(imp: Import) -> Iterator[str]:
    """The rules ``imp`` breaks."""
    importer, target = imp.importer, imp.target
    top = target.split(".")[0]
    in_sidecar = top == "sidecar" and target != "sidecar"
    if in_sidecar and layer_of(target) < layer_of(importer):
        layer = LAYERS[layer_of(target)][0]
        yield imp.violation(f"imports point down only, and {layer} is above {importer}")
    for rule in MAY_IMPORT_ONLY:
        if not (in_sidecar and matches(importer, rule.subject)):
            continue
        own = own_package(importer)
        allowed = [own if p == OWN_PACKAGE else p for p in rule.modules]
        if not matches_any(target, [p for p in allowed if p is not None]):
            shown = ", ".join(rule.modules) or "nothing of the sidecar"
            yield imp.violation(f"{rule.subject} may import only {shown}: {rule.why}")
    for rule in MAY_BE_IMPORTED_ONLY_BY:
        if matches(target, rule.subject) and not matches_any(importer, rule.modules):
            importers = ", ".join(rule.modules)
            yield imp.violation(f"{rule.subject} may be imported only by {importers}: {rule.why}")
    for rule in MUST_NOT_IMPORT:
        if matches(importer, rule.subject) and matches_any(target, rule.modules):
            forbidden = ", ".join(rule.modules)
            yield imp.violation(f"{rule.subject} must not import {forbidden}: {rule.why}")


def violations(root: Path, package: str = "sidecar") -> list[str]:
    """Every import of ``package`` (under ``root``) that breaks a rule above."""
    modules = module_names(root, package)
    known = set(modules)
    found: list[str] = []
    guarded = [rule.subject for rule in MAY_BE_IMPORTED_ONLY_BY]
    for name, path in modules.items():
        for imp in imports_of(root, name, path, known):
            if not (matches(imp.target, f"{package}.*") or matches_any(imp.target, guarded)):
                continue  # the standard library, third-party modules anyone may use
            if imp.target == name:
                continue
            found.extend(check(imp))
    return found


# -- the sidecar ------------------------------------------------------------------------


def test_the_sidecar_imports_point_down_only() -> None:
    found = violations(ROOT)
    assert not found, "layering violations (DESIGN.md, Layering):\n" + "\n".join(found)


def test_sqlite_and_the_server_never_load_psycopg_or_asyncmy() -> None:
    """Not only no import: nothing they import loads it either."""
    program = textwrap.dedent(
        """
        import sys
        import sidecar.providers.sqlite
        import sidecar.server
        drivers = ("psycopg", "psycopg_pool", "asyncmy")
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in drivers)
        print(",".join(loaded))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", program],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "", f"drivers loaded by SQLite and the server: {done.stdout}"


# -- the checker itself, on a small package planted in a temporary directory -------------

CLEAN = {
    "__init__.py": "",
    "errors.py": "import grpc\n",
    "deadline.py": "import contextvars\n",
    "retry.py": "from sidecar.deadline import remaining\nfrom sidecar.errors import Error\n",
    "providers/__init__.py": "from sidecar.providers.base import Provider\n",
    "providers/base.py": "import abc\n",
    "providers/sqlite.py": "from sidecar.errors import Error\nfrom .base import Provider\n",
    "providers/postgres/__init__.py": "import psycopg\nfrom . import migrations\n",
    "providers/postgres/migrations.py": "from psycopg import sql\n",
    "providers/mysql.py": "import asyncmy\nfrom asyncmy.pool import Pool\n",
    "codec/__init__.py": "from sidecar.codec.data import DataCodec\n",
    "codec/data.py": "from sidecar.providers.base import SchemaRecord\n",
    "writer.py": "from sidecar.providers import Provider\nfrom sidecar.retry import Policy\n",
    "deadletter.py": "from sidecar.providers.base import DeadLetter\n",
    "telemetry/__init__.py": "from sidecar.telemetry.names import NAMES\n",
    "telemetry/names.py": "",
    "service.py": "from sidecar.deadletter import PoisonEntries\nfrom sidecar import telemetry\n",
    "server.py": "from sidecar.service import Service\nfrom sidecar.telemetry import T\n",
    "cli/__init__.py": "from sidecar.server import serve\nfrom sidecar.cli.dlq import dlq\n",
    "cli/dlq.py": "from sidecar.codec import DataCodec\n",
}


def plant(tmp_path: Path, overrides: dict[str, str]) -> Path:
    for relative, text in {**CLEAN, **overrides}.items():
        path = tmp_path / "sidecar" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return tmp_path


def test_the_checker_passes_a_package_that_follows_the_rules(tmp_path: Path) -> None:
    assert violations(plant(tmp_path, {})) == []


@pytest.mark.parametrize(
    ("module", "source", "line", "expected"),
    [
        pytest.param(
            "providers/sqlite.py",
            "import json\n\n\ndef f():\n    from sidecar.service import Service\n",
            5,
            "sidecar.providers.sqlite imports sidecar.service (from sidecar.service import "
            "Service): imports point down only, and service is above sidecar.providers.sqlite",
            id="inside-a-function",
        ),
        pytest.param(
            "providers/sqlite.py",
            "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
            "    from sidecar.telemetry import Telemetry\n",
            3,
            "sidecar.providers.sqlite imports sidecar.telemetry (from sidecar.telemetry import "
            "Telemetry): sidecar.telemetry.* may be imported only by",
            id="under-type-checking",
        ),
        pytest.param(
            "providers/sqlite.py",
            "import psycopg\n",
            1,
            "sidecar.providers.sqlite imports psycopg (import psycopg): psycopg.* may be "
            "imported only by sidecar.providers.postgres.*",
            id="psycopg-outside-postgres",
        ),
        pytest.param(
            "providers/postgres/__init__.py",
            "import asyncmy\n",
            1,
            "sidecar.providers.postgres imports asyncmy (import asyncmy): asyncmy.* may be "
            "imported only by sidecar.providers.mysql.*",
            id="asyncmy-outside-mysql",
        ),
        pytest.param(
            "providers/postgres/__init__.py",
            "from ... import retry\n",
            1,
            "sidecar.providers.postgres imports sidecar.retry (from ... import retry): "
            "sidecar.providers.* may import only",
            id="relative-import-of-retry",
        ),
        pytest.param(
            "codec/data.py",
            "from sidecar.config import Limits\n",
            1,
            "sidecar.codec.data imports sidecar.config",
            id="codec-imports-config",
        ),
        pytest.param(
            "retry.py",
            "from sidecar.providers.base import Provider\n",
            1,
            "sidecar.retry may import only sidecar.errors, sidecar.deadline",
            id="retry-imports-a-provider",
        ),
        pytest.param(
            "writer.py",
            "from sidecar.providers.sqlite import SQLiteProvider\n",
            1,
            "sidecar.writer imports sidecar.providers.sqlite",
            id="writer-imports-a-concrete-provider",
        ),
        pytest.param(
            "server.py",
            "import sidecar.cli\n",
            1,
            "imports point down only, and cli is above sidecar.server",
            id="server-imports-cli",
        ),
        pytest.param(
            "telemetry/names.py",
            "from sidecar.deadletter import PoisonEntries\n",
            1,
            "sidecar.telemetry.* must not import",
            id="telemetry-imports-deadletter",
        ),
        pytest.param(
            "cli/dlq.py",
            "from sidecar.deadletter import PoisonEntries\n",
            1,
            "sidecar.deadletter may be imported only by sidecar.service",
            id="cli-imports-deadletter",
        ),
    ],
)
def test_the_checker_names_module_line_and_import_of_a_planted_violation(
    tmp_path: Path, module: str, source: str, line: int, expected: str
) -> None:
    found = violations(plant(tmp_path, {module: source}))
    path = Path("sidecar", module)
    assert any(v.startswith(f"{path}:{line}: ") and expected in v for v in found), found
