-- 0005: keep the live-count rows' updates HOT.
--
-- Every claim, completion and create rewrites a few job_live_counts rows (one
-- per (status, task_type, model_profile, shard) touched). At full fill a page
-- has no room for the new version, the update leaves the page and adds an index
-- entry, and the table grows between vacuums: in a five-minute run at 270 jobs/s
-- it went from one page to 62 and the count trigger came to dominate a claim's
-- execution time. Half-empty pages let each new version stay on its page (a
-- HOT update, pruned in place on the next visit).
ALTER TABLE job_live_counts SET (fillfactor = 50);
