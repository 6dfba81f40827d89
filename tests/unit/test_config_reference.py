"""The README's configuration reference is generated from the model and cannot drift."""

from __future__ import annotations

from pathlib import Path

from sidecar.config_reference import END, START, render, undocumented

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_configuration_key_has_a_description() -> None:
    assert undocumented() == [], "describe these keys in sidecar/config_reference.py"


def test_readme_reference_matches_the_configuration_model() -> None:
    text = README.read_text(encoding="utf-8")
    block = text.split(START, 1)[1].split(END, 1)[0].strip()
    assert block == render(), "run `make docs` to regenerate the README's reference"


def test_reference_shows_reference_defaults() -> None:
    table = render()
    assert "| `framework.persistence.write-delay-seconds` | int | `5` |" in table
    assert (
        "| `framework.persistence.view-store-eviction.max-idle-seconds` | int | `3600` |" in table
    )
    assert "| `maps[].kind` | `event` \\| `view` | required |" in table
