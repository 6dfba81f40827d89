"""`hz-sidecar member-config` rendered from config/sidecar.yaml drives a real Hazelcast member.

The member's own configuration only imports the rendered file (``hazelcast.import``), as the
Kubernetes manifests do, so Hazelcast's real parser and schema validation read it, and its map
configurations (wildcard names, map-store, write-behind, coalescing, initial mode, eviction) are
applied when the client creates the maps.
"""

from __future__ import annotations

import os
import shutil
import signal
import sqlite3
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.e2e.conftest import Member, require_jars, wait_until
from tests.e2e.model import OrderEvent, serializers
from tests.system.conftest import SidecarProcess, free_port, sidecar_command

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_CONFIG = ROOT / "config" / "sidecar.yaml"


def example_config(workdir: Path, address: str) -> dict[str, Any]:
    """config/sidecar.yaml with a private socket, database and a short write-behind delay,
    and one event map that asks for write-coalescing (``Ledger_ES``)."""
    data: dict[str, Any] = yaml.safe_load(EXAMPLE_CONFIG.read_text())
    data["maps"].insert(0, {"pattern": "Ledger_ES", "kind": "event", "write-coalescing": True})
    data["listen"]["address"] = address
    data["listen"]["graceful-shutdown-seconds"] = 5
    data["provider"] = {"name": "sqlite", "settings": {"path": str(workdir / "data" / "store.db")}}
    data["framework"]["persistence"]["write-delay-seconds"] = 1
    return data


def render(config_path: Path, out: Path) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HZ_SIDECAR_")}
    done = subprocess.run(
        [*sidecar_command(), "member-config", "--config", str(config_path), "--out", str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    document: dict[str, Any] = yaml.safe_load(out.read_text())
    return document


def importing_member(workdir: Path, cluster_name: str, rendered: Path) -> Member:
    """A member whose configuration has no map of its own and imports the rendered file."""
    member = Member(workdir, free_port(), cluster_name, {})
    document = yaml.safe_load(member.config_path.read_text())
    del document["hazelcast"]["map"]
    document["hazelcast"]["import"] = [str(rendered)]
    member.config_path.write_text(yaml.safe_dump(document, sort_keys=False))
    return member


def stored_sequence(db: Path, map_name: str) -> int | None:
    """The ``sequence`` of the one event stored for ``map_name``, None before it is stored."""
    if not db.exists():
        return None
    with sqlite3.connect(db) as conn:
        try:
            row = conn.execute(
                "SELECT json_extract(event_data, '$.sequence') FROM domain_events "
                "WHERE map_name = ?",
                (map_name,),
            ).fetchone()
        except sqlite3.OperationalError:  # tables not created yet
            return None
    return None if row is None else int(row[0])


def count(db: Path, sql: str) -> int:
    if not db.exists():
        return 0
    with sqlite3.connect(db) as conn:
        try:
            return int(conn.execute(sql).fetchone()[0])
        except sqlite3.OperationalError:  # tables not created yet
            return 0


@pytest.fixture
def sidecar(tmp_path: Path) -> Iterator[SidecarProcess]:
    require_jars()
    sock_dir = Path(f"/tmp/hzd-{uuid.uuid4().hex[:8]}")
    sock_dir.mkdir()
    process = SidecarProcess(tmp_path, example_config(tmp_path, f"unix://{sock_dir}/sidecar.sock"))
    process.start()
    yield process
    process.stop(signal.SIGKILL)
    shutil.rmtree(sock_dir, ignore_errors=True)


def test_member_started_from_rendered_config_persists_events_and_views(
    sidecar: SidecarProcess, tmp_path: Path
) -> None:
    rendered_path = tmp_path / "member-maps.yaml"
    rendered = render(sidecar.config_path, rendered_path)
    maps = rendered["hazelcast"]["map"]
    assert set(maps) == {"Ledger_ES", "*_ES", "*_VIEW"}
    assert maps["*_ES"]["map-store"]["properties"]["sidecar.address"] == sidecar.address
    assert maps["Ledger_ES"]["map-store"]["write-coalescing"] is True
    assert maps["*_ES"]["map-store"]["write-coalescing"] is False

    cluster_name = f"hzd-{uuid.uuid4().hex[:8]}"
    db = tmp_path / "data" / "store.db"
    member = importing_member(tmp_path, cluster_name, rendered_path)
    member.start()
    client = member.client(serializers())
    try:
        orders = client.get_map("Orders_ES").blocking()
        views = client.get_map("Customer_VIEW").blocking()
        orders.put_all(
            {
                f"evt-{i}": OrderEvent(
                    f"order-{i}", i, "OrderPlaced", 1_700_000_000_000 + i, "c", i
                )
                for i in range(200)
            }
        )
        for version in range(3):  # coalesced or not, the latest state is the row
            for i in range(50):
                views.put(
                    f"customer-{i}",
                    OrderEvent(f"customer-{i}", version, "Updated", version, "c", float(version)),
                )
        # Two events under one key, within the write delay: the member's queue of a
        # non-coalescing map hands both to the store, which keeps the first; a coalescing
        # map's queue keeps only the second. Which one is stored shows the setting applied.
        for name in ("Payments_ES", "Ledger_ES"):
            events = client.get_map(name).blocking()
            for sequence in (1, 2):
                events.put("dup", OrderEvent("dup", sequence, "Paid", sequence, "c", 1.0))
        wait_until(
            lambda: (
                count(db, "SELECT count(*) FROM domain_events WHERE map_name='Orders_ES'") == 200
            ),
            60,
            "events did not reach the database through the rendered write-behind configuration",
        )
        wait_until(
            lambda: (
                stored_sequence(db, "Payments_ES") is not None
                and stored_sequence(db, "Ledger_ES") is not None
            ),
            60,
            "the events written twice under one key did not reach the database",
        )
        assert stored_sequence(db, "Payments_ES") == 1  # write-coalescing false: every write
        assert stored_sequence(db, "Ledger_ES") == 2  # write-coalescing true: the last one
        wait_until(
            lambda: (
                count(
                    db,
                    "SELECT count(*) FROM domain_views WHERE view_name='Customer_VIEW' "
                    "AND json_extract(view_data, '$.sequence') = 2",
                )
                == 50
            ),
            60,
            "views did not reach the database",
        )
    finally:
        client.shutdown()
        # SIGTERM: a graceful shutdown (flushing write-behind); the JVM exits 143.
        assert member.stop() in (0, 143), member.log()[-5000:]
    first_log = member.log()

    # Cold start of a new member from the same files: views EAGER (every key loaded),
    # events LAZY (no key listed, each loaded on access).
    member = importing_member(tmp_path, f"{cluster_name}-2", rendered_path)
    member.start()
    client = member.client(serializers())
    try:
        views = client.get_map("Customer_VIEW").blocking()
        assert views.size() == 50
        assert views.get("customer-7").sequence == 2
        orders = client.get_map("Orders_ES").blocking()
        assert orders.size() == 0
        assert orders.get("evt-42") == OrderEvent(
            "order-42", 42, "OrderPlaced", 1_700_000_000_042, "c", 42.0
        )
    finally:
        client.shutdown()
        member.kill()
    for log in (first_log, member.log()):
        assert "InvalidConfigurationException" not in log
        # The shim's Unix-socket channel sets no TCP-only socket option.
        assert "Unknown channel option" not in log
