-- Issue 14, items 3 and 4: an unfinished Cost Explorer pull is kept (cao.cost_pulls, its rows so
-- far in cao.cost_pull_rows) so that a retry resumes from the last page's token, and a pull too
-- large for one request is split by linked-account groups. Both tables are new: schema.sql,
-- applied just before this script, creates them with their row-level security; nothing older
-- changes shape.
SELECT 1;
