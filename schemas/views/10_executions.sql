-- Every revision of every execution, and the latest revision of each.
-- Final rows (batch `add_execution`, revision 0; a live execution's finish/fail, its last revision)
-- live in raw_executions and are read as they are: no window over every row (DESIGN.md, "Measured
-- facts"). Revisions of executions still running live in the small side table raw_executions_live;
-- its latest revision of an execution shows only while the execution has no final row (the anti-join
-- reads only the final rows of partitions with in-flight revisions: see reader.define_views).
create or replace view executions_all as
  select * from raw_executions
  union all
  select * from raw_executions_live;
create or replace view executions as
  select * from raw_executions
  union all
  select * exclude (rn) from (
    select *, row_number() over (partition by execution_id order by revision desc) as rn
    from raw_executions_live
  ) as live
  where rn = 1 and not exists (select 1 from raw_executions_final_of_live f where f.execution_id = live.execution_id);
