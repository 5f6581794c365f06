-- Scores per configuration: utility (mean benign_score) and attack success rate (mean attack_score)
-- with 95% Wilson intervals, failures, tokens and cost, over finished executions (completed or
-- failed; executions still running are not counted yet).
create or replace view scores as
  select dataset, agent, attack, config_hash,
{score_columns}
  from executions
  where status <> 'running'
  group by dataset, agent, attack, config_hash;
