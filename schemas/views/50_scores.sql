-- Scores per configuration: utility (mean benign_score) and attack success rate (mean attack_score)
-- with 95% Wilson intervals, failures and errors, tokens and cost, over finished executions
-- (completed or failed; executions still running are not counted yet) that are not checks
-- (`is_check`, 00_macros.sql); then the configuration's
-- suite and agent model (`config_suite`, `config_agent_model`, 00_macros.sql). Other groupings (suite, model,
-- metadata keys, overall, ...): `Warehouse.scores(by=...)`, `warehouse scores --by ...`, whose SQL
-- `warehouse.analytics.scores_sql(by)` returns. The join is on every partition column so that a
-- partition filter on this view prunes the configs' files too.
create or replace view scores as
  select s.*, c.suite, c.agent_model
  from (
    select dataset, agent, attack, config_hash,
{score_columns}
    from executions
    where status <> 'running' and not is_check(dataset)
    group by dataset, agent, attack, config_hash
  ) as s
  left join (
    select dataset, agent, attack, config_hash,
      config_suite(arg_min(dataset_config, created_at)) as suite,
      config_agent_model(arg_min(agent_config, created_at)) as agent_model
    from raw_configs
    group by dataset, agent, attack, config_hash
  ) as c using (dataset, agent, attack, config_hash);
