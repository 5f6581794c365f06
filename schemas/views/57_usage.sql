-- Tokens, requests, tool calls and cost per configuration and model, over finished executions.
create or replace view usage as
  select dataset, agent, attack, config_hash, model,
{usage_columns}
  from executions
  where status <> 'running'
  group by dataset, agent, attack, config_hash, model;
