"""Models of /api/clients: request bodies refuse unknown fields (shared.web.Body); responses
are built from the store's rows (`FromRow`)."""

from __future__ import annotations

import uuid
from typing import Annotated

from pydantic import BaseModel, Field

from shared.kit.params import SafeText
from shared.store.clients import ClientRow
from shared.web import Body

MAX_ACCOUNTS_PER_CLIENT = 500
_NAME_PATTERN = r"^[^\x00-\x1f\x7f]+$"  # one line, no control characters

Name = Annotated[SafeText, Field(min_length=1, max_length=200, pattern=_NAME_PATTERN)]
Notes = Annotated[SafeText, Field(max_length=4000)]
AccountList = Annotated[
    list[uuid.UUID],
    Field(max_length=MAX_ACCOUNTS_PER_CLIENT, description="the client's linked accounts"),
]


class ClientCreate(Body):
    name: Name
    notes: Notes = ""
    account_ids: AccountList = Field(default_factory=list)


class ClientPatch(Body):
    """Fields to change; `account_ids` replaces the client's accounts."""

    name: Name | None = None
    notes: Notes | None = None
    account_ids: AccountList | None = None


class Client(ClientRow):
    pass


class ClientList(BaseModel):
    items: list[Client]
