"""The agency's audit log as admins read it: GET /api/audit (served by api/audit.py).

`routes.py` parses, `service.py` reads a keyset page, `schemas.py` holds the response models,
built from store rows. Entries are written by the domains that act (shared/store/audit.py, in
their own transactions); SQL is in shared/store/.
"""
