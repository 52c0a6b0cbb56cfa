"""Persistence: all SQL, one module per domain (its reads and writes together), functions named
after verbs.

    accounts    linked accounts, discovered members, their sync health (jobs, cursors, runs)
    agency      agencies, ExternalIds, API keys, export and deletion of an agency's data
    access      CloudTrail access events and cursors (the sync's writes, the governance reads)
    costs       cost rows and months (the sync's writes, the report reads); Metric, GroupBy
    audit       the audit log (`record`, and the keyset reads)
    runbooks    runbooks and their versions
    billing     billing state and webhook deliveries
    notices     incident and sub-processor notices
    jobs        sync jobs, leases, runs; the job kind vocabulary
    rate_limits the fixed-window buckets (sign-up, sync now)

Every function takes a connection already inside a transaction (`shared.db.tenant_tx` for
tenant data, `shared.db.system_tx` for the SECURITY DEFINER paths) and never commits itself:
the caller decides what is atomic. SQL is parameterised; names use `psycopg.sql`.
"""
