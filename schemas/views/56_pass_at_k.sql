-- The unbiased pass@k estimator of one task: n scored runs, c successes, 1 - C(n-c, k) / C(n, k)
-- (through log-gamma: exact at the ends, within 1e-12 between, clamped to [0, 1] against the
-- rounding of lgamma); NULL when n < k (k = n: 1 if any run succeeded, else 0).
create or replace macro pass_at_k_estimate(n, c, k) as
  case when n < k then null
       when c = 0 then 0.0
       when n - c < k then 1.0
       else least(1.0, greatest(0.0,
              1 - exp(lgamma(n - c + 1) - lgamma(n - c - k + 1) - lgamma(n + 1) + lgamma(n - k + 1))))
  end;
-- pass@k per configuration and metric (benign_score; attack_score for attacked configurations),
-- success = score >= 1.0, for k = 1 .. the most scored runs of one task in the configuration:
-- the mean over tasks with at least k scored runs (n_tasks); tasks with fewer are excluded and
-- counted (n_excluded). `warehouse.analytics.pass_at_k(wh, k=, by=, threshold=)` for other levels.
create or replace view pass_at_k as
  with tasks as (
    select dataset, agent, attack, config_hash, m.metric,
      case m.metric when 'benign_score' then benign_runs else attack_runs end as n,
      case m.metric when 'benign_score' then benign_successes else attack_successes end as c
    from task_scores, (values ('benign_score'), ('attack_score')) as m(metric)
    where m.metric = 'benign_score' or attacked or attack_runs > 0
  ), expanded as (
    select *, unnest(range(1, greatest(n_max, 1) + 1))::bigint as k from (
      select *, max(n) over (partition by dataset, agent, attack, config_hash, metric) as n_max from tasks
    ) as t
  )
  select dataset, agent, attack, config_hash, metric, k,
    avg(pass_at_k_estimate(n, c, k)) filter (where n >= k) as pass_at_k,
    count(*) filter (where n >= k) as n_tasks,
    count(*) filter (where n < k) as n_excluded
  from expanded
  group by dataset, agent, attack, config_hash, metric, k;
