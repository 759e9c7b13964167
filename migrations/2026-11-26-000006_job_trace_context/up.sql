-- The W3C trace context (traceparent, baggage) of the request that enqueued a job, so
-- the job's span can link to it. NULL when traces are off.
ALTER TABLE jobs ADD COLUMN trace_context JSONB;
