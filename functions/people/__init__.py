"""People who sign in with passkeys (served by api/people.py): enrolment and passkey
registration, sign-in and sessions, the agency's users, invitations and recovery links.

`routes.py` is HTTP only; `service.py` holds enrolment, registration, passkeys and users, and
points to `sessions.py` (sign-in, sessions) and `invitations.py` (invitations, recovery links);
`relying_party.py` wraps py_webauthn, which does every verification. SQL is in
shared/store/people.py; the session cookie is authenticated in shared.web / shared.auth.
"""
