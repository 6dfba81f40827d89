"""gRPC health check of a running hz-sidecar: exit 0 when SERVING, 1 otherwise.

Used by the image's HEALTHCHECK and by the Kubernetes exec probes (the sidecar listens on a
Unix socket in the pod, which `grpc:` probes cannot reach). The address is the first argument,
else HZ_SIDECAR_LISTEN__ADDRESS, else 127.0.0.1:50051; a wildcard host is checked on loopback.
"""

from __future__ import annotations

import os
import sys

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc


def main(argv: list[str]) -> int:
    address = argv[1] if len(argv) > 1 else os.environ.get("HZ_SIDECAR_LISTEN__ADDRESS", "")
    address = address or "127.0.0.1:50051"
    for wildcard, loopback in (("0.0.0.0:", "127.0.0.1:"), ("[::]:", "[::1]:")):
        if address.startswith(wildcard):
            address = loopback + address.removeprefix(wildcard)
    timeout = float(os.environ.get("HZ_SIDECAR_HEALTHCHECK_TIMEOUT", "3"))
    with grpc.insecure_channel(address) as channel:
        try:
            answer = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=""), timeout=timeout
            )
        except grpc.RpcError as exc:
            print(f"hz-sidecar at {address}: {exc.code().name}", file=sys.stderr)
            return 1
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(answer.status)
    print(f"hz-sidecar at {address}: {status}")
    return 0 if answer.status == health_pb2.HealthCheckResponse.SERVING else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
