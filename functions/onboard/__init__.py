"""Onboarding: agency sign-up, the ExternalId, role templates, account linking and verifying.

Modules:
- `routes`: the FastAPI routers served by `api/agencies.py`, `api/onboarding.py`,
  `api/accounts.py` (link routes) and `api/cron_verify.py`.
- `service`: every use case, from sign-up to the weekly probe (start here); it calls the two
  named modules below for the AWS side.
- `schemas`: request and response models, and `check_email`.
- `externalid`: the per-agency ExternalId (CSPRNG, AWS charset), and its validation.
- `templates`: the CloudFormation template (YAML, JSON, StackSet variant) and quick-create link,
  built from `shared.policy` so the role we ask for is exactly the one the security page shows.
- `linking`, `verify`: the AWS checks on a client role (assume, account ID, trust-policy probe,
  Organizations, Cost Explorer) and what they store. These import `shared.aws` (botocore): the
  service imports them lazily, inside its functions, so read paths never load botocore.
- `operator`: `python -m functions.onboard.operator issue-admin-key --agency <uuid>`.

The agency's own records once it exists (settings, keys, rotation, export, deletion) are
`functions.agency`'s; the accounts once linked (views, edits, unlinking) `functions.accounts`'.
"""
