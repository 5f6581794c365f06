-- The aggregate columns of every scores query (the `scores` view and `Warehouse.scores(by=...)`).
-- utility = mean benign_score; asr = attack success rate = mean attack_score; 95% Wilson intervals.
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
sum(cost) as cost
