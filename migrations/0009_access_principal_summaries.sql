-- GET /api/access/principals reads per account x principal summaries kept at ingest by
-- triggers on cao.access_events (issue 15, item 11): see schema.sql.

-- Read API: per account x principal summaries of access_events (GET /api/access/principals
-- reads only these; issue 15 item 11, issue 21). A principal is its ARN when CloudTrail gave
-- one, else its name; events with neither are not summarised. Kept by statement triggers on
-- access_events, in the same transaction as the events: an insert adds only the rows it
-- actually inserted (a re-read event skipped by the unique key is not in the transition
-- table), a delete (the retention purge) recomputes the pairs it touched from the events that
-- remain, and an account's or agency's deletion cascades. Nothing else writes them but the
-- rebuild (functions/access/operator.py). They hold nothing access_events lacks.
CREATE TABLE IF NOT EXISTS cao.access_principals (
  agency_id       uuid NOT NULL,
  account_id      uuid NOT NULL,
  principal       text NOT NULL,
  principal_arn   text,
  principal_name  text,
  first_seen      timestamptz NOT NULL,
  last_seen       timestamptz NOT NULL,
  event_count     bigint NOT NULL CHECK (event_count > 0),
  PRIMARY KEY (account_id, principal),
  FOREIGN KEY (agency_id, account_id) REFERENCES cao.accounts (agency_id, id) ON DELETE CASCADE
);
-- A page of one account's principals, most recently active first; then the page's principals
-- across the accounts filtered (and the agency totals' recomputation).
CREATE INDEX IF NOT EXISTS access_principals_account_recent
  ON cao.access_principals (account_id, last_seen DESC, principal);
CREATE INDEX IF NOT EXISTS access_principals_principal
  ON cao.access_principals (agency_id, principal)
  INCLUDE (account_id, principal_arn, principal_name, first_seen, last_seen, event_count);
-- The distinct source IPs of each account x principal (their count and first ones are exact).
CREATE TABLE IF NOT EXISTS cao.access_principal_ips (
  agency_id   uuid NOT NULL,
  account_id  uuid NOT NULL,
  principal   text NOT NULL,
  source_ip   text NOT NULL,
  PRIMARY KEY (account_id, principal, source_ip),
  FOREIGN KEY (agency_id, account_id) REFERENCES cao.accounts (agency_id, id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS access_principal_ips_principal
  ON cao.access_principal_ips (agency_id, principal, source_ip) INCLUDE (account_id);

-- Insert: add the statement's new events to their summaries. Runs as the writer (row-level
-- security applies: a tenant writes only its own summaries). Source IPs first: the upsert of
-- the summaries then recomputes the agency totals (below) with them.
CREATE OR REPLACE FUNCTION cao.summarise_inserted_events() RETURNS trigger
  LANGUAGE plpgsql SET search_path = cao, pg_temp
AS $$
BEGIN
  INSERT INTO access_principal_ips (agency_id, account_id, principal, source_ip)
  SELECT DISTINCT agency_id, account_id, coalesce(principal_arn, principal_name), source_ip
    FROM new_rows
   WHERE coalesce(principal_arn, principal_name) IS NOT NULL AND source_ip IS NOT NULL
   ORDER BY 2, 3, 4
  ON CONFLICT DO NOTHING;
  INSERT INTO access_principals AS s (agency_id, account_id, principal, principal_arn,
                                      principal_name, first_seen, last_seen, event_count)
  SELECT agency_id, account_id, coalesce(principal_arn, principal_name), max(principal_arn),
         max(principal_name), min(event_time), max(event_time), count(*)
    FROM new_rows WHERE coalesce(principal_arn, principal_name) IS NOT NULL
   GROUP BY 1, 2, 3 ORDER BY 2, 3
  ON CONFLICT (account_id, principal) DO UPDATE
     SET principal_arn = greatest(s.principal_arn, EXCLUDED.principal_arn),
         principal_name = greatest(s.principal_name, EXCLUDED.principal_name),
         first_seen = least(s.first_seen, EXCLUDED.first_seen),
         last_seen = greatest(s.last_seen, EXCLUDED.last_seen),
         event_count = s.event_count + EXCLUDED.event_count;
  RETURN NULL;
END $$;

-- Delete: recompute the touched account x principal pairs from the events that remain (a
-- principal's first event, its names and its IPs may all have gone with the deleted rows).
-- Rows of an account that is itself being deleted are skipped: their summaries cascade (so
-- an account's or agency's deletion, the app role's only way to delete events, returns at
-- once, and the app role needs no DELETE on the summaries). A principal is matched as two
-- index ranges (by ARN; by name where there is no ARN), the same pairs as
-- coalesce(principal_arn, principal_name).
CREATE OR REPLACE FUNCTION cao.summarise_deleted_events() RETURNS trigger
  LANGUAGE plpgsql SET search_path = cao, pg_temp
AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM old_rows o WHERE o.account_id IN (SELECT id FROM accounts)) THEN
    RETURN NULL;
  END IF;
  DELETE FROM access_principals s
   USING (SELECT DISTINCT account_id, coalesce(principal_arn, principal_name) AS principal
            FROM old_rows) k
   WHERE s.account_id = k.account_id AND s.principal = k.principal;
  DELETE FROM access_principal_ips s
   USING (SELECT DISTINCT account_id, coalesce(principal_arn, principal_name) AS principal
            FROM old_rows) k
   WHERE s.account_id = k.account_id AND s.principal = k.principal;
  WITH k AS (
    SELECT DISTINCT o.agency_id, o.account_id, coalesce(o.principal_arn, o.principal_name) AS key
      FROM old_rows o JOIN accounts c ON c.id = o.account_id
     WHERE coalesce(o.principal_arn, o.principal_name) IS NOT NULL
  ), remaining AS (
    SELECT k.agency_id, k.account_id, k.key, e.principal_arn, e.principal_name, e.event_time,
           e.source_ip
      FROM k JOIN access_events e ON e.agency_id = k.agency_id AND e.principal_arn = k.key
       AND e.account_id = k.account_id
    UNION ALL
    SELECT k.agency_id, k.account_id, k.key, e.principal_arn, e.principal_name, e.event_time,
           e.source_ip
      FROM k JOIN access_events e ON e.agency_id = k.agency_id AND e.principal_arn IS NULL
       AND e.principal_name = k.key AND e.account_id = k.account_id
  ), summaries AS (
    INSERT INTO access_principals (agency_id, account_id, principal, principal_arn,
                                   principal_name, first_seen, last_seen, event_count)
    SELECT agency_id, account_id, key, max(principal_arn), max(principal_name),
           min(event_time), max(event_time), count(*)
      FROM remaining GROUP BY 1, 2, 3
  )
  INSERT INTO access_principal_ips (agency_id, account_id, principal, source_ip)
  SELECT DISTINCT agency_id, account_id, key, source_ip FROM remaining
   WHERE source_ip IS NOT NULL;
  RETURN NULL;
END $$;

-- First apply over existing events (an upgrade): summarise them once, before the triggers exist.
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'access_events_summarise_insert') THEN
    INSERT INTO cao.access_principals (agency_id, account_id, principal, principal_arn,
                                       principal_name, first_seen, last_seen, event_count)
    SELECT agency_id, account_id, coalesce(principal_arn, principal_name), max(principal_arn),
           max(principal_name), min(event_time), max(event_time), count(*)
      FROM cao.access_events WHERE coalesce(principal_arn, principal_name) IS NOT NULL
     GROUP BY 1, 2, 3
    ON CONFLICT DO NOTHING;
    INSERT INTO cao.access_principal_ips (agency_id, account_id, principal, source_ip)
    SELECT DISTINCT agency_id, account_id, coalesce(principal_arn, principal_name), source_ip
      FROM cao.access_events
     WHERE coalesce(principal_arn, principal_name) IS NOT NULL AND source_ip IS NOT NULL
    ON CONFLICT DO NOTHING;
  END IF;
END $$;

CREATE OR REPLACE TRIGGER access_events_summarise_insert AFTER INSERT ON cao.access_events
  REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION cao.summarise_inserted_events();
CREATE OR REPLACE TRIGGER access_events_summarise_delete AFTER DELETE ON cao.access_events
  REFERENCING OLD TABLE AS old_rows
  FOR EACH STATEMENT EXECUTE FUNCTION cao.summarise_deleted_events();

-- Read API: the same summaries over all of an agency's accounts, one row per principal, so the
-- unfiltered page is one keyset range (a principal can act in many accounts, and its distinct
-- source IPs are counted across them). Recomputed, for the principals a statement touched,
-- from the per-account summaries by statement triggers on those (a cascade from an account's
-- deletion included: whichever of the two tables cascades last leaves the totals right).
CREATE TABLE IF NOT EXISTS cao.access_principal_totals (
  agency_id        uuid NOT NULL REFERENCES cao.agencies (id) ON DELETE CASCADE,
  principal        text NOT NULL,
  principal_arn    text,
  principal_name   text,
  first_seen       timestamptz NOT NULL,
  last_seen        timestamptz NOT NULL,
  event_count      bigint NOT NULL,
  source_ip_count  integer NOT NULL,
  source_ips       text[] NOT NULL,
  PRIMARY KEY (agency_id, principal)
);
CREATE INDEX IF NOT EXISTS access_principal_totals_recent
  ON cao.access_principal_totals (agency_id, last_seen DESC, principal);

-- Runs as the writer (the app role when a sync inserts events or an account is deleted; the
-- owner in the purge). Totals of an agency being deleted are not written again: they cascade.
CREATE OR REPLACE FUNCTION cao.refresh_principal_totals() RETURNS trigger
  LANGUAGE plpgsql SET search_path = cao, pg_temp
AS $$
DECLARE
  agencies_touched uuid[];
  principals_touched text[];
BEGIN
  IF TG_OP = 'DELETE' THEN
    SELECT array_agg(agency_id), array_agg(principal) INTO agencies_touched, principals_touched
      FROM (SELECT DISTINCT agency_id, principal FROM old_rows) d;
  ELSE
    SELECT array_agg(agency_id), array_agg(principal) INTO agencies_touched, principals_touched
      FROM (SELECT DISTINCT agency_id, principal FROM new_rows) d;
  END IF;
  DELETE FROM access_principal_totals t
   USING unnest(agencies_touched, principals_touched) AS k(agency_id, principal)
   WHERE t.agency_id = k.agency_id AND t.principal = k.principal;
  INSERT INTO access_principal_totals (agency_id, principal, principal_arn, principal_name,
                                       first_seen, last_seen, event_count, source_ip_count,
                                       source_ips)
  SELECT k.agency_id, k.principal, p.principal_arn, p.principal_name, p.first_seen,
         p.last_seen, p.event_count, ips.n, ips.first
    FROM unnest(agencies_touched, principals_touched) AS k(agency_id, principal)
    CROSS JOIN LATERAL (
      SELECT max(s.principal_arn) AS principal_arn, max(s.principal_name) AS principal_name,
             min(s.first_seen) AS first_seen, max(s.last_seen) AS last_seen,
             sum(s.event_count)::bigint AS event_count
        FROM access_principals s WHERE s.agency_id = k.agency_id AND s.principal = k.principal
    ) p
    CROSS JOIN LATERAL (
      SELECT count(*)::integer AS n,
             coalesce((array_agg(d.source_ip ORDER BY d.source_ip))[1:20], ARRAY[]::text[])
               AS first
        FROM (SELECT DISTINCT i.source_ip FROM access_principal_ips i
               WHERE i.agency_id = k.agency_id AND i.principal = k.principal) d
    ) ips
   WHERE p.event_count IS NOT NULL AND k.agency_id IN (SELECT id FROM agencies);
  RETURN NULL;
END $$;

DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'access_principals_totals_insert') THEN
    INSERT INTO cao.access_principal_totals (agency_id, principal, principal_arn,
                                             principal_name, first_seen, last_seen, event_count,
                                             source_ip_count, source_ips)
    SELECT s.agency_id, s.principal, max(s.principal_arn), max(s.principal_name),
           min(s.first_seen), max(s.last_seen), sum(s.event_count)::bigint,
           coalesce((SELECT count(DISTINCT i.source_ip)::integer FROM cao.access_principal_ips i
                      WHERE i.agency_id = s.agency_id AND i.principal = s.principal), 0),
           coalesce((SELECT (array_agg(DISTINCT i.source_ip))[1:20] FROM cao.access_principal_ips i
                      WHERE i.agency_id = s.agency_id AND i.principal = s.principal),
                    ARRAY[]::text[])
      FROM cao.access_principals s GROUP BY s.agency_id, s.principal
    ON CONFLICT DO NOTHING;
  END IF;
