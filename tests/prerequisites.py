"""What a test needs from the machine, and what happens when it is missing.

Some tests need more than Python: the Java side built (the shim jar, the Hazelcast
jar, the framework driver), a JDK to start members, ``openssl`` to make test
certificates, PostgreSQL server binaries, ``kubectl``/``kustomize``. Where one is
missing:

* in a developer's inner loop (``make test-fast``, a bare ``pytest``) the test is
  skipped, and the summary says why and how to fix it (``-rs`` in the pytest options);
* under ``make test`` / ``make test-e2e`` (``--strict-prerequisites``) and in CI
  (``CI=true``) the test fails with the same message: a suite that is meant to run
  every test never passes by skipping some.
"""

from __future__ import annotations

import os
import shutil
from typing import NoReturn

import pytest

#: The pytest option that turns every missing prerequisite into a failure.
STRICT_OPTION = "--strict-prerequisites"

_strict_option = False


def set_strict(strict: bool) -> None:
    """Record whether the session runs with :data:`STRICT_OPTION` (``tests/conftest.py``)."""
    global _strict_option
    _strict_option = strict


def strict() -> bool:
    """Whether a missing prerequisite fails the test instead of skipping it."""
    return _strict_option or os.environ.get("CI", "").strip().lower() in {"true", "1", "yes"}


def missing(what: str, fix: str) -> NoReturn:
    """Skip the test because ``what`` is missing, or fail it when the session is strict.

    Args:
        what: the missing thing, as a person would look for it.
        fix: how to get it (a make target, a Debian package).
    """
    message = f"{what}; {fix}"
    if strict():
        pytest.fail(
            f"{message} (a missing prerequisite fails under {STRICT_OPTION} and CI=true)",
            pytrace=False,
        )
    pytest.skip(message)


def require_command(name: str, fix: str) -> str:
    """The path of the command ``name``; :func:`missing` when it is not on PATH."""
    path = shutil.which(name)
    if path is None:
        missing(f"the `{name}` command is not on PATH", fix)
    return path


def require_openssl() -> str:
    """The ``openssl`` command line tool, which makes the tests' certificates."""
    return require_command("openssl", "install it (Debian: apt-get install openssl; .ci/run does)")
