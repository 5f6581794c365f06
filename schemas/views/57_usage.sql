-- Tokens, requests, tool calls and cost per configuration and model, over finished executions
-- (checks included: they cost tokens too).
create or replace view usage as
  select dataset, agent, attack, config_hash, model,
{usage_columns}
  from executions
  where status <> 'running'
  group by dataset, agent, attack, config_hash, model;
