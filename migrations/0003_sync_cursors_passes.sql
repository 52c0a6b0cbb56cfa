-- CloudTrail sync (issue 13): a second read pass per region (the late-event sweep), and a partly
-- read window remembers how far down it was read and since when, instead of inferring it.
ALTER TABLE cao.sync_cursors
  ADD COLUMN IF NOT EXISTS pass text NOT NULL DEFAULT 'live' CHECK (pass IN ('live', 'sweep'));
ALTER TABLE cao.sync_cursors ADD COLUMN IF NOT EXISTS partial_from timestamptz;
ALTER TABLE cao.sync_cursors ADD COLUMN IF NOT EXISTS partial_since timestamptz;
ALTER TABLE cao.sync_cursors DROP CONSTRAINT IF EXISTS sync_cursors_pkey;
ALTER TABLE cao.sync_cursors ADD CONSTRAINT sync_cursors_pkey PRIMARY KEY (account_id, region, pass);