END $$;

CREATE OR REPLACE TRIGGER access_principals_totals_insert AFTER INSERT ON cao.access_principals
  REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION cao.refresh_principal_totals();
CREATE OR REPLACE TRIGGER access_principals_totals_update AFTER UPDATE ON cao.access_principals
  REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION cao.refresh_principal_totals();
CREATE OR REPLACE TRIGGER access_principals_totals_delete AFTER DELETE ON cao.access_principals
  REFERENCING OLD TABLE AS old_rows
  FOR EACH STATEMENT EXECUTE FUNCTION cao.refresh_principal_totals();
CREATE OR REPLACE TRIGGER access_principal_ips_totals_delete AFTER DELETE
  ON cao.access_principal_ips REFERENCING OLD TABLE AS old_rows
  FOR EACH STATEMENT EXECUTE FUNCTION cao.refresh_principal_totals();

-- Row security as on every tenant table. The app role reads them and, through the triggers
-- during a sync, inserts and updates the per-account summaries; it deletes no events, so no
-- per-account summary rows either (the purge runs as the owner, cascades need no grant). The
-- totals it recomputes (delete, insert) when a sync or an account's deletion touches them.
DO $$
DECLARE
  t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['access_principals', 'access_principal_ips',
                           'access_principal_totals']
  LOOP
    EXECUTE format('ALTER TABLE cao.%I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('ALTER TABLE cao.%I FORCE ROW LEVEL SECURITY', t);
    EXECUTE format('DROP POLICY IF EXISTS tenant ON cao.%I', t);
    EXECUTE format('CREATE POLICY tenant ON cao.%I TO cao_app USING (agency_id = cao.current_agency())'
                   ' WITH CHECK (agency_id = cao.current_agency())', t);
    EXECUTE format('DROP POLICY IF EXISTS owner_all ON cao.%I', t);
    EXECUTE format('CREATE POLICY owner_all ON cao.%I TO %I USING (true) WITH CHECK (true)',
                   t, current_user);
  END LOOP;
END $$;
GRANT SELECT, INSERT, UPDATE ON cao.access_principals TO cao_app;
GRANT SELECT, INSERT ON cao.access_principal_ips TO cao_app;
GRANT SELECT, INSERT, DELETE ON cao.access_principal_totals TO cao_app;
