"""The caller's agency: its settings, API keys, ExternalId rotation, and its data rights.

- `routes`: /api/agency, /api/agency/keys..., /api/agency/external-id/rotate,
  /api/agency/export (served by api/agency.py).
- `service`: settings, keys, rotation, export, deletion.
- `schemas`: `AgencyOut`, `KeyOut`, the settings and key bodies, `RotationOut`.

Sign-up (the agency's birth, its first key and ExternalId) is onboarding's (`functions.onboard`).
"""
