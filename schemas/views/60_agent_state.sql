create or replace view events as select * from raw_events;
create or replace view snapshots as select * from raw_snapshots;
-- The latest revision of each conversation session.
create or replace view sessions as
  select * from raw_sessions
  qualify row_number() over (partition by session_id order by revision desc) = 1;
