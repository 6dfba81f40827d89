"""How a provider is found by name: built-ins, this distribution's entry points, and errors."""

from __future__ import annotations

import sys

import pytest

from sidecar.errors import ProviderLoadError
from sidecar.providers import provider_class


def test_mysql_is_registered_by_entry_point_and_found_by_name() -> None:
    cls = provider_class("mysql")
    assert cls.__module__ == "sidecar.providers.mysql"
    assert cls.name == "mysql"


def test_a_provider_whose_driver_is_missing_names_the_extra_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delitem(sys.modules, "sidecar.providers.mysql", raising=False)
    monkeypatch.setitem(sys.modules, "asyncmy", None)  # import asyncmy -> ImportError
    with pytest.raises(ProviderLoadError) as caught:
        provider_class("mysql")
    message = str(caught.value)
    assert "provider 'mysql' (sidecar.providers.mysql:MySQLProvider) cannot be imported" in message
    assert "install its driver: pip install 'hz-sidecar[mysql]'" in message


def test_unknown_provider_lists_the_known_ones() -> None:
    with pytest.raises(ProviderLoadError, match=r"unknown provider 'nosuch' \(known: .*mysql"):
        provider_class("nosuch")
