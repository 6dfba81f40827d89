"""The jsonl provider against hz-sidecar's conformance suites, plus what is its own.

``ProviderConformance`` checks the provider called directly; ``WriterConformance``
shows that, behind the sidecar's writer, it gets group commit, chunking, deadlines
and retries without a line of its own for them.
"""

from __future__ import annotations

import errno
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from hz_sidecar_jsonl import JsonLinesProvider

from sidecar.conformance import ProviderConformance, WriterConformance, entry, key
from sidecar.errors import ConfigError, StoreUnavailableError
from sidecar.providers.base import Provider, SchemaRecord, StoreKind

EVENT, VIEW = StoreKind.EVENT, StoreKind.VIEW


class TestJsonLinesProvider(ProviderConformance, WriterConformance):
    @pytest.fixture
    async def provider(self, tmp_path: Path) -> AsyncIterator[Provider]:
        async with JsonLinesProvider({"directory": str(tmp_path / "store")}) as provider:
            yield provider

    @pytest.fixture
    async def unopened_provider(self, tmp_path: Path) -> AsyncIterator[Provider]:
        # Not the directory of ``provider``: one process (one instance) a directory.
        provider = JsonLinesProvider({"directory": str(tmp_path / "second")})
        yield provider
        await provider.close()

    @pytest.fixture
    def transient_error(self) -> BaseException:
        """A busy resource, as the provider raises it: EAGAIN under StoreUnavailableError."""
        error = StoreUnavailableError("jsonl store: resource temporarily unavailable")
        error.__cause__ = BlockingIOError(errno.EAGAIN, "Resource temporarily unavailable")
        return error


async def test_stores_deletes_and_schemas_survive_a_reopen(tmp_path: Path) -> None:
    settings = {"directory": str(tmp_path / "store")}
    schema = SchemaRecord(schema_id=7, type_name="Order", fields=(("amount", 12),))
    async with JsonLinesProvider(settings) as first:
        await first.store("Orders_ES", EVENT, [entry("o1", n=1), entry("o2", n=2)])
        await first.store("Orders_ES", EVENT, [entry("o1", n=99)])  # kept: the first write
        await first.store("C_VIEW", VIEW, [entry("c1", v=1)])
        await first.store("C_VIEW", VIEW, [entry("c1", v=2), entry("c2", v=1)])
        assert await first.delete("C_VIEW", VIEW, [key("c2"), key("absent")]) == 1
        await first.put_schemas([schema])
    async with JsonLinesProvider(settings) as second:
        events = await second.load("Orders_ES", EVENT, [key("o1"), key("o2")])
        assert {e.key.text: json.loads(e.value.document) for e in events} == {
            "o1": {"n": 1},
            "o2": {"n": 2},
        }
        [view] = await second.load("C_VIEW", VIEW, [key("c1"), key("c2")])
        assert (view.key.text, json.loads(view.value.document)) == ("c1", {"v": 2})
        assert await second.get_schemas() == [schema]


def _crash_while_appending_to(directory: Path) -> None:
    """Leave the one log file in ``directory`` as a crash in the middle of a line would."""
    [log_file] = directory.iterdir()
    with open(log_file, "ab") as file:
        file.write(b'{"store": [{"key": "torn", "form')


def _files_under(directory: Path) -> list[Path]:
    return [path for path in directory.rglob("*") if path.is_file()]


async def test_a_write_cut_short_by_a_crash_is_dropped_and_the_log_goes_on(
    tmp_path: Path,
) -> None:
    settings = {"directory": str(tmp_path / "store")}
    async with JsonLinesProvider(settings) as provider:
        await provider.store("T_VIEW", VIEW, [entry("kept", n=1)])
    _crash_while_appending_to(tmp_path / "store" / "view")
    async with JsonLinesProvider(settings) as provider:
        assert [e.key.text for e in await provider.load("T_VIEW", VIEW, [key("torn")])] == []
        await provider.store("T_VIEW", VIEW, [entry("after", n=2)])
    async with JsonLinesProvider(settings) as provider:
        loaded = await provider.load("T_VIEW", VIEW, [key("kept"), key("torn"), key("after")])
        assert sorted(e.key.text for e in loaded) == ["after", "kept"]


async def test_a_directory_is_used_by_one_process_at_a_time(tmp_path: Path) -> None:
    settings = {"directory": str(tmp_path / "store")}
    async with JsonLinesProvider(settings):
        with pytest.raises(StoreUnavailableError, match="in use by another process"):
            await JsonLinesProvider(settings).open()
    async with JsonLinesProvider(settings) as again:  # the lock went with the first
        assert await again.is_available()


async def test_any_map_name_stays_a_file_inside_the_directory(tmp_path: Path) -> None:
    root = tmp_path / "store"
    names = ["../../escape_VIEW", "/abs/olute_VIEW", "a/b_VIEW", "a_b_VIEW", "ünï ✓_VIEW"]
    async with JsonLinesProvider({"directory": str(root)}) as provider:
        for n, name in enumerate(names):
            await provider.store(name, VIEW, [entry("k", n=n)])
        for n, name in enumerate(names):
            [loaded] = await provider.load(name, VIEW, [key("k")])
            assert json.loads(loaded.value.document) == {"n": n}
    assert all(root in path.parents for path in _files_under(tmp_path))
    assert len(_files_under(root / "view")) == len(names)


def test_busy_resources_are_transient_and_other_failures_are_not() -> None:
    provider = JsonLinesProvider({})
    busy = StoreUnavailableError("jsonl store: device busy")
    busy.__cause__ = OSError(errno.EBUSY, "Device or resource busy")
    assert provider.is_transient(busy)
    assert provider.is_transient(BlockingIOError(errno.EAGAIN, "again"))
    full = StoreUnavailableError("jsonl store: no space")
    full.__cause__ = OSError(errno.ENOSPC, "No space left on device")
    assert not provider.is_transient(full)
    assert not provider.is_transient(PermissionError(errno.EACCES, "denied"))
    assert not provider.is_transient(ValueError("bad"))


def test_settings_are_validated_and_errors_name_the_key() -> None:
    with pytest.raises(ConfigError, match=r"unknown key\(s\) path"):
        JsonLinesProvider({"path": "x"})
    with pytest.raises(ConfigError, match=r"settings\.directory"):
        JsonLinesProvider({"directory": ""})
    with pytest.raises(ConfigError, match=r"settings\.fsync"):
        JsonLinesProvider({"fsync": "yes"})


async def test_a_closed_provider_is_unavailable_and_refuses_calls(tmp_path: Path) -> None:
    provider = JsonLinesProvider({"directory": str(tmp_path / "store")})
    assert await provider.is_available() is False
    with pytest.raises(StoreUnavailableError, match="not open"):
        await provider.store("X_VIEW", VIEW, [entry("k")])
