//! Shared by the hostile-input tests.
#![allow(dead_code)]

pub mod cases;
pub mod raw;
