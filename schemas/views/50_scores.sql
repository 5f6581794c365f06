-- Scores per configuration: utility (mean benign_score) and attack success rate (mean attack_score)
-- with 95% Wilson intervals, failures, tokens and cost.
create or replace view scores as
  select dataset, agent, attack, config_hash,
{score_columns}
  from executions
  group by dataset, agent, attack, config_hash;
