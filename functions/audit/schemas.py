"""Models of /api/audit: entries are built from the store's rows (`FromRow`)."""

from __future__ import annotations

from pydantic import BaseModel

from shared.store.audit import AuditRow


# The row as stored, fields declared once in shared/store/audit.py (no docstring: it would
# change the published OpenAPI document).
class AuditEntry(AuditRow):
    pass


class AuditPage(BaseModel):
    items: list[AuditEntry]
    next_cursor: str | None
