-- Issue 21: cao.access_events partitioned by month of event_time, and the vendor-ledger and
-- new-principal summaries.
--
-- On an upgrade schema.sql runs first and has already moved the unpartitioned table aside (as
-- cao.access_events_unpartitioned, with its indexes, constraints and sequence) and built the
-- partitioned one. Should this script run against the unpartitioned table itself (a database
-- migrated before schema.sql changed), the access section below, restated from schema.sql and
-- idempotent, does the same. Then the rows move in: the month partitions they need are created
-- first (none lands in the default partition), ids are kept (an events page's cursor stays
-- valid), and every summary is rebuilt from them by the insert trigger in that one statement,
-- before the old table is dropped.

-- CloudTrail access metadata: the redaction allowlist, nothing else (functions/sync_cloudtrail).
--
-- Partitioned by month of event_time (issue 21): retention drops whole months
-- (cao.drop_expired_event_partition) instead of deleting rows, and each month's indexes and
-- vacuum stay the size of a month. A partitioned table's unique key must hold its partition
-- key, so the unique key is (account_id, event_id, event_time). An event ID cannot come back
-- with another time: CloudTrail's eventTime is a field of the event record the ID names, and
-- CloudTrail never rewrites a record (log-file integrity validation signs them); and the insert
-- (shared/store/access.py) also skips an event whose ID the account already holds at any time,
-- probing the unique index of each partition with the batch's keys only.
--
-- Partitions are created ahead of need by cao.ensure_event_partitions (SECURITY DEFINER,
-- bounded; the app role has no DDL right): the insert path asks for the months of its batch, the
-- daily purge for this month and the next. A row for a month with no partition lands in the
-- default partition, never an error; creating that month later moves it there. Every partition
-- has row-level security forced with the same policies, and the app role holds no privilege on
-- any partition: it reads and writes only through cao.access_events.
--
-- Upgrade from the unpartitioned table (the release before issue 21): it is moved aside here,
-- with its indexes and sequence, before the partitioned table takes its name;
-- migrations/0011_access_events_partitioned.sql moves its rows in and drops it.
DO $$
DECLARE
  r record;
BEGIN
  IF EXISTS (SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE n.nspname = 'cao' AND c.relname = 'access_events' AND c.relkind = 'r') THEN
    ALTER TABLE cao.access_events RENAME TO access_events_unpartitioned;
    FOR r IN SELECT i.relname FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid
              WHERE x.indrelid = 'cao.access_events_unpartitioned'::regclass LOOP
      EXECUTE format('ALTER INDEX cao.%I RENAME TO %I', r.relname, 'old_' || r.relname);
    END LOOP;
    FOR r IN SELECT conname FROM pg_constraint
              WHERE conrelid = 'cao.access_events_unpartitioned'::regclass
                AND contype IN ('c', 'f') LOOP
      EXECUTE format('ALTER TABLE cao.access_events_unpartitioned RENAME CONSTRAINT %I TO %I',
                     r.conname, 'old_' || r.conname);
    END LOOP;
    ALTER SEQUENCE cao.access_events_id_seq RENAME TO old_access_events_id_seq;
    DROP TRIGGER IF EXISTS access_events_summarise_insert ON cao.access_events_unpartitioned;
    DROP TRIGGER IF EXISTS access_events_summarise_delete ON cao.access_events_unpartitioned;
  END IF;
END $$;

CREATE TABLE IF NOT EXISTS cao.access_events (
  id              bigint GENERATED ALWAYS AS IDENTITY,
  agency_id       uuid NOT NULL,
  account_id      uuid NOT NULL,
  aws_account_id  text NOT NULL CHECK (aws_account_id ~ '^[0-9]{12}$'),
  region          text NOT NULL CHECK (length(region) <= 32),
  event_id        text NOT NULL CHECK (length(event_id) <= 128),
  event_time      timestamptz NOT NULL,
  event_name      text NOT NULL CHECK (length(event_name) <= 128),
  principal_arn   text CHECK (length(principal_arn) <= 2048),
  principal_name  text CHECK (length(principal_name) <= 256),
  source_ip       text CHECK (length(source_ip) <= 256),
  is_vendor       boolean NOT NULL DEFAULT false,
  PRIMARY KEY (id, event_time),
  UNIQUE (account_id, event_id, event_time),
  FOREIGN KEY (agency_id, account_id) REFERENCES cao.accounts (agency_id, id) ON DELETE CASCADE
) PARTITION BY RANGE (event_time);
CREATE TABLE IF NOT EXISTS cao.access_events_default PARTITION OF cao.access_events DEFAULT;
CREATE INDEX IF NOT EXISTS access_events_agency_time
  ON cao.access_events (agency_id, event_time DESC, id DESC);
