"""hz-sidecar-jsonl: an hz-sidecar provider keeping each map in an append-only JSON-lines file.

Registered in the ``hz_sidecar.providers`` entry point group as ``jsonl``; select it with
``provider: {name: jsonl, settings: {directory: data/jsonl}}``.
"""

from hz_sidecar_jsonl.provider import TRANSIENT_ERRNOS, JsonLinesProvider

__all__ = ["TRANSIENT_ERRNOS", "JsonLinesProvider"]
