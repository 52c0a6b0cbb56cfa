"""Persistence: one module per thing stored, functions named after verbs.

Every function takes a connection already inside a transaction (`shared.db.tenant_tx` for
tenant data, `shared.db.system_tx` for the SECURITY DEFINER paths) and never commits itself:
the caller decides what is atomic. SQL is parameterised; names use `psycopg.sql`.
"""
