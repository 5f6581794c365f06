-- The aggregate columns of every usage query (the `usage` view and `warehouse.analytics.usage`):
-- sums over the group's finished executions, and means per execution (of those that report it).
count(*) as n,
sum(input_tokens)::bigint as input_tokens,
sum(output_tokens)::bigint as output_tokens,
sum(total_tokens)::bigint as total_tokens,
sum(cache_read_tokens)::bigint as cache_read_tokens,
sum(cache_write_tokens)::bigint as cache_write_tokens,
sum(reasoning_tokens)::bigint as reasoning_tokens,
sum(requests)::bigint as requests,
sum(tool_calls)::bigint as tool_calls,
sum(cost) as cost,
avg(total_tokens) as mean_tokens,
avg(requests) as mean_requests,
avg(tool_calls) as mean_tool_calls,
avg(cost) as mean_cost
