"""Traces across the member and the sidecar: the shim's traceparent is the parent of the
sidecar's spans, and the trace id the shim logs for a put finds them."""

from __future__ import annotations

import json
import re
import shutil
import signal
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.conftest import Member, map_store_block, require_jars, wait_until
from tests.system.conftest import SidecarProcess, free_port, sqlite_config

pytestmark = pytest.mark.e2e

# The shim's FINE line for each call (SidecarMapStore.call).
_STORE_LINE = re.compile(
    r"hz-sidecar store of 1 entries for map 'Traced_VIEW' trace_id=([0-9a-f]{32})"
)


def spans(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_one_puts_trace_id_appears_on_the_sidecars_spans(tmp_path: Path) -> None:
    require_jars()
    sock_dir = Path(f"/tmp/hzt-{uuid.uuid4().hex[:8]}")
    sock_dir.mkdir()
    address = f"unix://{sock_dir}/sidecar.sock"
    span_file = tmp_path / "spans.jsonl"
    config = sqlite_config(tmp_path, address)
    config["telemetry"] = {"span-file": str(span_file)}
    sidecar = SidecarProcess(tmp_path, config)
    # FINE for the shim's logger only: every call's trace id goes to the member's log.
    logging_properties = tmp_path / "logging.properties"
    logging_properties.write_text(
        "handlers=java.util.logging.ConsoleHandler\n"
        "java.util.logging.ConsoleHandler.level=FINE\n"
        ".level=INFO\n"
        "io.github.hzsidecar.shim.level=FINE\n"
    )
    store = map_store_block(address, write_delay=0, batch=1, coalescing=True, initial_mode="LAZY")
    member = Member(
        tmp_path,
        free_port(),
        f"hzt-{uuid.uuid4().hex[:8]}",
        {"Traced_VIEW": {"map-store": store}},
        jvm_args=[f"-Djava.util.logging.config.file={logging_properties}"],
    )
    client = None
    try:
        sidecar.start()
        member.start()
        client = member.client([])
        client.get_map("Traced_VIEW").blocking().put("traced-key", "traced-value")

        wait_until(
            lambda: _STORE_LINE.search(member.log()) is not None,
            30,
            "the shim logged no trace id for the put",
        )
        [trace_id] = _STORE_LINE.findall(member.log())

        def of_trace() -> list[dict[str, Any]]:
            return [s for s in spans(span_file) if s["trace_id"] == trace_id]

        # The sidecar exports in batches (every few seconds).
        wait_until(lambda: len(of_trace()) >= 3, 30, f"no sidecar spans of trace {trace_id}")
        by_name = {s["name"]: s for s in of_trace()}
        server = by_name["hzsidecar.v1.MapStore/Store"]
        assert server["kind"] == "SERVER"
        assert server["parent_span_id"] is not None  # the shim's span, sent in traceparent
        assert server["attributes"]["hazelcast.map.name"] == "Traced_VIEW"
        assert server["attributes"]["hazelcast.operation"] == "store"
        assert server["attributes"]["hazelcast.written"] == 1
        for child in ("decode", "provider.store"):
            assert by_name[child]["parent_span_id"] == server["span_id"]
    finally:
        if client is not None:
            client.shutdown()
        member.kill()
        sidecar.stop(signal.SIGKILL)
        shutil.rmtree(sock_dir, ignore_errors=True)
