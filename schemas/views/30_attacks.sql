create or replace view attacks as select * from raw_attacks;
