"""Runbooks: markdown per agency, optionally attached to one of its accounts, versioned, with
conditional edits: /api/runbooks[/{runbook_id}[/versions[/{version}]]] (served by
api/runbooks.py).

`routes.py` parses and sets ETags, `service.py` holds every use case (create, read, list,
conditional update and delete, versions), `schemas.py` the request bodies and the response
models, built from store rows. SQL is in shared/store/.
"""
