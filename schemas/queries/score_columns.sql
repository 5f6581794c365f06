-- The aggregate columns of every scores query (the `scores` view and `Warehouse.scores(by=...)`).
-- utility = mean benign_score; asr = attack success rate = mean attack_score; 95% Wilson intervals.
-- Executions without a score (failed ones) are left out of a rate and counted: n_utility and n_asr
-- are the rates' denominators, n_failed the failed executions, n_errors those with an error.
-- n_tasks: distinct task ids (an id that two datasets share counts once), as the report counts tasks.
-- utility_under_attack: mean benign_score of the attacked executions (attack <> 'none') only.
count(*) as n,
count(distinct task_id) as n_tasks,
avg(benign_score) as utility,
wilson_low(avg(benign_score), count(benign_score)) as utility_low,
wilson_high(avg(benign_score), count(benign_score)) as utility_high,
avg(attack_score) as asr,
wilson_low(avg(attack_score), count(attack_score)) as asr_low,
wilson_high(avg(attack_score), count(attack_score)) as asr_high,
count(*) filter (where status = 'failed') as n_failed,
sum(total_tokens)::bigint as total_tokens,
sum(cost) as cost,
count(benign_score) as n_utility,
count(attack_score) as n_asr,
count(*) filter (where status = 'failed' or error is not null) as n_errors,
avg(benign_score) filter (where attack <> 'none') as utility_under_attack,
wilson_low(avg(benign_score) filter (where attack <> 'none'), count(benign_score) filter (where attack <> 'none')) as utility_under_attack_low,
wilson_high(avg(benign_score) filter (where attack <> 'none'), count(benign_score) filter (where attack <> 'none')) as utility_under_attack_high,
avg(total_tokens) as mean_tokens,
avg(cost) as mean_cost
