"""Onboarding: agency sign-up, API keys, the ExternalId, role templates, account linking.

Modules:
- `externalid`: the per-agency ExternalId (CSPRNG, AWS charset), and its validation.
- `regions`: the AWS region names an agency may choose.
- `templates`: the CloudFormation template (YAML, JSON, StackSet variant) and quick-create link,
  built from `shared.policy` so the role we ask for is exactly the one the security page shows.
- `signup`, `keys`, `agency_settings`, `rotation`: the agency's own records.
- `linking`, `verify`: the AWS checks on a client role (assume, account ID, trust-policy probe,
  Organizations, Cost Explorer) and what they store. These import `shared.aws` (botocore): the
  routers import them lazily, inside the handlers, so read paths never load botocore.
- `routes`: the FastAPI routers served by `api/agencies.py`, `api/agency.py`,
  `api/onboarding.py`, `api/accounts.py` and `api/cron_verify.py`.
- `operator`: `python -m functions.onboard.operator issue-admin-key --agency <uuid>`.
"""
