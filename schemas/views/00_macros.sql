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