CREATE INDEX IF NOT EXISTS access_events_account_time
  ON cao.access_events (account_id, event_time DESC, id DESC);
-- Covering: a principal's summary (GET /api/access/principals) is an index-only range.
CREATE INDEX IF NOT EXISTS access_events_principal_summary
  ON cao.access_events (agency_id, principal_arn, event_time)
  INCLUDE (source_ip, principal_name, account_id);
-- Read API: principals CloudTrail names without an ARN (AWS services), and our own sessions
-- (the vendor-access ledger); both partial, so they cost nothing for ordinary events.
CREATE INDEX IF NOT EXISTS access_events_unnamed_principal
  ON cao.access_events (agency_id, principal_name, event_time) WHERE principal_arn IS NULL;
CREATE INDEX IF NOT EXISTS access_events_vendor
  ON cao.access_events (agency_id, event_time DESC) WHERE is_vendor;
-- Read API: newest-first pages filtered by event name or by source IP start at the right rows
-- (a rare IP would otherwise mean walking the agency's whole time index).
CREATE INDEX IF NOT EXISTS access_events_event_name
  ON cao.access_events (agency_id, event_name, event_time DESC, id DESC);
CREATE INDEX IF NOT EXISTS access_events_source_ip
  ON cao.access_events (agency_id, source_ip, event_time DESC, id DESC);

-- Partitions of cao.access_events: row-level security forced with the tenant policies of the
-- parent (a query naming a partition is held to them too), and no privilege for the app role.
CREATE OR REPLACE FUNCTION cao.secure_event_partition(p_partition regclass) RETURNS void
  LANGUAGE plpgsql SET search_path = cao, pg_temp
AS $$
BEGIN
  EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', p_partition);
  EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', p_partition);
  EXECUTE format('DROP POLICY IF EXISTS tenant ON %s', p_partition);
  EXECUTE format('CREATE POLICY tenant ON %s TO cao_app USING (agency_id = cao.current_agency())'
                 ' WITH CHECK (agency_id = cao.current_agency())', p_partition);
  EXECUTE format('DROP POLICY IF EXISTS owner_all ON %s', p_partition);
  EXECUTE format('CREATE POLICY owner_all ON %s TO %I USING (true) WITH CHECK (true)',
                 p_partition, current_user);
  EXECUTE format('REVOKE ALL ON %s FROM cao_app', p_partition);
END $$;
SELECT cao.secure_event_partition('cao.access_events_default');

-- Create the month partitions of cao.access_events that hold the given times, where missing
-- (a month is [first day, first day of the next) in UTC, named access_events_YYYY_MM). Called
-- by the app role before each insert and by the daily purge; cheap when they exist. Bounded:
-- only months from two years back to two months ahead (rows outside go to the default
-- partition), at most 24 per call. Rows of a new month already in the default partition are
-- moved into it: normally none or a few (the insert path always asks first), but a bulk load
-- straight into cao.access_events may have left many there, so a month with more than
-- p_move_limit of them is left in the default partition (still stored and read, never an
-- error) for an operator to move with a NULL limit. Returns the partitions created.
CREATE OR REPLACE FUNCTION cao.ensure_event_partitions(p_times timestamptz[],
                                                       p_move_limit integer DEFAULT 10000)
  RETURNS integer
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = cao, pg_temp SET TimeZone = 'UTC'
AS $$
DECLARE
  m timestamptz;
  part text;
  created integer := 0;
  waiting bigint;
BEGIN
  FOR m IN
    SELECT DISTINCT date_trunc('month', t) FROM unnest(p_times) AS t
     WHERE t >= date_trunc('month', now() - interval '2 years')
       AND t < date_trunc('month', now()) + interval '3 months'
     ORDER BY 1 LIMIT 24
  LOOP
    part := 'access_events_' || to_char(m, 'YYYY_MM');
    CONTINUE WHEN to_regclass('cao.' || part) IS NOT NULL;
    -- Two creators at once: the second waits here, then finds the partition made.
    LOCK TABLE access_events IN SHARE ROW EXCLUSIVE MODE;
    CONTINUE WHEN to_regclass('cao.' || part) IS NOT NULL;
    IF p_move_limit IS NOT NULL THEN
      SELECT count(*) INTO waiting FROM (
        SELECT 1 FROM access_events_default
         WHERE event_time >= m AND event_time < m + interval '1 month'
         LIMIT p_move_limit + 1) d;
      IF waiting > p_move_limit THEN
        RAISE WARNING 'cao.access_events_default holds more than % events of %: its partition is'
                      ' left to an operator', p_move_limit, to_char(m, 'YYYY-MM');
        CONTINUE;
      END IF;
    END IF;
    CREATE TEMP TABLE IF NOT EXISTS cao_moving_events (LIKE access_events) ON COMMIT DROP;
    -- Statement triggers fire only for statements on cao.access_events itself: moving rows
    -- between partitions leaves the summaries as they are, and right.
    WITH moved AS (
      DELETE FROM access_events_default
       WHERE event_time >= m AND event_time < m + interval '1 month' RETURNING *
    )
    INSERT INTO cao_moving_events SELECT * FROM moved;
    EXECUTE format('CREATE TABLE cao.%I PARTITION OF cao.access_events'
                   ' FOR VALUES FROM (%L) TO (%L)', part, m, m + interval '1 month');
    PERFORM secure_event_partition(format('cao.%I', part)::regclass);
    EXECUTE format('INSERT INTO cao.%I OVERRIDING SYSTEM VALUE SELECT * FROM cao_moving_events',
                   part);
    TRUNCATE cao_moving_events;
    created := created + 1;
  END LOOP;
  RETURN created;
END $$;

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

-- Read API: the vendor-access ledger (GET /api/access/vendor), our own sessions (events marked
-- is_vendor) per account x session name (the principal's name, else its ARN), with their
-- distinct API calls and source IPs. Kept like the principal summaries, by the same triggers.
CREATE TABLE IF NOT EXISTS cao.access_vendor_sessions (
  agency_id       uuid NOT NULL,
  account_id      uuid NOT NULL,
  session_name    text NOT NULL,
  aws_account_id  text NOT NULL,
  principal_arn   text,
  first_event     timestamptz NOT NULL,
  last_event      timestamptz NOT NULL,
  event_count     bigint NOT NULL CHECK (event_count > 0),
  PRIMARY KEY (account_id, session_name),
  FOREIGN KEY (agency_id, account_id) REFERENCES cao.accounts (agency_id, id) ON DELETE CASCADE
);
-- The ledger's order: latest first, then the key the API's cursor carries.
CREATE INDEX IF NOT EXISTS access_vendor_sessions_recent
  ON cao.access_vendor_sessions (agency_id, last_event DESC,
                                 ((account_id::text || '/' || session_name)));
CREATE INDEX IF NOT EXISTS access_vendor_sessions_account_recent
  ON cao.access_vendor_sessions (account_id, last_event DESC,
                                 ((account_id::text || '/' || session_name)));
CREATE TABLE IF NOT EXISTS cao.access_vendor_event_names (
  agency_id     uuid NOT NULL,
  account_id    uuid NOT NULL,
  session_name  text NOT NULL,
  event_name    text NOT NULL,
  PRIMARY KEY (account_id, session_name, event_name),
  FOREIGN KEY (agency_id, account_id) REFERENCES cao.accounts (agency_id, id) ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS cao.access_vendor_ips (
  agency_id     uuid NOT NULL,
  account_id    uuid NOT NULL,
  session_name  text NOT NULL,
  source_ip     text NOT NULL,
  PRIMARY KEY (account_id, session_name, source_ip),
  FOREIGN KEY (agency_id, account_id) REFERENCES cao.accounts (agency_id, id) ON DELETE CASCADE
);
-- GET /api/access/new-principals: principals by first appearance, per account and per agency.
CREATE INDEX IF NOT EXISTS access_principals_account_first
  ON cao.access_principals (account_id, first_seen);

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
  IF EXISTS (SELECT 1 FROM new_rows WHERE is_vendor) THEN
    INSERT INTO access_vendor_event_names (agency_id, account_id, session_name, event_name)
    SELECT DISTINCT agency_id, account_id, coalesce(principal_name, principal_arn, ''), event_name
      FROM new_rows WHERE is_vendor ORDER BY 2, 3, 4
    ON CONFLICT DO NOTHING;
    INSERT INTO access_vendor_ips (agency_id, account_id, session_name, source_ip)
    SELECT DISTINCT agency_id, account_id, coalesce(principal_name, principal_arn, ''), source_ip
      FROM new_rows WHERE is_vendor AND source_ip IS NOT NULL ORDER BY 2, 3, 4
    ON CONFLICT DO NOTHING;
    INSERT INTO access_vendor_sessions AS v (agency_id, account_id, session_name, aws_account_id,
                                             principal_arn, first_event, last_event, event_count)
    SELECT agency_id, account_id, coalesce(principal_name, principal_arn, ''),
           max(aws_account_id), max(principal_arn), min(event_time), max(event_time), count(*)
      FROM new_rows WHERE is_vendor GROUP BY 1, 2, 3 ORDER BY 2, 3
    ON CONFLICT (account_id, session_name) DO UPDATE
       SET aws_account_id = greatest(v.aws_account_id, EXCLUDED.aws_account_id),
           principal_arn = greatest(v.principal_arn, EXCLUDED.principal_arn),
           first_event = least(v.first_event, EXCLUDED.first_event),
           last_event = greatest(v.last_event, EXCLUDED.last_event),
           event_count = v.event_count + EXCLUDED.event_count;
  END IF;
  RETURN NULL;
END $$;

-- Recompute the summaries of the given account x principal pairs from the events that remain
-- (after a delete or a dropped partition: a principal's first event, its names and its IPs may
-- all have gone). A principal is matched as two index ranges (by ARN; by name where there is no
-- ARN), the same pairs as coalesce(principal_arn, principal_name). Runs as the caller.
CREATE OR REPLACE FUNCTION cao.resummarise_principals(p_accounts uuid[], p_principals text[])
  RETURNS void LANGUAGE plpgsql SET search_path = cao, pg_temp
AS $$
BEGIN
  DELETE FROM access_principals s
   USING unnest(p_accounts, p_principals) AS k(account_id, principal)
   WHERE s.account_id = k.account_id AND s.principal = k.principal;
  DELETE FROM access_principal_ips s
   USING unnest(p_accounts, p_principals) AS k(account_id, principal)
   WHERE s.account_id = k.account_id AND s.principal = k.principal;
  WITH k AS (
    SELECT DISTINCT c.agency_id, k.account_id, k.principal AS key
      FROM unnest(p_accounts, p_principals) AS k(account_id, principal)
      JOIN accounts c ON c.id = k.account_id
     WHERE k.principal IS NOT NULL
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
END $$;

-- The same for vendor sessions (account x session name), from the account's vendor events.
CREATE OR REPLACE FUNCTION cao.resummarise_vendor_sessions(p_accounts uuid[], p_sessions text[])
  RETURNS void LANGUAGE plpgsql SET search_path = cao, pg_temp
AS $$
BEGIN
  DELETE FROM access_vendor_sessions s
   USING unnest(p_accounts, p_sessions) AS k(account_id, session_name)
   WHERE s.account_id = k.account_id AND s.session_name = k.session_name;
  DELETE FROM access_vendor_event_names s
   USING unnest(p_accounts, p_sessions) AS k(account_id, session_name)
   WHERE s.account_id = k.account_id AND s.session_name = k.session_name;
  DELETE FROM access_vendor_ips s
   USING unnest(p_accounts, p_sessions) AS k(account_id, session_name)
   WHERE s.account_id = k.account_id AND s.session_name = k.session_name;
  CREATE TEMP TABLE IF NOT EXISTS cao_vendor_remaining ON COMMIT DROP AS
    SELECT e.* FROM access_events e WITH NO DATA;
  INSERT INTO cao_vendor_remaining
  SELECT e.* FROM (SELECT DISTINCT c.agency_id, k.account_id, k.session_name
                     FROM unnest(p_accounts, p_sessions) AS k(account_id, session_name)
                     JOIN accounts c ON c.id = k.account_id) k
    JOIN access_events e ON e.agency_id = k.agency_id AND e.account_id = k.account_id
     AND e.is_vendor AND coalesce(e.principal_name, e.principal_arn, '') = k.session_name;
  INSERT INTO access_vendor_sessions (agency_id, account_id, session_name, aws_account_id,
                                      principal_arn, first_event, last_event, event_count)
  SELECT agency_id, account_id, coalesce(principal_name, principal_arn, ''), max(aws_account_id),
         max(principal_arn), min(event_time), max(event_time), count(*)
    FROM cao_vendor_remaining GROUP BY 1, 2, 3;
  INSERT INTO access_vendor_event_names (agency_id, account_id, session_name, event_name)
  SELECT DISTINCT agency_id, account_id, coalesce(principal_name, principal_arn, ''), event_name
    FROM cao_vendor_remaining;
  INSERT INTO access_vendor_ips (agency_id, account_id, session_name, source_ip)
  SELECT DISTINCT agency_id, account_id, coalesce(principal_name, principal_arn, ''), source_ip
    FROM cao_vendor_remaining WHERE source_ip IS NOT NULL;
  TRUNCATE cao_vendor_remaining;
END $$;

-- Delete: recompute the touched pairs from the events that remain. Rows of an account that is
-- itself being deleted are skipped: their summaries cascade (so an account's or agency's
-- deletion, the app role's only way to delete events, returns at once, and the app role needs
-- no DELETE on the summaries).
CREATE OR REPLACE FUNCTION cao.summarise_deleted_events() RETURNS trigger
  LANGUAGE plpgsql SET search_path = cao, pg_temp
AS $$
DECLARE
  accts uuid[];
  keys text[];
BEGIN
  SELECT array_agg(account_id), array_agg(principal) INTO accts, keys
    FROM (SELECT DISTINCT o.account_id, coalesce(o.principal_arn, o.principal_name) AS principal
            FROM old_rows o WHERE o.account_id IN (SELECT id FROM accounts)) d;
  IF accts IS NULL THEN
    RETURN NULL;
  END IF;
  PERFORM resummarise_principals(accts, keys);
  SELECT array_agg(account_id), array_agg(session_name) INTO accts, keys
    FROM (SELECT DISTINCT o.account_id, coalesce(o.principal_name, o.principal_arn, '')
                          AS session_name
            FROM old_rows o WHERE o.is_vendor AND o.account_id IN (SELECT id FROM accounts)) d;
  IF accts IS NOT NULL THEN
    PERFORM resummarise_vendor_sessions(accts, keys);
  END IF;
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
CREATE INDEX IF NOT EXISTS access_principal_totals_first
  ON cao.access_principal_totals (agency_id, first_seen DESC, principal);

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
                           'access_principal_totals', 'access_vendor_sessions',
                           'access_vendor_event_names', 'access_vendor_ips']
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
GRANT SELECT, INSERT, UPDATE ON cao.access_vendor_sessions TO cao_app;
GRANT SELECT, INSERT ON cao.access_vendor_event_names, cao.access_vendor_ips TO cao_app;

-- The partitioned parent's row-level security and grants (schema.sql's tenant-table loop).
ALTER TABLE cao.access_events ENABLE ROW LEVEL SECURITY;
ALTER TABLE cao.access_events FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS tenant ON cao.access_events;
CREATE POLICY tenant ON cao.access_events TO cao_app USING (agency_id = cao.current_agency())
  WITH CHECK (agency_id = cao.current_agency());
DO $$
BEGIN
  EXECUTE 'DROP POLICY IF EXISTS owner_all ON cao.access_events';
  EXECUTE format('CREATE POLICY owner_all ON cao.access_events TO %I USING (true) WITH CHECK (true)',
                 current_user);
END $$;
GRANT SELECT, INSERT, UPDATE, DELETE ON cao.access_events TO cao_app;
REVOKE ALL ON FUNCTION cao.secure_event_partition(regclass), cao.ensure_event_partitions(timestamptz[], integer),
  cao.resummarise_principals(uuid[], text[]), cao.resummarise_vendor_sessions(uuid[], text[]),
  cao.summarise_inserted_events(), cao.summarise_deleted_events(),
  cao.refresh_principal_totals() FROM PUBLIC;
GRANT EXECUTE ON FUNCTION cao.ensure_event_partitions(timestamptz[], integer) TO cao_app;

-- The rows.
DO $$
DECLARE
  months timestamptz[];
BEGIN
  IF to_regclass('cao.access_events_unpartitioned') IS NULL THEN
    RETURN;
  END IF;
  TRUNCATE cao.access_principal_ips, cao.access_principals, cao.access_principal_totals,
           cao.access_vendor_sessions, cao.access_vendor_event_names, cao.access_vendor_ips;
  SELECT array_agg(DISTINCT date_trunc('month', event_time AT TIME ZONE 'UTC') AT TIME ZONE 'UTC')
    INTO months FROM cao.access_events_unpartitioned;
  IF months IS NOT NULL THEN
    PERFORM cao.ensure_event_partitions(months, NULL);
  END IF;
  INSERT INTO cao.access_events OVERRIDING SYSTEM VALUE
  SELECT id, agency_id, account_id, aws_account_id, region, event_id, event_time, event_name,
         principal_arn, principal_name, source_ip, is_vendor
    FROM cao.access_events_unpartitioned ORDER BY event_time;
  PERFORM setval(pg_get_serial_sequence('cao.access_events', 'id'),
                 coalesce((SELECT max(id) FROM cao.access_events), 0) + 1, false);
  DROP TABLE cao.access_events_unpartitioned;
END $$;
