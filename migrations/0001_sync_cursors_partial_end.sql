-- CloudTrail sync: a cursor remembers the end of a window read only partly (issue 5).
ALTER TABLE cao.sync_cursors ADD COLUMN IF NOT EXISTS partial_end timestamptz;
