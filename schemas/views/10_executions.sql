-- Every revision of every execution, and the latest revision of each.
-- Batch results (`add_execution`) are final rows with revision 0, so the view is a plain read:
-- no window over every row (see DESIGN.md, "Measured facts").
create or replace view executions_all as select * from raw_executions;
create or replace view executions as select * from raw_executions;
