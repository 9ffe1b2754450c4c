-- ==== issue 13: admission in one round trip ===========================================
-- PostgreSQL's version 7 adds the admission function `batchcost_admit`. SQLite runs its
-- admissions in place in the gateway's process (sqlite_group.rs, sqlite_inplace.rs) and
-- has no stored functions: this version changes nothing here. It exists so that a schema
-- version means the same on both backends.
SELECT 1;
