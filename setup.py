"""Build hook for the one thing pyproject.toml cannot say: the optional compiled extensions.

``sidecar/codec/_flat.pyx`` and ``sidecar/providers/_pgarrays.pyx`` (Cython) are built
where a C compiler and the Python headers exist. Where they do not, the install goes on and
says that it fell back: the pure-Python codec is complete without it (see
``sidecar/codec/accel.py``). ``HZ_SIDECAR_CODEC__ACCELERATOR=required`` at build time
makes a failed build an error instead (the container image and CI set it; at run time
the same variable is the configuration's ``codec.accelerator``).
"""

from __future__ import annotations

import os
import sys
from typing import Any

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

#: The optional extensions: the codec's (flat Compact records) and the PostgreSQL
#: provider's (arrays in their binary form).
SOURCES = {
    "sidecar.codec._flat": "sidecar/codec/_flat.pyx",
    "sidecar.providers._pgarrays": "sidecar/providers/_pgarrays.pyx",
}


def _required() -> bool:
    return os.environ.get("HZ_SIDECAR_CODEC__ACCELERATOR", "").strip().lower() == "required"


def _fell_back(reason: object, what: str) -> None:
    if _required():
        raise SystemExit(f"hz-sidecar: HZ_SIDECAR_CODEC__ACCELERATOR=required, but {reason}")
    print(
        f"hz-sidecar: {what} not built ({reason}); the pure-Python code will be used",
        file=sys.stderr,
    )


class OptionalBuildExt(build_ext):
    """build_ext that falls back (and says so) when the extension cannot be compiled."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # no compiler at all (distutils raises several kinds)
            _fell_back(f"{type(exc).__name__}: {exc}", "the compiled helpers were")

    def build_extension(self, ext: Any) -> None:
        try:
            super().build_extension(ext)
        except Exception as exc:  # compiler or headers missing, compilation failed
            _fell_back(f"{type(exc).__name__}: {exc}", f"{ext.name} was")


def _extensions() -> list[Any]:
    try:
        from Cython.Build import cythonize
    except ImportError:
        _fell_back("Cython is not installed", "the compiled helpers were")
        return []
    extensions = [Extension(name, [source]) for name, source in SOURCES.items()]
    try:
        return list(cythonize(extensions, quiet=True))
    except Exception as exc:  # a Cython that cannot translate the sources
        _fell_back(
            f"Cython could not translate {', '.join(SOURCES.values())}: {exc}",
            "the compiled helpers were",
        )
        return []


setup(ext_modules=_extensions(), cmdclass={"build_ext": OptionalBuildExt})
