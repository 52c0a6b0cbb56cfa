-- Issue 19: clients, month-to-date cost snapshots, budgets, anomalies (see schema.sql).


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
