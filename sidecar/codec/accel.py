"""The optional compiled accelerator (:mod:`sidecar.codec._flat`): whether it is here, and in use.

``make install`` (``pip install``) builds the Cython extension where a C compiler and
the Python headers exist; elsewhere the install says it fell back, and the codec is
pure Python (the generated functions of :mod:`sidecar.codec.compiled`). Both give the
same documents and the same errors: the generated Python functions are the
authority, and the differential tests hold the accelerator to them.

The configuration's ``codec.accelerator`` chooses (:func:`use`): ``auto`` (the
default) takes the accelerator when it is built; ``disabled`` the pure-Python codec, to
rule the accelerator out when chasing a problem; ``required`` refuses to start
without it. Its environment form, ``HZ_SIDECAR_CODEC__ACCELERATOR=required``, also
makes a failed build an error instead of a fallback (``setup.py``: CI and the
container image set it).
"""

from __future__ import annotations

from typing import Any

from sidecar.errors import ConfigError

#: The choices, as ``codec.accelerator`` spells them.
AUTO, DISABLED, REQUIRED = "auto", "disabled", "required"
#: The environment variable of ``codec.accelerator`` (the configuration's override form).
ENV = "HZ_SIDECAR_CODEC__ACCELERATOR"

try:
    from sidecar.codec import _flat  # type: ignore[attr-defined, unused-ignore]
except ImportError as exc:  # not built: no compiler at install time, or a source checkout
    _flat = None
    _MISSING: str | None = f"{exc}"
else:
    _MISSING = None

_choice = AUTO


class AcceleratorMissing(ConfigError):
    """``codec.accelerator: required`` and the extension is not built."""


def available() -> bool:
    """Whether the extension was built and imports."""
    return _flat is not None


def use(choice: str) -> None:
    """Choose the codec for the flat records of schemas met from now on (the server does,
    from the configuration, before it reads any schema).

    Raises:
        AcceleratorMissing: ``required`` without the extension.
        ConfigError: an unknown choice.
    """
    global _choice
    choice = str(choice).strip().lower()
    if choice not in (AUTO, DISABLED, REQUIRED):
        raise ConfigError(f"codec.accelerator {choice!r}: expected auto, disabled or required")
    if choice == REQUIRED and _flat is None:
        raise AcceleratorMissing(
            "codec.accelerator is 'required', but the compiled codec sidecar.codec._flat is "
            f"not built ({_MISSING}); reinstall with a C compiler and the Python headers "
            "(Debian: apt-get install gcc python3-dev), or set it to 'auto'"
        )
    _choice = choice


def enabled() -> bool:
    """Whether flat records decode through the accelerator."""
    return _flat is not None and _choice != DISABLED


def status() -> str:
    """One line for logs and ``make install``: which codec runs, and why."""
    if enabled():
        return "codec: compiled accelerator (sidecar.codec._flat)"
    if _flat is not None:
        return "codec: pure Python (codec.accelerator is 'disabled'; the accelerator is built)"
    return f"codec: pure Python (the accelerator is not built: {_MISSING})"


def extension() -> Any:
    """The extension module (call only when :func:`enabled`)."""
    assert _flat is not None
    return _flat
