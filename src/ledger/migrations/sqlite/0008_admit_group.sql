-- ==== issue 13: admissions in groups ==================================================
-- PostgreSQL's version 8 adds `batchcost_admit_group`, which admits a replica's waiting
-- admissions in one call. SQLite already commits its admissions in groups in place
-- (sqlite_group.rs): this version changes nothing here. It exists so that a schema
-- version means the same on both backends.
SELECT 1;
