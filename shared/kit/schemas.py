"""The shared base of stored rows and the API models that show them.

A row that the API shows as it is stored is declared once, in its store module, as a `Row`
(a frozen pydantic model); the API model that shows it subclasses it and adds nothing but its
name and docstring, so a field is never declared twice (fastapi/full-stack-fastapi-template's
shared base). Rows are made from the database's own values without validation
(`model_construct`: psycopg already typed them): `kwargs_row(Model.model_construct)` for named
columns, `Model.from_values(*row)` for a tuple in field order. The API model is built from a row
with `Model.model_validate(row)` (`from_attributes`).

An API model whose shape differs from any row (computed or renamed fields) derives from
`FromRow` and declares its own fields, still built with `model_validate(row)`.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any, Self

from pydantic import BaseModel, ConfigDict


class FromRow(BaseModel):
    """An API model read from a store row's attributes (`Model.model_validate(row)`)."""

    model_config = ConfigDict(from_attributes=True)


class Row(BaseModel):
    """A stored row, declared once: frozen, built from trusted database values."""

    model_config = ConfigDict(frozen=True, from_attributes=True)

    @classmethod
    def from_values(cls, *values: Any) -> Self:
        """The row from a tuple of column values in the order of the fields."""
        return cls.model_construct(**dict(zip(cls.model_fields, values, strict=True)))


def check_name(value: str) -> str:
    """Refuse control characters (Postgres text cannot hold NUL; the rest has no place in a
    name or alias either)."""
    if any(unicodedata.category(ch) == "Cc" for ch in value):
        raise ValueError("must not contain control characters")
    return value


EMAIL = re.compile(r"[^@\s]{1,64}@[^@\s]+\.[^@\s]+")


def check_email(value: str) -> str:
    if not EMAIL.fullmatch(check_name(value)):
        raise ValueError("must be an email address such as ops@example.com")
    return value
