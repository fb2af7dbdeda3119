-- Token usage of completed LLM jobs (result.usage), per owner service and model
-- profile: prompt, completion and total tokens, and how many jobs reported none.
--
-- Run:  psql "$DATABASE_URL" -v since='24 hours' -f sql/reports/tokens.sql
-- Variables:  since  how far back to look (an interval; default 24 hours)
-- Read-only; reads the finished_at index.

\if :{?since}
\else
  \set since '24 hours'
\endif

SELECT owner_service, model_profile, count(*) AS jobs,
       coalesce(sum((result -> 'usage' ->> 'prompt_tokens')::bigint), 0) AS prompt_tokens,
       coalesce(sum((result -> 'usage' ->> 'completion_tokens')::bigint), 0) AS completion_tokens,
       coalesce(sum((result -> 'usage' ->> 'total_tokens')::bigint), 0) AS total_tokens,
       count(*) FILTER (WHERE jsonb_typeof(result -> 'usage' -> 'total_tokens') IS DISTINCT FROM 'number')
           AS jobs_without_usage
FROM jobs
WHERE finished_at >= now() - :'since'::interval AND status = 'completed'
  AND task_type IN ('llm_chat', 'chat_completion')
GROUP BY owner_service, model_profile
ORDER BY total_tokens DESC, owner_service, model_profile;
