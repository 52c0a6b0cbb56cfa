"""Accounts: the client AWS accounts an agency has linked, and their sync health.

- `routes`: everything under /api/accounts (api/accounts.py): linking a role, bulk linking
  discovered members and verifying (onboarding's use cases, `functions.onboard.service`), and
  the accounts' own routes: list and detail, edit, unlink, and "sync now".
- `service`: list and detail with sync health (status in words, lag per job, Cost Explorer
  spend), edit (alias, regions), unlink.
- `schemas`: the summary/detail/page views, the edit body, "sync now"'s answer. The stored
  account as shown (`AccountOut`), the region vocabulary and `check_name` are onboarding's,
  which creates accounts.

"Sync now" asks the job system (`functions.jobs.service.request_sync`).
"""
