"""`make demo`: a Hazelcast member persisting its IMaps through hz-sidecar on SQLite.

Starts, as real processes, the sidecar (config/sidecar.yaml, database under
data/demo/) and one Hazelcast member (the Maven Central jar plus the shim, map
configuration rendered by `hz-sidecar member-config`), then a Python client
puts and gets Compact records, and the rows are shown from the database.
Everything keeps running until Ctrl-C, which stops the member gracefully
(write-behind queues flush) and then the sidecar.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import hazelcast
import yaml
from hazelcast.serialization.api import CompactReader, CompactSerializer, CompactWriter

ROOT = Path(__file__).resolve().parents[1]
WORK = ROOT / "data" / "demo"
JARS = [ROOT / "shim/target/lib/hazelcast-5.7.0.jar", ROOT / "shim/target/hz-sidecar-shim.jar"]
BIN = Path(sys.executable).parent


@dataclasses.dataclass
class OrderPlaced:
    orderId: str
    customer: str
    amount: float
    eventType: str = "OrderPlaced"
    timestampMillis: int = 0


class OrderPlacedSerializer(CompactSerializer[OrderPlaced]):
    def read(self, reader: CompactReader) -> OrderPlaced:
        return OrderPlaced(
            reader.read_string("orderId") or "",
            reader.read_string("customer") or "",
            reader.read_float64("amount"),
            reader.read_string("eventType") or "",
            reader.read_int64("timestampMillis"),
        )

    def write(self, writer: CompactWriter, obj: OrderPlaced) -> None:
        writer.write_string("orderId", obj.orderId)
        writer.write_string("customer", obj.customer)
        writer.write_float64("amount", obj.amount)
        writer.write_string("eventType", obj.eventType)
        writer.write_int64("timestampMillis", obj.timestampMillis)

    def get_type_name(self) -> str:
        return "OrderPlaced"

    def get_class(self) -> type[OrderPlaced]:
        return OrderPlaced


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def say(text: str) -> None:
    print(f"\n== {text}", flush=True)


def wait_for(predicate: Any, what: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise SystemExit(f"demo: {what} did not happen within {timeout:.0f} s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--no-wait", action="store_true", help="stop after showing the rows")
    args = parser.parse_args()
    missing = [str(j) for j in JARS if not j.exists()]
    if missing:
        raise SystemExit(f"demo: run `make shim` first (missing {', '.join(missing)})")
    WORK.mkdir(parents=True, exist_ok=True)
    sidecar_port, member_port = free_port(), free_port()
    config: dict[str, Any] = yaml.safe_load((ROOT / "config/sidecar.yaml").read_text())
    config["listen"]["address"] = f"127.0.0.1:{sidecar_port}"
    config["provider"] = {"name": "sqlite", "settings": {"path": str(WORK / "demo.db")}}
    config["framework"]["persistence"]["write-delay-seconds"] = 1
    (WORK / "sidecar.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    env = {k: v for k, v in os.environ.items() if not k.startswith("HZ_SIDECAR_")}
    maps = WORK / "maps.yaml"
    subprocess.run(
        [BIN / "hz-sidecar", "member-config", "--config", WORK / "sidecar.yaml", "--out", maps],
        check=True,
        env=env,
    )
    member_config = {
        "hazelcast": {
            "import": [str(maps)],
            "cluster-name": "hz-sidecar-demo",
            "network": {
                "port": {"port": member_port, "auto-increment": False},
                "join": {
                    "auto-detection": {"enabled": False},
                    "multicast": {"enabled": False},
                    "tcp-ip": {"enabled": True, "member-list": [f"127.0.0.1:{member_port}"]},
                },
            },
            "properties": {"hazelcast.phone.home.enabled": False},
        }
    }
    (WORK / "hazelcast.yaml").write_text(yaml.safe_dump(member_config, sort_keys=False))

    say(f"starting hz-sidecar on 127.0.0.1:{sidecar_port} (SQLite: {WORK / 'demo.db'})")
    sidecar_log = (WORK / "sidecar.log").open("ab")
    sidecar = subprocess.Popen(
        [BIN / "hz-sidecar", "run", "--config", WORK / "sidecar.yaml"],
        cwd=ROOT,
        env=env,
        stdout=sidecar_log,
        stderr=subprocess.STDOUT,
    )
    say(f"starting a Hazelcast member on 127.0.0.1:{member_port} with the shim")
    member_log_path = WORK / "member.log"
    member_log = member_log_path.open("ab")
    member = subprocess.Popen(
        [
            "java",
            "-Xmx512m",
            f"-Dhazelcast.config={WORK / 'hazelcast.yaml'}",
            "-cp",
            os.pathsep.join(map(str, JARS)),
            "com.hazelcast.core.server.HazelcastMemberStarter",
        ],
        stdout=member_log,
        stderr=subprocess.STDOUT,
    )
    client = None
    try:
        wait_for(
            lambda: "is STARTED" in member_log_path.read_text(errors="replace"), "member start"
        )
        client = hazelcast.HazelcastClient(
            cluster_name="hz-sidecar-demo",
            cluster_members=[f"127.0.0.1:{member_port}"],
            compact_serializers=[OrderPlacedSerializer()],
        )
        events = client.get_map("Orders_ES").blocking()
        say("putting 5 OrderPlaced events (Compact, known to the client only) into Orders_ES")
        now = int(time.time() * 1000)
        for i in range(5):
            events.put(
                f"order-{i}:1",
                OrderPlaced(
                    f"order-{i}", f"customer-{i % 2}", 10.5 * (i + 1), timestampMillis=now + i
                ),
            )
        print("get order-3:1 ->", events.get("order-3:1"))
        say("waiting for write-behind (write-delay-seconds: 1) to reach the database")
        with sqlite3.connect(WORK / "demo.db") as db:
            query = "SELECT count(*) FROM domain_events WHERE map_name = 'Orders_ES'"
            wait_for(lambda: db.execute(query).fetchone()[0] >= 5, "write-behind flush", 30)
            rows = db.execute(
                "SELECT map_key, event_type, json_extract(event_data, '$.amount'), event_data "
                "FROM domain_events WHERE map_name = 'Orders_ES' ORDER BY map_key"
            ).fetchall()
        say(f"rows in domain_events ({WORK / 'demo.db'})")
        for row in rows:
            print(" | ".join(str(c) for c in row))
        if not args.no_wait:
            say("running; press Ctrl-C to stop (the member flushes, then the sidecar stops)")
            signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        say("stopping")
        if client is not None:
            client.shutdown()
        member.send_signal(signal.SIGTERM)
        member.wait(120)
        sidecar.send_signal(signal.SIGTERM)
        sidecar.wait(60)
        print(f"stopped (logs in {WORK})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
