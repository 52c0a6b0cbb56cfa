-- Issue 15 (the API under attack), items 5 and 7. schema.sql, applied just before this script,
-- has created the new SECURITY DEFINER functions (time from now(), limits clamped, rate-limit
-- policies by bucket kind), cao.set_billing_state and the narrowed grants; this removes what it cannot: the old function signatures that took the caller's
-- "now", window and limit, and the accounts -> external_ids foreign key that ignored the agency.

DROP FUNCTION IF EXISTS cao.dispatch_due_jobs(text, timestamptz, integer);
DROP FUNCTION IF EXISTS cao.purge_expired_events(timestamptz, integer);
DROP FUNCTION IF EXISTS cao.rate_limit_hit(text, timestamptz, integer, integer);
DROP FUNCTION IF EXISTS cao.accounts_due_trust_probe(timestamptz, timestamptz, integer);

-- An account's ExternalId is one of its own agency's.
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_constraint
                  WHERE conname = 'external_ids_agency_id_id_key'
                    AND conrelid = 'cao.external_ids'::regclass) THEN
    ALTER TABLE cao.external_ids ADD CONSTRAINT external_ids_agency_id_id_key UNIQUE (agency_id, id);
  END IF;
  IF NOT EXISTS (SELECT 1 FROM pg_constraint
                  WHERE conname = 'accounts_agency_id_external_id_id_fkey'
                    AND conrelid = 'cao.accounts'::regclass) THEN
    ALTER TABLE cao.accounts DROP CONSTRAINT IF EXISTS accounts_external_id_id_fkey;
    ALTER TABLE cao.accounts ADD CONSTRAINT accounts_agency_id_external_id_id_fkey
      FOREIGN KEY (agency_id, external_id_id) REFERENCES cao.external_ids (agency_id, id);
  END IF;
END $$;
