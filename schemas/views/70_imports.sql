-- Every source `warehouse import` brought in (file or database row), with its content fingerprint.
create or replace view imports as select * from raw_imports;
