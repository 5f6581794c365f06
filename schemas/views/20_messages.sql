create or replace view messages as select * from raw_messages;
