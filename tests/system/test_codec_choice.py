"""Both codecs through the real `hz-sidecar run` process: the same rows, the same answers.

The compiled accelerator (``sidecar.codec._flat``) is on by default where it is built;
``codec.accelerator: disabled`` runs the pure-Python codec. A sidecar of each stores the
same flat and nested records and the same undecodable value; the database rows, the
answers to Load and the poison entry's dead letter are compared. The start-up log
says which codec runs, and ``codec.accelerator: required`` refuses to start when the
extension is missing.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from hzsidecar.v1 import mapstore_pb2 as pb
from sidecar.codec import accel
from tests.hzclient import ClientSerialization, Customer, Order
from tests.prerequisites import missing
from tests.system.conftest import SidecarProcess, free_port, sidecar_command, sqlite_config

CODECS = {"disabled": "pure Python", "required": "compiled accelerator"}


def _records() -> dict[str, object]:
    items: dict[str, object] = {f"c{i}": Customer(f'name é {i} "q"', i % 2 == 0) for i in range(50)}
    items.update({f"o{i}": Order(f"o{i}", i / 3, i, ["x"], Customer("n", True)) for i in range(5)})
    return items


def _run(tmp_path: Path, codec: str) -> tuple[list[tuple[Any, ...]], dict[object, object], str]:
    if codec == "required" and not accel.available():
        missing(
            "the compiled codec accelerator (sidecar.codec._flat) is not built",
            "install gcc and the Python headers (Debian: apt-get install gcc python3-dev), "
            "then `make install`",
        )
    workdir = tmp_path / codec
    workdir.mkdir()
    process = SidecarProcess(
        workdir,
        sqlite_config(workdir, f"127.0.0.1:{free_port()}"),
        env={accel.ENV: codec},
    )
    process.start()
    client = ClientSerialization()
    try:
        items = _records()
        entries = [
            pb.Entry(key=client.to_bytes(k), value=client.to_bytes(v)) for k, v in items.items()
        ]
        # A flat record whose string length runs past its data: undecodable, dead-lettered.
        bad = bytearray(client.to_bytes(Customer("broken", False)))
        bad[24:28] = (10_000).to_bytes(4, "big")
        entries.append(pb.Entry(key=client.to_bytes("bad"), value=bytes(bad)))
        answer = process.stub.Store(
            pb.StoreRequest(map_name="People_VIEW", entries=entries, schemas=client.schemas()),
            timeout=10,
        )
        assert [r.status for r in answer.results] == [pb.ENTRY_STATUS_WRITTEN] * len(items) + [
            pb.ENTRY_STATUS_DEAD_LETTERED
        ]
        loaded = process.stub.Load(
            pb.LoadRequest(map_name="People_VIEW", keys=[client.to_bytes(k) for k in items]),
            timeout=10,
        )
        reader = ClientSerialization()
        reader.register(loaded.schemas)
        values = {reader.to_object(e.key): reader.to_object(e.value) for e in loaded.entries}
        assert values == items
    finally:
        process.stop(signal.SIGTERM)
    with sqlite3.connect(workdir / "data" / "store.db") as db:
        rows = db.execute(
            "SELECT view_key, key_format, view_data, value_format, type_name, schema_id "
            "FROM domain_views ORDER BY view_key"
        ).fetchall()
        letters = db.execute(
            "SELECT map_name, key_data, value_data, error FROM hz_sidecar_dead_letters"
        ).fetchall()
    return rows + letters, values, process.log()


def test_both_codecs_store_the_same_rows_and_load_the_same_values(tmp_path: Path) -> None:
    python_rows, python_values, python_log = _run(tmp_path, "disabled")
    fast_rows, fast_values, fast_log = _run(tmp_path, "required")
    assert fast_rows == python_rows
    assert fast_values == python_values
    assert "codec: pure Python" in python_log
    assert "codec: compiled accelerator (sidecar.codec._flat)" in fast_log


def test_accelerated_codec_demanded_but_missing_refuses_to_start(tmp_path: Path) -> None:
    """What a user sees when they require the accelerator on an install without it: the
    import of sidecar.codec._flat is blocked here to stand for a machine without a compiler."""
    config = tmp_path / "sidecar.yaml"
    config.write_text(yaml.safe_dump(sqlite_config(tmp_path, f"127.0.0.1:{free_port()}")))
    blocker = tmp_path / "block"
    blocker.mkdir()
    (blocker / "sitecustomize.py").write_text(
        "import sys\n"
        "class _Block:\n"
        "    def find_spec(self, name, path=None, target=None):\n"
        "        if name == 'sidecar.codec._flat':\n"
        "            raise ImportError('blocked for the test: no compiled codec')\n"
        "sys.meta_path.insert(0, _Block())\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("HZ_SIDECAR_")}
    env["PYTHONPATH"] = f"{blocker}:{env.get('PYTHONPATH', '')}"
    env[accel.ENV] = "required"
    result = subprocess.run(
        [*sidecar_command(), "run", "--config", str(config)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode != 0
    assert "codec.accelerator is 'required', but the compiled codec" in result.stderr
    # Without the demand the same install runs on the pure-Python codec.
    env.pop(accel.ENV)
    check = subprocess.run(
        [sys.executable, "-c", "from sidecar.codec import accel; print(accel.status())"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert "codec: pure Python (the accelerator is not built" in check.stdout, check.stderr
