"""A Sentry transport that keeps events in memory, so tests can read exactly what would leave."""

from __future__ import annotations

import json
from typing import Any

from sentry_sdk.envelope import Envelope
from sentry_sdk.transport import Transport


class CapturingTransport(Transport):
    """Collects every envelope item as JSON text instead of sending it."""

    def __init__(self, options: dict[str, Any] | None = None) -> None:
        super().__init__(options)
        self.items: list[str] = []

    def capture_envelope(self, envelope: Envelope) -> None:
        for item in envelope.items:
            payload = item.payload.json if item.payload.json is not None else item.payload.bytes
            self.items.append(
                json.dumps(payload, default=str)
                if not isinstance(payload, bytes)
                else payload.decode(errors="replace")
            )

    def flush(self, timeout: float, callback: Any = None) -> None:
        return None

    def kill(self) -> None:
        return None

    @property
    def text(self) -> str:
        return "\n".join(self.items)

    @property
    def events(self) -> list[dict[str, Any]]:
        return [json.loads(i) for i in self.items if i.startswith("{")]
