"""Clients: an agency groups its linked accounts into clients (name, notes; an account belongs
to at most one client): /api/clients[/{client_id}] (served by api/clients.py).

`routes.py` parses, `service.py` holds the use cases (list, read, create, edit, assign
accounts, delete; changes audited), `schemas.py` the bodies and responses. The cost reads take
`client_id` as a filter (functions/costs), and so do forecasts, budgets and anomalies
(functions/alerts). SQL is in shared/store/clients.py.
"""
