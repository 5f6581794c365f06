-- Per task and configuration, over finished executions that are not checks (`is_check`): runs,
-- failures, scored runs and successes (score >= 1.0) of benign and attack scores, mean scores,
-- tokens and cost.
-- `warehouse.analytics.task_scores(wh, by=..., threshold=...)` is the same query at any grouping.
create or replace view task_scores as
  select dataset, agent, attack, config_hash, task_id,
    count(*) as runs,
    count(*) filter (where status = 'failed') as n_failed,
    count(benign_score) as benign_runs,
    count(*) filter (where benign_score >= 1.0) as benign_successes,
    avg(benign_score) as utility,
    count(attack_score) as attack_runs,
    count(*) filter (where attack_score >= 1.0) as attack_successes,
    avg(attack_score) as asr,
    bool_or(attack <> 'none') as attacked,
    sum(total_tokens)::bigint as total_tokens,
    sum(cost) as cost
  from executions
  where status <> 'running' and not is_check(dataset)
  group by dataset, agent, attack, config_hash, task_id;
