-- 95% Wilson score interval for a rate p (a mean of scores in [0, 1]) observed over n trials.
-- NULL when n = 0, or when p is outside [0, 1] (the scores are not a rate: no Wilson interval).
-- The formula's rounding is off by up to 1e-16 at p = 0 and p = 1 (1 - 1e-16 above a rate of
-- 1); each bound is clamped so that 0 <= low <= p <= high <= 1 holds exactly.
create or replace macro wilson_low(p, n) as
  case when n > 0 and p >= 0 and p <= 1 then
    least(p, greatest(0.0,
      (p + 1.959964 * 1.959964 / (2 * n)
       - 1.959964 * sqrt(p * (1 - p) / n + 1.959964 * 1.959964 / (4 * n * n)))
      / (1 + 1.959964 * 1.959964 / n)))
  end;
create or replace macro wilson_high(p, n) as
  case when n > 0 and p >= 0 and p <= 1 then
    greatest(p, least(1.0,
      (p + 1.959964 * 1.959964 / (2 * n)
       + 1.959964 * sqrt(p * (1 - p) / n + 1.959964 * 1.959964 / (4 * n * n)))
      / (1 + 1.959964 * 1.959964 / n)))
  end;
-- Whether executions of a dataset are checks, not measurements: a dataset named `<name>.checks`
-- holds runs that check a benchmark itself (AgentDojo's injection tasks run alone, to show each can
-- be achieved). The score views and `warehouse.analytics` leave them out unless asked (`checks=True`,
-- `warehouse scores --checks`); `usage` keeps them (they cost tokens). A condition on a partition
-- column only: it prunes files and reads no row.
create or replace macro is_check(dataset) as dataset like '%.checks';
-- The groupings a configuration gives: `suite` (the dataset config's `suite`, else its `suite_name`)
-- and `agent_model` (the agent config's `model`). Their one definition: the `scores` view and
-- `Warehouse.scores(by=...)` (warehouse.read.analytics.CONFIG_GROUPS) both call these.
create or replace macro config_suite(dataset_config) as
  coalesce(json_extract_string(dataset_config, '$.suite'), json_extract_string(dataset_config, '$.suite_name'));
create or replace macro config_agent_model(agent_config) as json_extract_string(agent_config, '$.model');
