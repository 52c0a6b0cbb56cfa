-- CloudAgencyOps schema: all DDL, idempotent (applying it twice changes nothing).
--
-- Applied by the owner role (DATABASE_OWNER_URL; on Neon the direct, non-pooled URL) with
-- `python -m shared.schema apply`. The owner owns every table and SECURITY DEFINER function.
-- The app logs in as `cao_app`: no superuser, no BYPASSRLS, owns nothing, and sees tenant rows
-- only through row-level security keyed on the transaction-local setting `app.agency_id`
-- (`NULLIF(current_setting('app.agency_id', true), '')`: a transaction that set no agency sees
-- no rows). Work that is cross-tenant by nature goes only through the named SECURITY DEFINER
-- functions at the end of this file.
--
-- Changes after a release go into migrations/NNNN_*.sql as well (see shared/schema.py).

DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'cao_app') THEN
    CREATE ROLE cao_app NOLOGIN NOSUPERUSER NOBYPASSRLS NOCREATEDB NOCREATEROLE;
  END IF;
END $$;

CREATE SCHEMA IF NOT EXISTS cao;
REVOKE ALL ON SCHEMA cao FROM PUBLIC;
GRANT USAGE ON SCHEMA cao TO cao_app;

-- Helper: the current tenant, or NULL when the transaction set none.
CREATE OR REPLACE FUNCTION cao.current_agency() RETURNS uuid
  LANGUAGE sql STABLE
  AS $$ SELECT NULLIF(current_setting('app.agency_id', true), '')::uuid $$;

-- ---------------------------------------------------------------------------------------------
-- Agencies and their credentials
-- ---------------------------------------------------------------------------------------------

CREATE TABLE IF NOT EXISTS cao.agencies (
  id                      uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  name                    text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  contact_email           text NOT NULL CHECK (length(contact_email) BETWEEN 3 AND 320),
  created_at              timestamptz NOT NULL DEFAULT now(),
  -- Settings.
  default_regions         text[] NOT NULL DEFAULT ARRAY['us-east-1']::text[]
                            CHECK (cardinality(default_regions) BETWEEN 1 AND 32),
  cloudtrail_retention_days integer NOT NULL DEFAULT 90
                            CHECK (cloudtrail_retention_days BETWEEN 1 AND 365),
  cloudtrail_backfill_days  integer NOT NULL DEFAULT 14
                            CHECK (cloudtrail_backfill_days BETWEEN 1 AND 90),
  -- Billing (Polar). Only webhooks and operator commands change these.
  billing_status          text NOT NULL DEFAULT 'trialing' CHECK (billing_status IN (
                            'trialing', 'active', 'past_due', 'canceled', 'revoked',
                            'incomplete', 'unpaid', 'paused')),
  trial_ends_at           timestamptz NOT NULL DEFAULT now() + interval '14 days',
  plan                    text NOT NULL DEFAULT 'trial' CHECK (length(plan) <= 64),
  polar_customer_id       text CHECK (length(polar_customer_id) <= 128),
  polar_subscription_id   text CHECK (length(polar_subscription_id) <= 128),
  current_period_end      timestamptz,
  billing_event_at        timestamptz
);

-- The ExternalId lives here and nowhere else. One row per generated value; an agency has one
-- current value; accounts reference the value they were verified with (rotation).
CREATE TABLE IF NOT EXISTS cao.external_ids (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  agency_id   uuid NOT NULL REFERENCES cao.agencies(id) ON DELETE CASCADE,
  value       text NOT NULL UNIQUE
                CHECK (length(value) BETWEEN 2 AND 1224 AND value ~ '^[A-Za-z0-9_+=,.@:/-]+$'),
  created_at  timestamptz NOT NULL DEFAULT now(),
  retired_at  timestamptz,
  UNIQUE (agency_id, id)
);
CREATE UNIQUE INDEX IF NOT EXISTS external_ids_one_current
  ON cao.external_ids (agency_id) WHERE retired_at IS NULL;

CREATE TABLE IF NOT EXISTS cao.api_keys (
  id            uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  agency_id     uuid NOT NULL REFERENCES cao.agencies(id) ON DELETE CASCADE,
  name          text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
  role          text NOT NULL CHECK (role IN ('admin', 'member')),
  key_hash      bytea NOT NULL UNIQUE CHECK (length(key_hash) = 32),
  key_prefix    text NOT NULL CHECK (length(key_prefix) <= 16),
  created_at    timestamptz NOT NULL DEFAULT now(),
  created_by    uuid,
  last_used_at  timestamptz,
  revoked_at    timestamptz
);
CREATE INDEX IF NOT EXISTS api_keys_agency ON cao.api_keys (agency_id);

-- ---------------------------------------------------------------------------------------------
-- Client accounts
-- ---------------------------------------------------------------------------------------------

CREATE TABLE IF NOT EXISTS cao.accounts (
  id                  uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  agency_id           uuid NOT NULL REFERENCES cao.agencies(id) ON DELETE CASCADE,
  aws_account_id      text NOT NULL CHECK (aws_account_id ~ '^[0-9]{12}$'),
  role_arn            text NOT NULL CHECK (length(role_arn) <= 2048),
  alias               text CHECK (length(alias) <= 100),
  regions             text[] CHECK (regions IS NULL OR cardinality(regions) BETWEEN 1 AND 32),
  -- The ExternalId this account was last verified with (see external_ids): one of its own
  -- agency's (the foreign key names the agency too).
  external_id_id      uuid NOT NULL,
  status              text NOT NULL DEFAULT 'active' CHECK (status IN (
                        'active', 'needs_trust_update', 'access_denied', 'paused',
                        'cost_explorer_not_enabled', 'unsafe_trust_policy', 'unreachable')),
  status_message      text CHECK (length(status_message) <= 1000),
  is_management       boolean NOT NULL DEFAULT false,
  linked_at           timestamptz NOT NULL DEFAULT now(),
  verified_at         timestamptz,
  consecutive_denials integer NOT NULL DEFAULT 0,
  UNIQUE (agency_id, role_arn),
  UNIQUE (agency_id, id),
  FOREIGN KEY (agency_id, external_id_id) REFERENCES cao.external_ids (agency_id, id)
);
CREATE INDEX IF NOT EXISTS accounts_agency ON cao.accounts (agency_id, linked_at);
CREATE INDEX IF NOT EXISTS accounts_aws_account ON cao.accounts (aws_account_id);

