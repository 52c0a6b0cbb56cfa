-- Issue 16: people who sign in with passkeys. New tenant tables (users, passkeys, sessions,
-- invitations, enrolments) and the cross-tenant webauthn_challenges, their grants and the
-- SECURITY DEFINER functions of sign-in, enrolment and invitations, and the sign-in kinds of
-- cao.rate_limit_hit: schema.sql, applied just before this script, creates or replaces all
-- of them; nothing older changes shape.
SELECT 1;
