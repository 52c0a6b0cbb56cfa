"""Routes: /api/clients[/{client_id}] (api/clients.py). Any key reads; admin keys change."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Path, Response

from functions.clients import schemas
from functions.clients import service as clients
from shared.kit.http import errors
from shared.web import AdminDep, CallerDep, Conn

clients_router = APIRouter(tags=["clients"])
ClientId = Annotated[uuid.UUID, Path()]


@clients_router.get("/api/clients")
def list_clients(caller: CallerDep, conn: Conn) -> schemas.ClientList:
    """The agency's clients (at most 1000) with their accounts, by name."""
    return clients.list_all(conn, caller.agency_id)


@clients_router.post("/api/clients", status_code=201, responses=errors(403, 404, 409))
def create_client(
    body: schemas.ClientCreate, caller: AdminDep, conn: Conn, response: Response
) -> schemas.Client:
    """Create a client (admin), optionally with accounts (each in at most one client)."""
    created = clients.create(conn, caller.agency_id, caller.actor, body)
    response.headers["Location"] = f"/api/clients/{created.id}"
    return created


@clients_router.get("/api/clients/{client_id}", responses=errors(404))
def get_client(client_id: ClientId, caller: CallerDep, conn: Conn) -> schemas.Client:
    return clients.get(conn, caller.agency_id, client_id)


@clients_router.patch("/api/clients/{client_id}", responses=errors(403, 404, 409))
def update_client(
    client_id: ClientId, body: schemas.ClientPatch, caller: AdminDep, conn: Conn
) -> schemas.Client:
    """Rename, edit notes, or set the accounts (admin; `account_ids` replaces them)."""
    return clients.update(conn, caller.agency_id, caller.actor, client_id, body)


@clients_router.delete("/api/clients/{client_id}", status_code=204, responses=errors(403, 404))
def delete_client(client_id: ClientId, caller: AdminDep, conn: Conn) -> Response:
    """Delete a client and its budgets (admin; its accounts stay linked)."""
    clients.delete(conn, caller.agency_id, caller.actor, client_id)
    return Response(status_code=204)