-- Members of an organization found through a management account's ListAccounts: ID and name
-- only (never their email).
CREATE TABLE IF NOT EXISTS cao.discovered_accounts (
  agency_id         uuid NOT NULL REFERENCES cao.agencies(id) ON DELETE CASCADE,
  management_id     uuid NOT NULL,
  aws_account_id    text NOT NULL CHECK (aws_account_id ~ '^[0-9]{12}$'),
  name              text CHECK (length(name) <= 200),
  discovered_at     timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (management_id, aws_account_id),
  FOREIGN KEY (agency_id, management_id) REFERENCES cao.accounts (agency_id, id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS discovered_agency ON cao.discovered_accounts (agency_id);

-- ---------------------------------------------------------------------------------------------
-- Synced data
-- ---------------------------------------------------------------------------------------------

-- Aggregated cost: account x service x month x metric. `account_id` is the linked account the
-- row was synced through; `usage_account_id` the account it is attributed to (a member, when
-- synced through its organization's management account).
CREATE TABLE IF NOT EXISTS cao.cost_rows (
  agency_id         uuid NOT NULL,
  account_id        uuid NOT NULL,
  usage_account_id  text NOT NULL CHECK (usage_account_id ~ '^[0-9]{12}$'),
  month             date NOT NULL CHECK (extract(day FROM month) = 1),
  service           text NOT NULL CHECK (length(service) BETWEEN 1 AND 256),
  metric            text NOT NULL CHECK (metric IN ('UnblendedCost', 'AmortizedCost',
                                                    'NetUnblendedCost')),
  amount            numeric(20, 10) NOT NULL,
  currency          text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
  estimated         boolean NOT NULL,
  synced_at         timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (account_id, usage_account_id, month, service, metric),
  FOREIGN KEY (agency_id, account_id) REFERENCES cao.accounts (agency_id, id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS cost_rows_agency_month ON cao.cost_rows (agency_id, month);
-- Read API: cost reports (one metric, a month range) read from this index alone (index-only
-- scan), not from the heap rows of all three metrics.
CREATE INDEX IF NOT EXISTS cost_rows_report ON cao.cost_rows (agency_id, metric, month)
  INCLUDE (service, usage_account_id, account_id, currency, amount, estimated);

-- Which months of an account have been pulled, and whether AWS still calls them Estimated.
CREATE TABLE IF NOT EXISTS cao.cost_months (
  agency_id   uuid NOT NULL,
  account_id  uuid NOT NULL,
  month       date NOT NULL,
  estimated   boolean NOT NULL,
  synced_at   timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (account_id, month),
  FOREIGN KEY (agency_id, account_id) REFERENCES cao.accounts (agency_id, id) ON DELETE CASCADE
);

-- An unfinished Cost Explorer pull of a linked account (functions/sync_costs, shared/store/costs:
-- PullState): the exact request of the part in progress and its last NextPageToken (a retry
-- resumes there: no page is bought twice), the months not complete yet, and the rows bought of
-- them so far (cost_pull_rows). `groups`/`accounts_per_request`: the account's pulls are split
-- by linked-account groups (a month needing more pages than one request may buy).
CREATE TABLE IF NOT EXISTS cao.cost_pulls (
  agency_id             uuid NOT NULL,
  account_id            uuid NOT NULL PRIMARY KEY,
  request               jsonb,
  next_token            text CHECK (length(next_token) <= 8192),
  pending               jsonb NOT NULL DEFAULT '{}',
  month_pages           integer NOT NULL DEFAULT 0,
  first_month           date,
  groups                jsonb,
  part                  integer NOT NULL DEFAULT 0,
  accounts_per_request  integer CHECK (accounts_per_request > 0),
  updated_at            timestamptz NOT NULL DEFAULT now(),
  FOREIGN KEY (agency_id, account_id) REFERENCES cao.accounts (agency_id, id) ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS cao.cost_pull_rows (
  agency_id         uuid NOT NULL,
  account_id        uuid NOT NULL,
  usage_account_id  text NOT NULL CHECK (usage_account_id ~ '^[0-9]{12}$'),
  month             date NOT NULL,
  service           text NOT NULL,
  metric            text NOT NULL,
  amount            numeric(20, 10) NOT NULL,
  currency          text NOT NULL,
  estimated         boolean NOT NULL,
  PRIMARY KEY (account_id, usage_account_id, month, service, metric),
  FOREIGN KEY (agency_id, account_id) REFERENCES cao.accounts (agency_id, id) ON DELETE CASCADE
);

-- Read API: cost_rows summed over services, per (linked account, usage account, month, metric,
-- currency). Kept by statement triggers on cost_rows, in the same transaction as the rows, so a
-- report by account or by month reads one row per account-month instead of one per service
-- (the 50 ms read budget). Nothing writes it but the triggers; it holds nothing cost_rows lacks.
CREATE TABLE IF NOT EXISTS cao.cost_account_months (
  agency_id         uuid NOT NULL,
  account_id        uuid NOT NULL,
  usage_account_id  text NOT NULL,
  month             date NOT NULL,
  metric            text NOT NULL,
  currency          text NOT NULL,
  amount            numeric(30, 10) NOT NULL,
  estimated         boolean NOT NULL,
  PRIMARY KEY (account_id, usage_account_id, month, metric, currency),
  FOREIGN KEY (agency_id, account_id) REFERENCES cao.accounts (agency_id, id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS cost_account_months_report
  ON cao.cost_account_months (agency_id, metric, month)
  INCLUDE (usage_account_id, account_id, currency, amount, estimated);

-- Recompute the totals of every (account, usage account, month, metric) the statement touched
-- from cost_rows: delete them, insert them again, so a key whose rows all went disappears. Runs
-- as the writer (row-level security applies: a tenant recomputes only its own keys).
CREATE OR REPLACE FUNCTION cao.refresh_cost_account_months() RETURNS trigger
  LANGUAGE plpgsql SET search_path = cao, pg_temp
AS $$
BEGIN
  IF TG_OP IN ('INSERT', 'UPDATE') THEN
    DELETE FROM cost_account_months t
     USING (SELECT DISTINCT account_id, usage_account_id, month, metric FROM new_rows) k
     WHERE t.account_id = k.account_id AND t.usage_account_id = k.usage_account_id
       AND t.month = k.month AND t.metric = k.metric;
    INSERT INTO cost_account_months (agency_id, account_id, usage_account_id, month, metric,
                                     currency, amount, estimated)
    SELECT r.agency_id, r.account_id, r.usage_account_id, r.month, r.metric, r.currency,
           sum(r.amount), bool_or(r.estimated)
      FROM cost_rows r
      JOIN (SELECT DISTINCT account_id, usage_account_id, month, metric FROM new_rows) k
        USING (account_id, usage_account_id, month, metric)
     GROUP BY 1, 2, 3, 4, 5, 6;
  END IF;
  IF TG_OP IN ('DELETE', 'UPDATE') THEN
    DELETE FROM cost_account_months t
     USING (SELECT DISTINCT account_id, usage_account_id, month, metric FROM old_rows) k
     WHERE t.account_id = k.account_id AND t.usage_account_id = k.usage_account_id
       AND t.month = k.month AND t.metric = k.metric;
    INSERT INTO cost_account_months (agency_id, account_id, usage_account_id, month, metric,
                                     currency, amount, estimated)
    SELECT r.agency_id, r.account_id, r.usage_account_id, r.month, r.metric, r.currency,
           sum(r.amount), bool_or(r.estimated)
      FROM cost_rows r
      JOIN (SELECT DISTINCT account_id, usage_account_id, month, metric FROM old_rows) k
        USING (account_id, usage_account_id, month, metric)
     GROUP BY 1, 2, 3, 4, 5, 6;
  END IF;
  RETURN NULL;
END $$;

-- First apply over existing rows (an upgrade): fill the totals once, before the triggers exist.
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'cost_rows_totals_insert') THEN
    INSERT INTO cao.cost_account_months (agency_id, account_id, usage_account_id, month, metric,
                                         currency, amount, estimated)
    SELECT agency_id, account_id, usage_account_id, month, metric, currency, sum(amount),
           bool_or(estimated)
      FROM cao.cost_rows GROUP BY 1, 2, 3, 4, 5, 6
    ON CONFLICT DO NOTHING;
  END IF;
END $$;

CREATE OR REPLACE TRIGGER cost_rows_totals_insert AFTER INSERT ON cao.cost_rows
  REFERENCING NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION cao.refresh_cost_account_months();
CREATE OR REPLACE TRIGGER cost_rows_totals_update AFTER UPDATE ON cao.cost_rows
  REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
  FOR EACH STATEMENT EXECUTE FUNCTION cao.refresh_cost_account_months();
CREATE OR REPLACE TRIGGER cost_rows_totals_delete AFTER DELETE ON cao.cost_rows
  REFERENCING OLD TABLE AS old_rows
  FOR EACH STATEMENT EXECUTE FUNCTION cao.refresh_cost_account_months();

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

-- ---------------------------------------------------------------------------------------------
-- Sync job model (owned by functions/sync_costs; reused by functions/sync_cloudtrail)
-- ---------------------------------------------------------------------------------------------

CREATE TABLE IF NOT EXISTS cao.sync_jobs (
  id                    uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  agency_id             uuid NOT NULL,
  account_id            uuid NOT NULL,
  kind                  text NOT NULL CHECK (kind IN ('costs', 'cloudtrail', 'verify')),
  next_run_at           timestamptz NOT NULL DEFAULT now(),
  lease_token           uuid,
  lease_expires_at      timestamptz,
  deliveries            integer NOT NULL DEFAULT 0,
  state                 text NOT NULL DEFAULT 'idle' CHECK (state IN (
                          'idle', 'queued', 'running', 'failed', 'paused')),
  last_success_at       timestamptz,
  last_error_class      text CHECK (length(last_error_class) <= 64),
  last_error_at         timestamptz,
  consecutive_failures  integer NOT NULL DEFAULT 0,
  requested_at          timestamptz,
  UNIQUE (account_id, kind),
  FOREIGN KEY (agency_id, account_id) REFERENCES cao.accounts (agency_id, id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS sync_jobs_due ON cao.sync_jobs (kind, next_run_at);
CREATE INDEX IF NOT EXISTS sync_jobs_agency ON cao.sync_jobs (agency_id);

-- CloudTrail read position per (account, region, pass): the end of the last window read
-- completely. Pass 'live' follows now; 'sweep' re-reads each moment once it is hours old, for
-- late deliveries. partial_end: the end of a window a run read only partly, from partial_end
-- down to partial_from (inclusive), starting at partial_since; the next run reads the rest, then
-- moves position there. See functions/sync_cloudtrail/windows.py.
CREATE TABLE IF NOT EXISTS cao.sync_cursors (
  agency_id     uuid NOT NULL,
  account_id    uuid NOT NULL,
  region        text NOT NULL CHECK (length(region) <= 32),
  position      timestamptz NOT NULL,
  updated_at    timestamptz NOT NULL DEFAULT now(),
  partial_end   timestamptz,
  pass          text NOT NULL DEFAULT 'live' CHECK (pass IN ('live', 'sweep')),
  partial_from  timestamptz,
  partial_since timestamptz,
  PRIMARY KEY (account_id, region, pass),
  FOREIGN KEY (agency_id, account_id) REFERENCES cao.accounts (agency_id, id) ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS cao.sync_runs (
  id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  agency_id       uuid NOT NULL,
  account_id      uuid NOT NULL,
  kind            text NOT NULL CHECK (kind IN ('costs', 'cloudtrail', 'verify')),
  started_at      timestamptz NOT NULL DEFAULT now(),
  finished_at     timestamptz,
  -- abandoned: its delivery died (lease expired unrenewed); closed when the job is next claimed
  status          text NOT NULL DEFAULT 'running' CHECK (status IN (
                    'running', 'succeeded', 'partial', 'failed', 'superseded', 'abandoned')),
  api_calls       integer NOT NULL DEFAULT 0,
  ce_requests     integer NOT NULL DEFAULT 0,
  ce_cost_usd     numeric(12, 2) NOT NULL DEFAULT 0,
  months          date[],
  rows_written    integer NOT NULL DEFAULT 0,
  error_class     text CHECK (length(error_class) <= 64),
  FOREIGN KEY (agency_id, account_id) REFERENCES cao.accounts (agency_id, id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS sync_runs_account ON cao.sync_runs (account_id, kind, started_at DESC);
CREATE INDEX IF NOT EXISTS sync_runs_agency ON cao.sync_runs (agency_id, started_at);
-- The runs a claim closes as abandoned (cao.sync_runs of a job still 'running'): few, found at once.
CREATE INDEX IF NOT EXISTS sync_runs_running ON cao.sync_runs (account_id, kind) WHERE status = 'running';

-- ---------------------------------------------------------------------------------------------
-- Runbooks, audit
-- ---------------------------------------------------------------------------------------------

CREATE TABLE IF NOT EXISTS cao.runbooks (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  agency_id   uuid NOT NULL REFERENCES cao.agencies(id) ON DELETE CASCADE,
  account_id  uuid,
  title       text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
  body        text NOT NULL CHECK (length(body) <= 65536),
  version     integer NOT NULL DEFAULT 1,
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  UNIQUE (agency_id, id),
  FOREIGN KEY (agency_id, account_id) REFERENCES cao.accounts (agency_id, id) ON DELETE SET NULL (account_id)
);
CREATE INDEX IF NOT EXISTS runbooks_agency ON cao.runbooks (agency_id, updated_at DESC);

CREATE TABLE IF NOT EXISTS cao.runbook_versions (
  agency_id   uuid NOT NULL,
  runbook_id  uuid NOT NULL,
  version     integer NOT NULL,
  account_id  uuid,
  title       text NOT NULL,
  body        text NOT NULL,
  saved_at    timestamptz NOT NULL DEFAULT now(),
  PRIMARY KEY (runbook_id, version),
  FOREIGN KEY (agency_id, runbook_id) REFERENCES cao.runbooks (agency_id, id) ON DELETE CASCADE
);

CREATE TABLE IF NOT EXISTS cao.audit_log (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  agency_id   uuid NOT NULL REFERENCES cao.agencies(id) ON DELETE CASCADE,
  at          timestamptz NOT NULL DEFAULT now(),
  actor       text NOT NULL CHECK (length(actor) <= 100),
  action      text NOT NULL CHECK (length(action) <= 64),
  target      text CHECK (length(target) <= 200),
  details     jsonb NOT NULL DEFAULT '{}'::jsonb CHECK (pg_column_size(details) <= 8192)
);
CREATE INDEX IF NOT EXISTS audit_agency_time ON cao.audit_log (agency_id, at DESC);

-- ---------------------------------------------------------------------------------------------
-- People (functions/people): the agency's users, their passkeys, browser sessions, invitations
-- and recovery links, and enrolments (the one-time ceremony that registers a first passkey).
-- Nothing here can sign in by itself: passkeys are public keys; session, invitation, recovery
-- and enrolment tokens are stored as SHA-256 only.
-- ---------------------------------------------------------------------------------------------

CREATE TABLE IF NOT EXISTS cao.users (
  id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  agency_id        uuid NOT NULL REFERENCES cao.agencies(id) ON DELETE CASCADE,
  email            text NOT NULL CHECK (length(email) BETWEEN 3 AND 320),
  name             text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  role             text NOT NULL CHECK (role IN ('admin', 'member')),
  created_at       timestamptz NOT NULL DEFAULT now(),
  last_sign_in_at  timestamptz,
  UNIQUE (agency_id, id)
);
-- An email is one person across the product (case-insensitive).
CREATE UNIQUE INDEX IF NOT EXISTS users_email ON cao.users (lower(email));
CREATE INDEX IF NOT EXISTS users_agency ON cao.users (agency_id, created_at);

CREATE TABLE IF NOT EXISTS cao.passkeys (
  id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  agency_id        uuid NOT NULL,
  user_id          uuid NOT NULL,
  credential_id    bytea NOT NULL UNIQUE CHECK (length(credential_id) BETWEEN 16 AND 1023),
  public_key       bytea NOT NULL CHECK (length(public_key) <= 2048),
  sign_count       bigint NOT NULL DEFAULT 0 CHECK (sign_count >= 0),
  transports       text[] NOT NULL DEFAULT ARRAY[]::text[] CHECK (cardinality(transports) <= 8),
  name             text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
  created_at       timestamptz NOT NULL DEFAULT now(),
  last_used_at     timestamptz,
  UNIQUE (agency_id, id),
  FOREIGN KEY (agency_id, user_id) REFERENCES cao.users (agency_id, id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS passkeys_user ON cao.passkeys (agency_id, user_id);

-- A session ends with its user and with the passkey that opened it (ON DELETE CASCADE).
CREATE TABLE IF NOT EXISTS cao.sessions (
  id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  agency_id        uuid NOT NULL,
  user_id          uuid NOT NULL,
  passkey_id       uuid NOT NULL,
  token_hash       bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
  created_at       timestamptz NOT NULL,
  last_seen_at     timestamptz NOT NULL,
  expires_at       timestamptz NOT NULL,
  FOREIGN KEY (agency_id, user_id) REFERENCES cao.users (agency_id, id) ON DELETE CASCADE,
  FOREIGN KEY (agency_id, passkey_id) REFERENCES cao.passkeys (agency_id, id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS sessions_user ON cao.sessions (agency_id, user_id, created_at DESC);
CREATE INDEX IF NOT EXISTS sessions_passkey ON cao.sessions (passkey_id);

-- Invitations (kind 'invite': a new user with this email and role) and recovery links (kind
-- 'recovery': a new passkey for an existing user). Single use, 7 days, revocable.
CREATE TABLE IF NOT EXISTS cao.invitations (
  id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  agency_id        uuid NOT NULL REFERENCES cao.agencies(id) ON DELETE CASCADE,
  kind             text NOT NULL CHECK (kind IN ('invite', 'recovery')),
  email            text NOT NULL CHECK (length(email) BETWEEN 3 AND 320),
  role             text NOT NULL CHECK (role IN ('admin', 'member')),
  user_id          uuid,
  token_hash       bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
  created_by       text NOT NULL CHECK (length(created_by) <= 100),
  created_at       timestamptz NOT NULL,
  expires_at       timestamptz NOT NULL,
  accepted_at      timestamptz,
  revoked_at       timestamptz,
  CHECK ((kind = 'recovery') = (user_id IS NOT NULL)),
  FOREIGN KEY (agency_id, user_id) REFERENCES cao.users (agency_id, id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS invitations_agency ON cao.invitations (agency_id, created_at DESC);

-- Enrolment: a single-use, 15-minute ceremony that registers one passkey for one user.
CREATE TABLE IF NOT EXISTS cao.enrolments (
  id               uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  agency_id        uuid NOT NULL,
  user_id          uuid NOT NULL,
  token_hash       bytea NOT NULL UNIQUE CHECK (length(token_hash) = 32),
  created_at       timestamptz NOT NULL,
  expires_at       timestamptz NOT NULL,
  used_at          timestamptz,
  FOREIGN KEY (agency_id, user_id) REFERENCES cao.users (agency_id, id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS enrolments_user ON cao.enrolments (agency_id, user_id);

-- ---------------------------------------------------------------------------------------------
-- Cross-tenant by nature: not visible to the app role at all (no grants); reached only through
-- SECURITY DEFINER functions.
-- ---------------------------------------------------------------------------------------------

CREATE TABLE IF NOT EXISTS cao.webhook_deliveries (
  webhook_id    text PRIMARY KEY CHECK (length(webhook_id) <= 200),
  event_type    text NOT NULL CHECK (length(event_type) <= 100),
  agency_id     uuid,
  received_at   timestamptz NOT NULL DEFAULT now()
);

-- WebAuthn challenges: single use, 5 minutes, taken atomically by the challenge found in the
-- client data. Sign-in challenges belong to nobody yet (user_id NULL); registration challenges
-- to the user enrolling. Reached only through cao.put_challenge / cao.take_challenge.
CREATE TABLE IF NOT EXISTS cao.webauthn_challenges (
  challenge    bytea PRIMARY KEY CHECK (length(challenge) BETWEEN 16 AND 64),
  purpose      text NOT NULL CHECK (purpose IN ('registration', 'authentication')),
  agency_id    uuid,
  user_id      uuid,
  expires_at   timestamptz NOT NULL
);
CREATE INDEX IF NOT EXISTS webauthn_challenges_expiry ON cao.webauthn_challenges (expires_at);

-- Fixed-window rate limits (sign-up per source address, sync-now and verify per account).
CREATE TABLE IF NOT EXISTS cao.rate_limits (
  bucket        text PRIMARY KEY CHECK (length(bucket) <= 200),
  window_start  timestamptz NOT NULL,
  hits          integer NOT NULL
);

-- ---------------------------------------------------------------------------------------------
-- Incident and sub-processor change notices (functions/notices; security page, "Incident
-- response" and "Sub-processors"). Operators write them with the owner role
-- (`python -m functions.notices.operator`); agencies never write a notice. A notice is not a
-- tenant row: one notice goes to many agencies, through one delivery row each
-- (`notice_deliveries`, a tenant table in the RLS loop below). The app role sees a notice, and
-- its updates, only when a delivery row of the current agency exists.
-- ---------------------------------------------------------------------------------------------

CREATE TABLE IF NOT EXISTS cao.notices (
  id              uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  kind            text NOT NULL CHECK (kind IN ('incident', 'subprocessor_change')),
  title           text NOT NULL CHECK (length(title) BETWEEN 1 AND 200),
  known_facts     text NOT NULL CHECK (length(known_facts) BETWEEN 1 AND 8000),
  data_categories text[] NOT NULL DEFAULT ARRAY[]::text[]
                    CHECK (cardinality(data_categories) <= 20
                           AND length(array_to_string(data_categories, '')) <= 2000),
  mitigation      text CHECK (length(mitigation) BETWEEN 1 AND 8000),
  contact         text NOT NULL CHECK (length(contact) BETWEEN 3 AND 320),
  status          text NOT NULL,
  -- Incidents: when we confirmed it (the 24-hour notification target counts from there).
  confirmed_at    timestamptz,
  -- Sub-processor changes: when the change takes effect, and why it is less than 30 days
  -- ahead when it is (urgent security, availability or legal reasons).
  effective_at    timestamptz,
  urgent_reason   text CHECK (length(urgent_reason) BETWEEN 1 AND 1000),
  created_at      timestamptz NOT NULL DEFAULT now(),
  updated_at      timestamptz NOT NULL DEFAULT now(),
  CHECK (updated_at >= created_at),
  -- What the security page promises a notice holds.
  CONSTRAINT notices_kind_fields CHECK (CASE kind
    WHEN 'incident' THEN status IN ('open', 'resolved') AND mitigation IS NOT NULL
                         AND cardinality(data_categories) >= 1 AND effective_at IS NULL
    ELSE status = 'scheduled' AND effective_at IS NOT NULL AND confirmed_at IS NULL
  END)
);

-- Facts as they come in: appended, never edited.
CREATE TABLE IF NOT EXISTS cao.notice_updates (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  notice_id   uuid NOT NULL REFERENCES cao.notices(id) ON DELETE CASCADE,
  at          timestamptz NOT NULL DEFAULT now(),
  text        text NOT NULL CHECK (length(text) BETWEEN 1 AND 8000)
);
CREATE INDEX IF NOT EXISTS notice_updates_notice ON cao.notice_updates (notice_id, at, id);

-- One row per (notice, agency it was sent to); read_at is the agency's only write.
CREATE TABLE IF NOT EXISTS cao.notice_deliveries (
  agency_id     uuid NOT NULL REFERENCES cao.agencies(id) ON DELETE CASCADE,
  notice_id     uuid NOT NULL REFERENCES cao.notices(id) ON DELETE CASCADE,
  delivered_at  timestamptz NOT NULL DEFAULT now(),
  read_at       timestamptz,
  PRIMARY KEY (notice_id, agency_id)
);
CREATE INDEX IF NOT EXISTS notice_deliveries_agency
  ON cao.notice_deliveries (agency_id, delivered_at DESC, notice_id DESC);

ALTER TABLE cao.notices ENABLE ROW LEVEL SECURITY;
ALTER TABLE cao.notices FORCE ROW LEVEL SECURITY;
ALTER TABLE cao.notice_updates ENABLE ROW LEVEL SECURITY;
ALTER TABLE cao.notice_updates FORCE ROW LEVEL SECURITY;
DROP POLICY IF EXISTS delivered ON cao.notices;
CREATE POLICY delivered ON cao.notices FOR SELECT TO cao_app USING (EXISTS (
  SELECT 1 FROM cao.notice_deliveries d
   WHERE d.notice_id = notices.id AND d.agency_id = cao.current_agency()));
DROP POLICY IF EXISTS delivered ON cao.notice_updates;
CREATE POLICY delivered ON cao.notice_updates FOR SELECT TO cao_app USING (EXISTS (
  SELECT 1 FROM cao.notice_deliveries d
   WHERE d.notice_id = notice_updates.notice_id AND d.agency_id = cao.current_agency()));
DO $$
BEGIN
  EXECUTE 'DROP POLICY IF EXISTS owner_all ON cao.notices';
  EXECUTE format('CREATE POLICY owner_all ON cao.notices TO %I USING (true) WITH CHECK (true)', current_user);
  EXECUTE 'DROP POLICY IF EXISTS owner_all ON cao.notice_updates';
  EXECUTE format('CREATE POLICY owner_all ON cao.notice_updates TO %I USING (true) WITH CHECK (true)', current_user);
END $$;
-- Read only for the app: notices are written by operators, never by agencies.
REVOKE ALL ON cao.notices, cao.notice_updates FROM cao_app;
GRANT SELECT ON cao.notices, cao.notice_updates TO cao_app;

-- ---------------------------------------------------------------------------------------------
-- Row-level security: enabled and forced on every tenant table.
-- ---------------------------------------------------------------------------------------------

DO $$
DECLARE
  t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['agencies', 'external_ids', 'api_keys', 'accounts',
                           'discovered_accounts', 'cost_rows', 'cost_months',
                           'cost_account_months', 'cost_pulls', 'cost_pull_rows',
                           'access_events',
                           'sync_jobs', 'sync_cursors', 'sync_runs', 'runbooks',
                           'runbook_versions', 'audit_log', 'notice_deliveries',
                           'users', 'passkeys', 'sessions', 'invitations', 'enrolments']
  LOOP
    EXECUTE format('ALTER TABLE cao.%I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('ALTER TABLE cao.%I FORCE ROW LEVEL SECURITY', t);
    EXECUTE format('DROP POLICY IF EXISTS tenant ON cao.%I', t);
    EXECUTE format(
      'CREATE POLICY tenant ON cao.%I TO cao_app USING (%s = cao.current_agency())'
      ' WITH CHECK (%s = cao.current_agency())',
      t,
      CASE WHEN t = 'agencies' THEN 'id' ELSE 'agency_id' END,
      CASE WHEN t = 'agencies' THEN 'id' ELSE 'agency_id' END);
    -- The owner runs the SECURITY DEFINER functions below, which are cross-tenant by design.
    EXECUTE format('DROP POLICY IF EXISTS owner_all ON cao.%I', t);
    EXECUTE format('CREATE POLICY owner_all ON cao.%I TO %I USING (true) WITH CHECK (true)',
                   t, current_user);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON cao.%I TO cao_app', t);
  END LOOP;
END $$;

-- Notice deliveries: an agency reads its deliveries and marks them read, nothing more (the
-- loop above granted everything; operators write deliveries with the owner role).
REVOKE ALL ON cao.notice_deliveries FROM cao_app;
GRANT SELECT, UPDATE (read_at) ON cao.notice_deliveries TO cao_app;

-- Only the writes the code makes (the loop above granted all four verbs). Agencies are created
-- by cao.create_agency and their billing columns written by cao.set_billing_state (webhooks);
-- the app changes only settings, and deletes the agency. The audit log is append-only. A key's
-- hash is written once, at creation; revocation is the only change (last_used_at is
-- cao.authenticate_key's). An ExternalId's value never changes, only its retirement.
-- Previous runbook versions are inserted and pruned, never edited. (Deleting an agency
-- cascades as the owner: no DELETE grant is needed on the tables it cascades to.)
REVOKE ALL ON cao.agencies, cao.audit_log, cao.api_keys, cao.external_ids,
  cao.runbook_versions FROM cao_app;
GRANT SELECT, DELETE ON cao.agencies TO cao_app;
GRANT UPDATE (name, contact_email, default_regions, cloudtrail_retention_days,
  cloudtrail_backfill_days) ON cao.agencies TO cao_app;
GRANT SELECT, INSERT ON cao.audit_log TO cao_app;
GRANT SELECT, INSERT ON cao.api_keys TO cao_app;
GRANT UPDATE (revoked_at) ON cao.api_keys TO cao_app;
GRANT SELECT, INSERT, DELETE ON cao.external_ids TO cao_app;
GRANT UPDATE (retired_at) ON cao.external_ids TO cao_app;
GRANT SELECT, INSERT, DELETE ON cao.runbook_versions TO cao_app;
-- People: token hashes, credential ids and public keys are written once; a user's email never
-- changes. Sessions are created and deleted (last_seen_at is cao.authenticate_session's).
REVOKE ALL ON cao.users, cao.passkeys, cao.sessions, cao.invitations, cao.enrolments FROM cao_app;
GRANT SELECT, INSERT, DELETE ON cao.users, cao.passkeys, cao.sessions TO cao_app;
GRANT UPDATE (name, role, last_sign_in_at) ON cao.users TO cao_app;
GRANT UPDATE (name, sign_count, last_used_at) ON cao.passkeys TO cao_app;
GRANT SELECT, INSERT ON cao.invitations, cao.enrolments TO cao_app;
GRANT UPDATE (accepted_at, revoked_at) ON cao.invitations TO cao_app;
GRANT UPDATE (used_at) ON cao.enrolments TO cao_app;

-- ---------------------------------------------------------------------------------------------
-- Clients, month-to-date cost snapshots, budgets, anomalies (issue 19; functions/clients,
-- functions/alerts, shared/store/clients.py, shared/store/alerts.py)
-- ---------------------------------------------------------------------------------------------

-- An agency groups its linked accounts into clients; an account belongs to at most one client
-- (the primary key of client_accounts is the account).
CREATE TABLE IF NOT EXISTS cao.clients (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  agency_id   uuid NOT NULL REFERENCES cao.agencies(id) ON DELETE CASCADE,
  name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  notes       text NOT NULL DEFAULT '' CHECK (length(notes) <= 4000),
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  UNIQUE (agency_id, id),
  UNIQUE (agency_id, name)
);
CREATE TABLE IF NOT EXISTS cao.client_accounts (
  agency_id   uuid NOT NULL,
  client_id   uuid NOT NULL,
  account_id  uuid NOT NULL PRIMARY KEY,
  FOREIGN KEY (agency_id, client_id) REFERENCES cao.clients (agency_id, id) ON DELETE CASCADE,
  FOREIGN KEY (agency_id, account_id) REFERENCES cao.accounts (agency_id, id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS client_accounts_client ON cao.client_accounts (client_id);

-- Month-to-date UnblendedCost per AWS account x service, as each cost sync pulled it: the
-- current month, and the previous month until AWS finalises it. `account_id` is the linked
-- account it was pulled through (a member's through its payer, or its own link during the
-- payer's outage: the series, keyed by the AWS account, stays one). Kept 13 months.
CREATE TABLE IF NOT EXISTS cao.cost_snapshots (
  agency_id         uuid NOT NULL,
  account_id        uuid NOT NULL,
  usage_account_id  text NOT NULL CHECK (usage_account_id ~ '^[0-9]{12}$'),
  service           text NOT NULL CHECK (length(service) BETWEEN 1 AND 256),
  month             date NOT NULL CHECK (extract(day FROM month) = 1),
  taken_at          timestamptz NOT NULL,
  amount            numeric(20, 10) NOT NULL,
  currency          text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
  estimated         boolean NOT NULL,
  PRIMARY KEY (agency_id, usage_account_id, service, month, taken_at, currency),
  FOREIGN KEY (agency_id, account_id) REFERENCES cao.accounts (agency_id, id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS cost_snapshots_account ON cao.cost_snapshots (account_id, taken_at);
CREATE INDEX IF NOT EXISTS cost_snapshots_month ON cao.cost_snapshots (agency_id, month);

-- Budgets: a monthly amount for a client or an account, and its thresholds
-- ([{"kind": "forecast"|"actual", "percent": n}]); each threshold is raised once a month
-- (budget_events' unique key).
CREATE TABLE IF NOT EXISTS cao.budgets (
  id          uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  agency_id   uuid NOT NULL REFERENCES cao.agencies(id) ON DELETE CASCADE,
  name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 200),
  client_id   uuid,
  account_id  uuid,
  amount      numeric(14, 2) NOT NULL CHECK (amount > 0),
  currency    text NOT NULL DEFAULT 'USD' CHECK (currency ~ '^[A-Z]{3}$'),
  thresholds  jsonb NOT NULL CHECK (jsonb_typeof(thresholds) = 'array'
                                    AND jsonb_array_length(thresholds) BETWEEN 1 AND 10),
  created_at  timestamptz NOT NULL DEFAULT now(),
  updated_at  timestamptz NOT NULL DEFAULT now(),
  CHECK ((client_id IS NULL) <> (account_id IS NULL)),
  UNIQUE (agency_id, id),
  FOREIGN KEY (agency_id, client_id) REFERENCES cao.clients (agency_id, id) ON DELETE CASCADE,
  FOREIGN KEY (agency_id, account_id) REFERENCES cao.accounts (agency_id, id) ON DELETE CASCADE
);
CREATE TABLE IF NOT EXISTS cao.budget_events (
  id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
  agency_id   uuid NOT NULL,
  budget_id   uuid NOT NULL,
  month       date NOT NULL CHECK (extract(day FROM month) = 1),
  kind        text NOT NULL CHECK (kind IN ('forecast', 'actual')),
  percent     integer NOT NULL CHECK (percent BETWEEN 1 AND 1000),
  raised_at   timestamptz NOT NULL,
  actual      numeric(20, 10) NOT NULL,
  forecast    numeric(20, 10) NOT NULL,
  budget      numeric(14, 2) NOT NULL,
  UNIQUE (budget_id, month, kind, percent),
  FOREIGN KEY (agency_id, budget_id) REFERENCES cao.budgets (agency_id, id) ON DELETE CASCADE
);

-- Spend anomalies of an AWS account x service (functions/alerts/anomalies.py): the growth
-- between two snapshots against the series' own baseline. A spike that lasts extends its
-- anomaly (last_detected_at) instead of raising another.
CREATE TABLE IF NOT EXISTS cao.anomalies (
  id                uuid PRIMARY KEY DEFAULT gen_random_uuid(),
  agency_id         uuid NOT NULL,
  account_id        uuid NOT NULL,
  usage_account_id  text NOT NULL CHECK (usage_account_id ~ '^[0-9]{12}$'),
  service           text NOT NULL CHECK (length(service) BETWEEN 1 AND 256),
  currency          text NOT NULL CHECK (currency ~ '^[A-Z]{3}$'),
  span_start        timestamptz NOT NULL,
  span_end          timestamptz NOT NULL,
  growth            numeric(20, 10) NOT NULL,
  rate_per_day      numeric(20, 10) NOT NULL,
  baseline_per_day  numeric(20, 10) NOT NULL,
  mad_per_day       numeric(20, 10) NOT NULL,
  baseline_rates    integer NOT NULL,
  first_detected_at timestamptz NOT NULL,
  last_detected_at  timestamptz NOT NULL,
  acknowledged_at   timestamptz,
  acknowledged_by   text CHECK (length(acknowledged_by) <= 100),
  note              text CHECK (length(note) <= 2000),
  UNIQUE (agency_id, usage_account_id, service, currency, span_end),
  FOREIGN KEY (agency_id, account_id) REFERENCES cao.accounts (agency_id, id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS anomalies_agency_recent
  ON cao.anomalies (agency_id, first_detected_at DESC, id DESC);

-- The agency's anomaly floors: a growth must exceed the usual rate by both (absent: defaults).
CREATE TABLE IF NOT EXISTS cao.anomaly_settings (
  agency_id            uuid PRIMARY KEY REFERENCES cao.agencies(id) ON DELETE CASCADE,
  relative_floor_pct   integer NOT NULL DEFAULT 100 CHECK (relative_floor_pct BETWEEN 10 AND 10000),
  absolute_floor       numeric(14, 2) NOT NULL DEFAULT 10.00
                         CHECK (absolute_floor BETWEEN 1.00 AND 1000000),
  updated_at           timestamptz NOT NULL DEFAULT now()
);

DO $$
DECLARE
  t text;
BEGIN
  FOREACH t IN ARRAY ARRAY['clients', 'client_accounts', 'cost_snapshots', 'budgets',
                           'budget_events', 'anomalies', 'anomaly_settings']
  LOOP
    EXECUTE format('ALTER TABLE cao.%I ENABLE ROW LEVEL SECURITY', t);
    EXECUTE format('ALTER TABLE cao.%I FORCE ROW LEVEL SECURITY', t);
    EXECUTE format('DROP POLICY IF EXISTS tenant ON cao.%I', t);
    EXECUTE format(
      'CREATE POLICY tenant ON cao.%I TO cao_app USING (agency_id = cao.current_agency())'
      ' WITH CHECK (agency_id = cao.current_agency())', t);
    EXECUTE format('DROP POLICY IF EXISTS owner_all ON cao.%I', t);
    EXECUTE format('CREATE POLICY owner_all ON cao.%I TO %I USING (true) WITH CHECK (true)',
                   t, current_user);
    EXECUTE format('GRANT SELECT, INSERT, UPDATE, DELETE ON cao.%I TO cao_app', t);
  END LOOP;
END $$;
-- Snapshots and raised budget thresholds are records: inserted and purged, never edited.
-- An anomaly changes only by being extended or acknowledged.
REVOKE UPDATE ON cao.cost_snapshots, cao.budget_events FROM cao_app;
REVOKE UPDATE ON cao.anomalies FROM cao_app;
GRANT UPDATE (last_detected_at, acknowledged_at, acknowledged_by, note) ON cao.anomalies TO cao_app;

-- The app role never touches these directly.
ALTER TABLE cao.webhook_deliveries ENABLE ROW LEVEL SECURITY;
ALTER TABLE cao.webhook_deliveries FORCE ROW LEVEL SECURITY;
ALTER TABLE cao.rate_limits ENABLE ROW LEVEL SECURITY;
ALTER TABLE cao.rate_limits FORCE ROW LEVEL SECURITY;
ALTER TABLE cao.webauthn_challenges ENABLE ROW LEVEL SECURITY;
ALTER TABLE cao.webauthn_challenges FORCE ROW LEVEL SECURITY;
DO $$
BEGIN
  EXECUTE 'DROP POLICY IF EXISTS owner_all ON cao.webhook_deliveries';
  EXECUTE format('CREATE POLICY owner_all ON cao.webhook_deliveries TO %I USING (true) WITH CHECK (true)', current_user);
  EXECUTE 'DROP POLICY IF EXISTS owner_all ON cao.rate_limits';
  EXECUTE format('CREATE POLICY owner_all ON cao.rate_limits TO %I USING (true) WITH CHECK (true)', current_user);
  EXECUTE 'DROP POLICY IF EXISTS owner_all ON cao.webauthn_challenges';
  EXECUTE format('CREATE POLICY owner_all ON cao.webauthn_challenges TO %I USING (true) WITH CHECK (true)', current_user);
END $$;
REVOKE ALL ON cao.webhook_deliveries, cao.rate_limits, cao.webauthn_challenges FROM cao_app;

-- ---------------------------------------------------------------------------------------------
-- SECURITY DEFINER functions: the only cross-tenant paths. Each pins search_path, takes only
-- what it needs, and returns only what the caller needs.
-- ---------------------------------------------------------------------------------------------

-- Sign-up: create an agency with its first ExternalId and admin key in one step (before the
-- agency exists there is no tenant to set).
CREATE OR REPLACE FUNCTION cao.create_agency(
  p_name text, p_contact_email text, p_external_id text, p_key_hash bytea, p_key_prefix text)
  RETURNS TABLE (agency_id uuid, key_id uuid)
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = cao, pg_temp
AS $$
DECLARE
  a uuid;
  k uuid;
BEGIN
  INSERT INTO agencies (name, contact_email) VALUES (p_name, p_contact_email) RETURNING id INTO a;
  INSERT INTO external_ids (agency_id, value) VALUES (a, p_external_id);
  INSERT INTO api_keys (agency_id, name, role, key_hash, key_prefix)
    VALUES (a, 'first admin key', 'admin', p_key_hash, p_key_prefix) RETURNING id INTO k;
  INSERT INTO audit_log (agency_id, actor, action, target) VALUES (a, 'signup', 'agency.created', a::text);
  RETURN QUERY SELECT a, k;
END $$;

-- Authentication: the agency and role of a live API key, by its hash. last_used_at is
-- refreshed at most once a minute so that reads do not turn into a write per request.
CREATE OR REPLACE FUNCTION cao.authenticate_key(p_key_hash bytea)
  RETURNS TABLE (agency_id uuid, key_id uuid, role text)
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = cao, pg_temp
AS $$
BEGIN
  UPDATE api_keys k SET last_used_at = now()
   WHERE k.key_hash = p_key_hash AND k.revoked_at IS NULL
     AND (k.last_used_at IS NULL OR k.last_used_at < now() - interval '1 minute');
  RETURN QUERY SELECT k.agency_id, k.id, k.role FROM api_keys k
   WHERE k.key_hash = p_key_hash AND k.revoked_at IS NULL;
END $$;

-- Whether an agency may sync now (billing entitlement): trial until its end, active and
-- past-due, canceled until the paid period ends; revoked and the rest never.
CREATE OR REPLACE FUNCTION cao.is_entitled(a cao.agencies, p_now timestamptz) RETURNS boolean
  LANGUAGE sql STABLE
AS $$
  SELECT CASE a.billing_status
    WHEN 'trialing' THEN a.trial_ends_at > p_now
    WHEN 'active' THEN true
    WHEN 'past_due' THEN true
    WHEN 'canceled' THEN coalesce(a.current_period_end > p_now, false)
    ELSE false
  END
$$;

-- Dispatcher: due jobs of entitled agencies, marked queued (requested_at = when) so a second
-- dispatcher run in the same minute does not publish them again. Locks are held only for this
-- statement. The time is the database's (now()): a caller cannot queue jobs before they are
-- due, or for agencies whose entitlement has ended.
CREATE OR REPLACE FUNCTION cao.dispatch_due_jobs(p_kind text, p_limit integer)
  RETURNS TABLE (job_id uuid, agency_id uuid, account_id uuid, kind text, due_at timestamptz)
  LANGUAGE sql SECURITY DEFINER SET search_path = cao, pg_temp
AS $$
  WITH due AS (
    SELECT j.id, j.next_run_at FROM sync_jobs j
      JOIN agencies a ON a.id = j.agency_id
      JOIN accounts c ON c.id = j.account_id
     WHERE j.kind = p_kind
       AND j.next_run_at <= now()
       -- queued an hour ago and never claimed (a lost message), or running with an expired
       -- lease: again. The hour counts from when it was queued, not from when it fell due.
       AND (j.state IN ('idle', 'failed')
            OR (j.state = 'queued'
                AND coalesce(j.requested_at, j.next_run_at) <= now() - interval '1 hour')
            OR (j.state = 'running' AND j.lease_expires_at <= now()))
       AND c.status NOT IN ('paused', 'unsafe_trust_policy')
       AND is_entitled(a, now())
     ORDER BY j.next_run_at
     LIMIT least(greatest(p_limit, 0), 10000)
     FOR UPDATE OF j SKIP LOCKED
  )
  UPDATE sync_jobs j SET state = 'queued', requested_at = now()
    FROM due WHERE j.id = due.id
  RETURNING j.id, j.agency_id, j.account_id, j.kind, due.next_run_at;
$$;

-- Consumer: take the lease of one job. Returns the lease token, or nothing when another live
-- delivery holds it, or the job is gone, not due (a duplicate delivery after the job already
-- ran), paused, or its account/agency may not sync. SKIP LOCKED: never waits on a concurrent
-- claimer or on a worker writing its results. The worker passes its clock (tests run it on a
-- simulated one), but never a time ahead of the database's: a caller's "now" in the future
-- could take a job before it is due or a live worker's lease. The lease is at most 10 minutes
-- (workers ask for 60 s and renew it).
CREATE OR REPLACE FUNCTION cao.claim_job(p_job_id uuid, p_now timestamptz, p_lease_seconds integer)
  RETURNS TABLE (lease_token uuid, agency_id uuid, account_id uuid, kind text, deliveries integer)
  LANGUAGE sql SECURITY DEFINER SET search_path = cao, pg_temp
AS $$
  WITH clock AS (SELECT least(p_now, now()) AS at),
  free AS (
    SELECT j.id, clock.at FROM sync_jobs j
      JOIN accounts c ON c.id = j.account_id
      JOIN agencies a ON a.id = j.agency_id
      CROSS JOIN clock
     WHERE j.id = p_job_id
       AND j.next_run_at <= clock.at
       AND j.state <> 'paused'
       AND c.status NOT IN ('paused', 'unsafe_trust_policy')
       AND is_entitled(a, clock.at)
       AND (j.lease_expires_at IS NULL OR j.lease_expires_at <= clock.at)
     FOR UPDATE OF j SKIP LOCKED
  )
  UPDATE sync_jobs j
     SET lease_token = gen_random_uuid(),
         lease_expires_at = free.at + make_interval(secs => least(greatest(p_lease_seconds, 1), 600)),
         state = 'running',
         deliveries = j.deliveries + 1
    FROM free WHERE j.id = free.id
  RETURNING j.lease_token, j.agency_id, j.account_id, j.kind, j.deliveries;
$$;

-- Retention: delete access events older than each agency's retention, as of the database's
-- clock (a caller's "now" could reach every agency's events). Returns rows deleted per agency
-- and the cutoff applied, so the run log can record them. At most 100000 rows a call.
CREATE OR REPLACE FUNCTION cao.purge_expired_events(p_batch integer)
  RETURNS TABLE (agency_id uuid, deleted bigint, older_than timestamptz)
  LANGUAGE sql SECURITY DEFINER SET search_path = cao, pg_temp
AS $$
  WITH doomed AS (
    SELECT e.id FROM access_events e JOIN agencies a ON a.id = e.agency_id
     WHERE e.event_time < now() - make_interval(days => a.cloudtrail_retention_days)
     LIMIT least(greatest(p_batch, 1), 100000)
  ), gone AS (
    DELETE FROM access_events e USING doomed WHERE e.id = doomed.id RETURNING e.agency_id
  )
  SELECT gone.agency_id, count(*), now() - make_interval(days => min(a.cloudtrail_retention_days))
    FROM gone JOIN agencies a ON a.id = gone.agency_id GROUP BY gone.agency_id;
$$;

-- Retention by partition: drop the oldest month partition of cao.access_events none of whose
-- rows is still within its agency's retention, as of the database's clock (a partition holds
-- every agency's events of its month; while one agency still keeps some, the others' expired
-- rows in it go by purge_expired_events, row by row). Before the drop it counts the rows per
-- agency (returned like purge_expired_events, for the audit log) and notes the account x
-- principal and vendor-session pairs they summarise; after it, those are recomputed from the
-- events that remain, in the same transaction. At most one partition a call: its name on every
-- row (one row with no agency when it was empty); no row when none is due.
CREATE OR REPLACE FUNCTION cao.drop_expired_event_partition()
  RETURNS TABLE (partition_name text, agency_id uuid, deleted bigint, older_than timestamptz)
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = cao, pg_temp SET TimeZone = 'UTC'
AS $$
DECLARE
  part text;
  due boolean;
  accts uuid[];
  keys text[];
  vendor_accts uuid[];
  vendor_keys text[];
  shortest integer := (SELECT min(a.cloudtrail_retention_days) FROM agencies a);
BEGIN
  FOR part IN
    SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
     WHERE i.inhparent = 'cao.access_events'::regclass
       AND c.relname ~ '^access_events_[0-9]{4}_[0-9]{2}$'
       AND to_timestamp(substr(c.relname, 15), 'YYYY_MM') + interval '1 month'
           <= now() - make_interval(days => coalesce(shortest, 0))
     ORDER BY c.relname
  LOOP
    EXECUTE format(
      'SELECT NOT EXISTS (SELECT 1 FROM agencies a WHERE EXISTS (SELECT 1 FROM cao.%I e'
      ' WHERE e.agency_id = a.id'
      ' AND e.event_time >= now() - make_interval(days => a.cloudtrail_retention_days)))', part)
      INTO due;
    CONTINUE WHEN NOT due;
    LOCK TABLE access_events IN SHARE ROW EXCLUSIVE MODE;
    EXECUTE format(
      'SELECT array_agg(account_id), array_agg(principal) FROM (SELECT DISTINCT account_id,'
      ' coalesce(principal_arn, principal_name) AS principal FROM cao.%I'
      ' WHERE coalesce(principal_arn, principal_name) IS NOT NULL) d', part)
      INTO accts, keys;
    EXECUTE format(
      'SELECT array_agg(account_id), array_agg(session_name) FROM (SELECT DISTINCT account_id,'
      ' coalesce(principal_name, principal_arn, '''') AS session_name FROM cao.%I'
      ' WHERE is_vendor) d', part)
      INTO vendor_accts, vendor_keys;
    RETURN QUERY EXECUTE format(
      'SELECT %L::text, e.agency_id, count(*),'
      ' now() - make_interval(days => min(a.cloudtrail_retention_days))'
      ' FROM cao.%I e JOIN agencies a ON a.id = e.agency_id GROUP BY e.agency_id', part, part);
    IF NOT FOUND THEN
      partition_name := part;
      RETURN NEXT;
    END IF;
    EXECUTE format('DROP TABLE cao.%I', part);
    IF accts IS NOT NULL THEN
      PERFORM resummarise_principals(accts, keys);
    END IF;
    IF vendor_accts IS NOT NULL THEN
      PERFORM resummarise_vendor_sessions(vendor_accts, vendor_keys);
    END IF;
    RETURN;
  END LOOP;
END $$;

-- Webhooks: record a delivery id once. True when this call recorded it (first delivery); the
-- caller applies the effect in the same transaction, so a concurrent duplicate waits on the
-- primary key and then sees false.
CREATE OR REPLACE FUNCTION cao.record_webhook(p_webhook_id text, p_event_type text, p_agency_id uuid)
  RETURNS boolean
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = cao, pg_temp
AS $$
BEGIN
  INSERT INTO webhook_deliveries (webhook_id, event_type, agency_id)
    VALUES (p_webhook_id, p_event_type, p_agency_id)
    ON CONFLICT (webhook_id) DO NOTHING;
  RETURN FOUND;
END $$;

-- Webhooks: does this agency exist (the webhook carries our agency id as Polar's external id)?
CREATE OR REPLACE FUNCTION cao.agency_exists(p_agency_id uuid) RETURNS boolean
  LANGUAGE sql SECURITY DEFINER SET search_path = cao, pg_temp
AS $$ SELECT EXISTS (SELECT 1 FROM agencies WHERE id = p_agency_id) $$;

-- Rate limiting: count a hit in a fixed window; returns seconds until the window resets when
-- the limit is exceeded, else 0. The window and the limit belong to the bucket's kind (the
-- text before the first ':') and are fixed here, and the time is the database's: a caller can
-- neither widen its own limit nor reset a bucket (a 0-second window, a "now" far ahead). The
-- Python constants that word the 429 messages (SIGNUP_*, SYNC_NOW_*, VERIFY_*) are tested
-- against these.
CREATE OR REPLACE FUNCTION cao.rate_limit_hit(p_bucket text)
  RETURNS integer
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = cao, pg_temp
AS $$
DECLARE
  p record;
  r rate_limits;
  t timestamptz := now();
BEGIN
  SELECT k.window_seconds, k.max_hits INTO p
    FROM (VALUES ('signup', 3600, 5), ('sync-now', 3600, 4), ('verify', 3600, 4),
                 ('signin', 600, 30), ('signin-credential', 600, 10),
                 ('signin-alert', 600, 1))
      AS k (kind, window_seconds, max_hits)
   WHERE k.kind = split_part(p_bucket, ':', 1);
  IF NOT FOUND THEN
    RAISE EXCEPTION 'no rate-limit policy for this bucket kind' USING ERRCODE = '22023';
  END IF;
  INSERT INTO rate_limits AS rl (bucket, window_start, hits) VALUES (p_bucket, t, 1)
  ON CONFLICT (bucket) DO UPDATE SET
    window_start = CASE WHEN rl.window_start <= t - make_interval(secs => p.window_seconds)
                        THEN t ELSE rl.window_start END,
    hits = CASE WHEN rl.window_start <= t - make_interval(secs => p.window_seconds)
                THEN 1 ELSE least(rl.hits + 1, 1000000) END
  RETURNING * INTO r;
  IF r.hits > p.max_hits THEN
    RETURN greatest(1, ceil(extract(epoch FROM
      (r.window_start + make_interval(secs => p.window_seconds)) - t))::integer);
  END IF;
  RETURN 0;
END $$;

-- Weekly trust probe (functions/onboard/verify.py): which accounts to probe, across agencies.
-- Accounts of entitled agencies, not paused, not verified in the last 6 days (the weekly cron,
-- a day of slack; verify.PROBE_INTERVAL), stalest first, as of the database's clock: a caller
-- learns no account that is not due. Ids only: each account is then read inside its own
-- agency's tenant transaction.
CREATE OR REPLACE FUNCTION cao.accounts_due_trust_probe(p_limit integer)
  RETURNS TABLE (agency_id uuid, account_id uuid)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = cao, pg_temp
AS $$
  SELECT c.agency_id, c.id FROM accounts c JOIN agencies a ON a.id = c.agency_id
   WHERE c.status <> 'paused'
     AND (c.verified_at IS NULL OR c.verified_at < now() - interval '6 days')
     AND is_entitled(a, now())
   ORDER BY c.verified_at NULLS FIRST, c.id
   LIMIT least(greatest(p_limit, 0), 1000)
$$;

-- Billing (functions/billing): the agency's billing columns, which the app role may not write
-- directly. Scoped to the transaction's tenant, never to an argument. False when the agency is
-- gone.
CREATE OR REPLACE FUNCTION cao.set_billing_state(
  p_status text, p_plan text, p_trial_ends_at timestamptz, p_polar_customer_id text,
  p_polar_subscription_id text, p_current_period_end timestamptz, p_billing_event_at timestamptz)
  RETURNS boolean
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = cao, pg_temp
AS $$
BEGIN
  UPDATE agencies SET billing_status = p_status, plan = p_plan, trial_ends_at = p_trial_ends_at,
         polar_customer_id = p_polar_customer_id, polar_subscription_id = p_polar_subscription_id,
         current_period_end = p_current_period_end, billing_event_at = p_billing_event_at
   WHERE id = current_agency();
  RETURN FOUND;
END $$;

-- Agency deletion: the agency's rows in the cross-tenant tables the app role cannot touch
-- (webhook delivery records; rate-limit buckets naming the agency or one of its accounts).
-- Scoped to the transaction's tenant, never to an argument: an agency erases only its own.
CREATE OR REPLACE FUNCTION cao.erase_agency_traces() RETURNS void
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = cao, pg_temp
AS $$
DECLARE
  a uuid := current_agency();
BEGIN
  IF a IS NULL THEN
    RETURN;
  END IF;
  DELETE FROM webhook_deliveries WHERE agency_id = a;
  DELETE FROM webauthn_challenges WHERE agency_id = a;
  DELETE FROM rate_limits r
   WHERE strpos(r.bucket, a::text) > 0
      OR EXISTS (SELECT 1 FROM accounts c
                  WHERE c.agency_id = a AND strpos(r.bucket, c.id::text) > 0);
END $$;

-- People (functions/people). Sign-in, enrolment and invitation acceptance happen before there is
-- a tenant: these map a token's hash or a credential id to its agency, and nothing more. Their
-- clock is greatest(caller's, database's): a caller's clock can shorten a lifetime (tests run
-- sessions on an injected clock) but never extend one.

-- A live session by its token's hash: idle 12 hours, absolute 7 days (expires_at, set at
-- sign-in). last_seen_at is refreshed at most once a minute, not a write per request.
CREATE OR REPLACE FUNCTION cao.authenticate_session(p_token_hash bytea, p_now timestamptz)
  RETURNS TABLE (agency_id uuid, user_id uuid, session_id uuid, role text)
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = cao, pg_temp
AS $$
DECLARE
  t timestamptz := greatest(p_now, now());
BEGIN
  UPDATE sessions s SET last_seen_at = t
   WHERE s.token_hash = p_token_hash AND s.expires_at > t
     AND s.last_seen_at > t - interval '12 hours'
     AND s.last_seen_at < t - interval '1 minute';
  RETURN QUERY SELECT s.agency_id, s.user_id, s.id, u.role
    FROM sessions s JOIN users u ON u.id = s.user_id
   WHERE s.token_hash = p_token_hash AND s.expires_at > t
     AND s.last_seen_at > t - interval '12 hours';
END $$;

-- An enrolment still open (unused, unexpired) by its token's hash.
CREATE OR REPLACE FUNCTION cao.find_enrolment(p_token_hash bytea, p_now timestamptz)
  RETURNS TABLE (enrolment_id uuid, agency_id uuid, user_id uuid)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = cao, pg_temp
AS $$
  SELECT e.id, e.agency_id, e.user_id FROM enrolments e
   WHERE e.token_hash = p_token_hash AND e.used_at IS NULL
     AND e.expires_at > greatest(p_now, now())
$$;

-- An invitation or recovery link by its token's hash (its state is read in its agency's
-- transaction, to tell the holder of the link why it no longer works).
CREATE OR REPLACE FUNCTION cao.find_invitation(p_token_hash bytea)
  RETURNS TABLE (invitation_id uuid, agency_id uuid)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = cao, pg_temp
AS $$ SELECT i.id, i.agency_id FROM invitations i WHERE i.token_hash = p_token_hash $$;

-- Sign-in: the passkey behind a credential id.
CREATE OR REPLACE FUNCTION cao.find_passkey(p_credential_id bytea)
  RETURNS TABLE (agency_id uuid, user_id uuid, passkey_id uuid)
  LANGUAGE sql STABLE SECURITY DEFINER SET search_path = cao, pg_temp
AS $$ SELECT p.agency_id, p.user_id, p.id FROM passkeys p WHERE p.credential_id = p_credential_id $$;

-- A new WebAuthn challenge, 5 minutes, for sign-in (no agency, no user) or for a registration
-- of the transaction's agency's user. Expired challenges are cleared as new ones come.
CREATE OR REPLACE FUNCTION cao.put_challenge(p_challenge bytea, p_purpose text, p_user_id uuid)
  RETURNS void
  LANGUAGE plpgsql SECURITY DEFINER SET search_path = cao, pg_temp
AS $$
BEGIN
  IF (p_purpose = 'registration') <> (p_user_id IS NOT NULL AND current_agency() IS NOT NULL) THEN
    RAISE EXCEPTION 'a registration challenge needs its user and agency' USING ERRCODE = '22023';
  END IF;
  DELETE FROM webauthn_challenges WHERE challenge IN (
    SELECT challenge FROM webauthn_challenges WHERE expires_at <= now() LIMIT 100);
  INSERT INTO webauthn_challenges (challenge, purpose, agency_id, user_id, expires_at)
    VALUES (p_challenge, p_purpose,
            CASE WHEN p_purpose = 'registration' THEN current_agency() END,
            p_user_id, now() + interval '5 minutes');
END $$;

-- Take (consume) a live challenge: its agency and user, or nothing (unknown, expired, used).
CREATE OR REPLACE FUNCTION cao.take_challenge(p_challenge bytea, p_purpose text)
  RETURNS TABLE (agency_id uuid, user_id uuid)
  LANGUAGE sql SECURITY DEFINER SET search_path = cao, pg_temp
AS $$
  DELETE FROM webauthn_challenges c
   WHERE c.challenge = p_challenge AND c.purpose = p_purpose AND c.expires_at > now()
  RETURNING c.agency_id, c.user_id
$$;

REVOKE ALL ON ALL FUNCTIONS IN SCHEMA cao FROM PUBLIC;
GRANT EXECUTE ON FUNCTION cao.current_agency() TO cao_app;
GRANT EXECUTE ON FUNCTION cao.is_entitled(cao.agencies, timestamptz) TO cao_app;
GRANT EXECUTE ON FUNCTION cao.create_agency(text, text, text, bytea, text) TO cao_app;
GRANT EXECUTE ON FUNCTION cao.authenticate_key(bytea) TO cao_app;
GRANT EXECUTE ON FUNCTION cao.dispatch_due_jobs(text, integer) TO cao_app;
GRANT EXECUTE ON FUNCTION cao.claim_job(uuid, timestamptz, integer) TO cao_app;
GRANT EXECUTE ON FUNCTION cao.purge_expired_events(integer) TO cao_app;
GRANT EXECUTE ON FUNCTION cao.drop_expired_event_partition() TO cao_app;
GRANT EXECUTE ON FUNCTION cao.ensure_event_partitions(timestamptz[], integer) TO cao_app;
GRANT EXECUTE ON FUNCTION cao.record_webhook(text, text, uuid) TO cao_app;
GRANT EXECUTE ON FUNCTION cao.agency_exists(uuid) TO cao_app;
GRANT EXECUTE ON FUNCTION cao.rate_limit_hit(text) TO cao_app;
GRANT EXECUTE ON FUNCTION cao.erase_agency_traces() TO cao_app;
GRANT EXECUTE ON FUNCTION cao.accounts_due_trust_probe(integer) TO cao_app;
GRANT EXECUTE ON FUNCTION cao.set_billing_state(text, text, timestamptz, text, text, timestamptz,
  timestamptz) TO cao_app;
GRANT EXECUTE ON FUNCTION cao.authenticate_session(bytea, timestamptz) TO cao_app;
GRANT EXECUTE ON FUNCTION cao.find_enrolment(bytea, timestamptz) TO cao_app;
GRANT EXECUTE ON FUNCTION cao.find_invitation(bytea) TO cao_app;
GRANT EXECUTE ON FUNCTION cao.find_passkey(bytea) TO cao_app;
GRANT EXECUTE ON FUNCTION cao.put_challenge(bytea, text, uuid) TO cao_app;
GRANT EXECUTE ON FUNCTION cao.take_challenge(bytea, text) TO cao_app;
