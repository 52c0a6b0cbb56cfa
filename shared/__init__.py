"""CloudAgencyOps shared package: the only code that talks to AWS and Postgres.

Modules: settings (env vars), errors (the exception tree), db (Postgres connections and tenant
transactions), aws (assume-role and clients), redaction (secret scrubbing), logs (structured
logging), web (the ASGI app factory), auth (API keys), policy (published constants).
Nothing here connects anywhere at import time.
"""
