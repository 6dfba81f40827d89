"""The example third-party provider (examples/provider_example), for tests, without pip.

The example is a distribution of its own; the tests import its package from its
directory and, where the sidecar must find it by name, lay out by hand what
``pip install`` would leave behind: the package and its metadata with its entry points.
"""

from __future__ import annotations

import shutil
import sys
import tomllib
from pathlib import Path
from typing import Any

from sidecar.providers import ENTRY_POINT_GROUP

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "provider_example"
PACKAGE = "hz_sidecar_jsonl"


def pyproject() -> dict[str, Any]:
    """The ``[project]`` table of the example's pyproject.toml."""
    with open(EXAMPLE / "pyproject.toml", "rb") as file:
        project: dict[str, Any] = tomllib.load(file)["project"]
    return project


def make_importable() -> None:
    """Put the example's package on ``sys.path``, after everything else: the example's
    ``tests/`` directory must not shadow the sidecar's."""
    if str(EXAMPLE) not in sys.path:
        sys.path.append(str(EXAMPLE))


def install_into(site: Path) -> Path:
    """Lay out in ``site`` what installing the example creates: its package and its
    ``.dist-info`` (name, version, entry points). With ``site`` on the path, the sidecar
    finds the provider by its entry point's name. Returns the ``.dist-info``."""
    shutil.copytree(EXAMPLE / PACKAGE, site / PACKAGE)
    project = pyproject()
    dist_info = site / f"{PACKAGE}-{project['version']}.dist-info"
    dist_info.mkdir(parents=True)
    (dist_info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: {project['name']}\nVersion: {project['version']}\n"
    )
    declared = project["entry-points"][ENTRY_POINT_GROUP]
    lines = [f"[{ENTRY_POINT_GROUP}]", *(f"{name} = {target}" for name, target in declared.items())]
    (dist_info / "entry_points.txt").write_text("\n".join(lines) + "\n")
    return dist_info
