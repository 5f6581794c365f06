-- 95% Wilson score interval for a rate p observed over n trials (p clamped to [0, 1]).
create or replace macro wilson_low(p, n) as
  case when n > 0 then
    (least(greatest(p, 0), 1) + 1.959964 * 1.959964 / (2 * n)
     - 1.959964 * sqrt(least(greatest(p, 0), 1) * (1 - least(greatest(p, 0), 1)) / n + 1.959964 * 1.959964 / (4 * n * n)))
    / (1 + 1.959964 * 1.959964 / n)
  end;
create or replace macro wilson_high(p, n) as
  case when n > 0 then
    (least(greatest(p, 0), 1) + 1.959964 * 1.959964 / (2 * n)
     + 1.959964 * sqrt(least(greatest(p, 0), 1) * (1 - least(greatest(p, 0), 1)) / n + 1.959964 * 1.959964 / (4 * n * n)))
    / (1 + 1.959964 * 1.959964 / n)
  end;
-- Whether executions of a dataset are checks, not measurements: a dataset named `<name>.checks`
-- holds runs that check a benchmark itself (AgentDojo's injection tasks run alone, to show each can
-- be achieved). The score views and `warehouse.analytics` leave them out unless asked (`checks=True`,
-- `warehouse scores --checks`); `usage` keeps them (they cost tokens). A condition on a partition
-- column only: it prunes files and reads no row.
create or replace macro is_check(dataset) as dataset like '%.checks';
