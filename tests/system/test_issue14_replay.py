"""`hz-sidecar dlq replay` never undoes what a map holds now (issue 14, item 2).

Against the real `hz-sidecar run` process and the real `hz-sidecar dlq` command, on
SQLite and on a real PostgreSQL server. Entries are dead-lettered the way a member's
are: a Compact record nested deeper than ``limits.max-nesting-depth`` is valid data
the sidecar refuses to decode; the operator then raises the limit and replays.
"""

from __future__ import annotations

import re
import struct
import subprocess
from typing import Any

import pytest
import yaml

from hzsidecar.v1 import mapstore_pb2 as pb
from tests.e2e.model import Node, NodeSerializer, chain
from tests.hzclient import ClientSerialization
from tests.system.conftest import SidecarProcess, sidecar_command

WRITTEN, DEAD_LETTERED = pb.ENTRY_STATUS_WRITTEN, pb.ENTRY_STATUS_DEAD_LETTERED
VIEW, EVENTS = "Chains_VIEW", "Chains_ES"


CLIENT = ClientSerialization([NodeSerializer()])
#: A String whose length field claims 100 bytes: corrupt whatever the limits.
CORRUPT = struct.pack(">iii", 0, -11, 100) + b"ab"


def key(text: str) -> bytes:
    return CLIENT.to_bytes(text)


@pytest.fixture
def sidecar(sidecar_on_each_provider: SidecarProcess) -> SidecarProcess:
    return sidecar_on_each_provider


def store(sidecar: SidecarProcess, map_name: str, name: str, value: bytes | Node) -> int:
    data = value if isinstance(value, bytes) else CLIENT.to_bytes(value)
    request = pb.StoreRequest(
        map_name=map_name, entries=[pb.Entry(key=key(name), value=data)], schemas=CLIENT.schemas()
    )
    [result] = sidecar.stub.Store(request, timeout=20).results
    return result.status


def load(sidecar: SidecarProcess, map_name: str, name: str) -> Any:
    answer = sidecar.stub.Load(pb.LoadRequest(map_name=map_name, keys=[key(name)]), timeout=20)
    reader = ClientSerialization([NodeSerializer()])
    reader.register(answer.schemas)
    values = [reader.to_object(e.value) for e in answer.entries]
    return values[0] if values else None


def depth(node: Node | None) -> int:
    count = 0
    while node is not None:
        count, node = count + 1, node.next
    return count


