"""Accounts: the client AWS accounts an agency has linked, and their sync health.

- `routes`: GET /api/accounts, GET/PATCH/DELETE /api/accounts/{account_id}, and "sync now",
  POST /api/accounts/{account_id}/sync (api/accounts.py).
- `service`: list and detail with sync health (status in words, lag per job, Cost Explorer
  spend), edit (alias, regions), unlink.
- `schemas`: `AccountOut` (the stored account, also shown by onboarding and the agency), the
  summary/detail/page views, the edit body, and `check_name` for the names people type.
- `regions`: the AWS region names an account or an agency may choose.

Linking, bulk linking and verifying a role call AWS: they are onboarding's
(`functions.onboard`). "Sync now" asks the job system (`functions.jobs.service.request_sync`).
"""
