"""The base of API models built from stored rows.

A store function returns a frozen dataclass row; the API model that shows it derives from
`FromRow` and is built with `Model.model_validate(row)`: pydantic reads the row's attributes
(`from_attributes`), so a field is declared once on each side and renamed only with an alias.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class FromRow(BaseModel):
    """An API model read from a store row's attributes (`Model.model_validate(row)`)."""

    model_config = ConfigDict(from_attributes=True)