def dlq(sidecar: SidecarProcess, *args: str) -> tuple[int, str]:
    result = subprocess.run(
        [*sidecar_command(), "dlq", *args, "--config", str(sidecar.config_path)],
        cwd=sidecar.workdir,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode in (0, 1), result.stdout + result.stderr
    return result.returncode, result.stdout


def letter_ids(sidecar: SidecarProcess) -> dict[tuple[str, str], list[int]]:
    """(map, key name) → the ids of its dead letters, from `dlq list`."""
    names = {key(n).hex(): n for n in ("newer", "deleted", "never", "twice", "e1", "same", "bad")}
    ids: dict[tuple[str, str], list[int]] = {}
    for line in dlq(sidecar, "list")[1].splitlines():
        found = re.match(r"id=(\d+) map='(\w+)' at=\S+ key=(\w+) ", line)
        if found:
            ident, map_name, key_hex = found.groups()
            ids.setdefault((map_name, names[key_hex]), []).append(int(ident))
    return ids


def verdicts(output: str) -> dict[int, str]:
    return {
        int(m.group(1)): m.group(2)
        for m in re.finditer(r"^id=(\d+) map='\w+': (.*)$", output, re.MULTILINE)
    }


def test_replay_never_overwrites_a_newer_write_nor_brings_back_a_deleted_key(
    sidecar: SidecarProcess,
) -> None:
    # Dead-lettered, then written again with a newer value.
    assert store(sidecar, VIEW, "newer", chain(100)) == DEAD_LETTERED
    assert store(sidecar, VIEW, "newer", chain(5)) == WRITTEN
    # Written, dead-lettered, then deleted.
    assert store(sidecar, VIEW, "deleted", chain(2)) == WRITTEN
    assert store(sidecar, VIEW, "deleted", chain(101)) == DEAD_LETTERED
    sidecar.stub.Delete(pb.DeleteRequest(map_name=VIEW, keys=[key("deleted")]), timeout=20)
    # Only ever dead-lettered (once, and twice).
    assert store(sidecar, VIEW, "never", chain(102)) == DEAD_LETTERED
    assert store(sidecar, VIEW, "twice", chain(103)) == DEAD_LETTERED
    assert store(sidecar, VIEW, "twice", chain(104)) == DEAD_LETTERED
    # An event map's key dead-lettered, then written with another event.
    assert store(sidecar, EVENTS, "e1", chain(100)) == DEAD_LETTERED
    assert store(sidecar, EVENTS, "e1", chain(3)) == WRITTEN
    # Corrupt bytes, and an entry that is stored as it was once the limit is raised.
    assert store(sidecar, VIEW, "bad", CORRUPT) == DEAD_LETTERED
    assert store(sidecar, VIEW, "same", chain(105)) == DEAD_LETTERED

    # The operator raises the limit (the sidecar too, so that it loads the deep records).
    sidecar.stop()
    config = yaml.safe_load(sidecar.config_path.read_text())
    config["limits"] = {"max-nesting-depth": 128}
    sidecar.config_path.write_text(yaml.safe_dump(config))
    sidecar.start()
    assert store(sidecar, VIEW, "same", chain(105)) == WRITTEN
    ids = letter_ids(sidecar)
    [newer], [deleted], [never], [e1], [bad], [same] = (
        ids[VIEW, "newer"],
        ids[VIEW, "deleted"],
        ids[VIEW, "never"],
        ids[EVENTS, "e1"],
        ids[VIEW, "bad"],
        ids[VIEW, "same"],
    )
    twice_first, twice_latest = sorted(ids[VIEW, "twice"])

    code, output = dlq(sidecar, "replay")

    said = verdicts(output)
    assert code == 1, output
    assert said[newer].startswith("skipped: newer row"), output
    assert said[e1].startswith("skipped: newer row"), output
    assert said[deleted].startswith("skipped: no row, use --include-missing"), output
    assert said[never].startswith("skipped: no row, use --include-missing"), output
    assert said[twice_latest].startswith("skipped: no row"), output
    assert said[twice_first].startswith(f"skipped: superseded (letter {twice_latest} "), output
    assert said[same] == "already stored", output
    assert said[bad].startswith("still undecodable"), output
    assert "replayed 1 of 8 dead letter(s)" in output
    # What the maps hold is untouched.
    assert depth(load(sidecar, VIEW, "newer")) == 5
    assert load(sidecar, VIEW, "deleted") is None
    assert load(sidecar, VIEW, "never") is None
    assert depth(load(sidecar, EVENTS, "e1")) == 3
    assert depth(load(sidecar, VIEW, "same")) == 105
    remaining = letter_ids(sidecar)
    assert (VIEW, "same") not in remaining and len(remaining) == 6

    # Keys without a row are stored only when asked for; a newer row never is.
    code, output = dlq(sidecar, "replay", "--include-missing")

    said = verdicts(output)
    assert code == 1, output
    assert said[deleted] == said[never] == said[twice_latest] == "stored", output
    assert said[twice_first].startswith("skipped: superseded"), output
    assert said[newer].startswith("skipped: newer row"), output
    assert said[bad].startswith("still undecodable"), output
    assert depth(load(sidecar, VIEW, "deleted")) == 101
    assert depth(load(sidecar, VIEW, "never")) == 102
    assert depth(load(sidecar, VIEW, "twice")) == 104
    assert depth(load(sidecar, VIEW, "newer")) == 5
    assert depth(load(sidecar, EVENTS, "e1")) == 3

    # What is left is listed until purged; a replay then has nothing to do.
    assert set(letter_ids(sidecar)) == {
        (VIEW, "newer"),
        (VIEW, "twice"),
        (EVENTS, "e1"),
        (VIEW, "bad"),
    }
    assert dlq(sidecar, "purge", "--all")[0] == 0
    assert dlq(sidecar, "replay") == (0, "replayed 0 of 0 dead letter(s)\n")
