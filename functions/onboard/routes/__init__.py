"""HTTP routes of onboarding, one module per router (so each function loads only its own):

    api/agencies.py     signup.signup_router       POST /api/agencies (public sign-up)
    api/agency.py       agency.agency_router       GET/PATCH /api/agency, /api/agency/keys...,
                                            POST /api/agency/external-id/rotate
    api/onboarding.py   onboarding.onboarding_router   GET /api/onboarding, its three templates
    api/accounts.py     accounts.accounts_router     POST /api/accounts, PATCH/DELETE
                                            /api/accounts/{id}, POST .../verify,
                                            GET /api/accounts/discovered, POST .../link
    api/cron_verify.py  cron.verify_cron_router  GET /api/cron/verify (Vercel Cron, weekly)

Cold start: this module loads no botocore. Handlers that call AWS import `linking`/`verify` and
`shared.aws` inside the handler, so the read views served beside these routes stay light.

A new link's sync jobs are created and published right after the link commits
(`functions.jobs.service.enqueue_first_sync`, which never fails the link).
"""
