-- One row per config_hash: concurrent first writers of one config may each have added its row.
create or replace view configs as
  select * exclude (rn) from (
    select *, row_number() over (partition by config_hash order by created_at) as rn from raw_configs
  ) where rn = 1;
