"""The agency-scoped read API: accounts and sync health, costs, access governance, runbooks,
the audit log, and the agency's data rights (export, deletion).

`routes/` holds the routers, one module each (parse, call one service, map errors), so that a
function loads only its own routes; `models/` their request and response models, likewise; the
services (`accounts.py`, `costs.py`, `access.py`, `runbooks.py`, `audit.py`, `data.py`) take the
connection and clock as arguments and keep their shaping pure; SQL lives in `shared/store/`.
Nothing here may load boto3 or botocore: these are the cold-start-sensitive read functions.
"""
