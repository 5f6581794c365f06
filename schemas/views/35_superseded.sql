-- Execution ids are keys: the adds of an execution that a later add of the same id replaced. Every
-- other view already leaves their rows out (see warehouse/keys.py); this one lists them.
create or replace view superseded as select * from raw_superseded;
