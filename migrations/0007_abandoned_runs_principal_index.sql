-- A run whose delivery died (its worker crashed or was killed, so its lease expired unrenewed)
-- is closed as 'abandoned' when the job is next claimed (issue 15, item 8).
ALTER TABLE cao.sync_runs DROP CONSTRAINT IF EXISTS sync_runs_status_check;
ALTER TABLE cao.sync_runs ADD CONSTRAINT sync_runs_status_check CHECK (status IN (
  'running', 'succeeded', 'partial', 'failed', 'superseded', 'abandoned'));
CREATE INDEX IF NOT EXISTS sync_runs_running ON cao.sync_runs (account_id, kind) WHERE status = 'running';

-- GET /api/access/principals summarises each principal of a page from one index-only range
-- (issue 15, item 11): the principal index now covers the columns the summary reads.
CREATE INDEX IF NOT EXISTS access_events_principal_summary
  ON cao.access_events (agency_id, principal_arn, event_time)
  INCLUDE (source_ip, principal_name, account_id);
DROP INDEX IF EXISTS cao.access_events_principal;
