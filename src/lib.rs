//! batchcost: a budgeted, metered gateway for LLM batch APIs.
//!
//! Dependency directions: `money`, `usage`, `pricing` and `estimate` are pure (`usage`, the
//! neutral token classes, is a leaf every layer may import); `ledger` knows no
//! HTTP; the gateway never imports the simulator (only `demo` and tests start one).

pub mod app;
pub mod approvals;
pub mod budgets;
pub mod cli;
pub mod clock;
pub mod config;
pub mod demo;
pub mod error;
pub mod estimate;
pub mod failpoint;
pub mod gateway;
pub mod holds;
pub mod ledger;
pub mod metrics;
pub mod money;
pub mod notify;
pub mod pricing;
pub mod providers;
pub mod recover;
pub mod refusal;
pub mod replica;
pub mod report;
pub mod runner;
pub mod settle;
pub mod shutdown;
pub mod simulator;
pub mod submit;
pub mod telemetry;
pub mod tracker;
pub mod usage;
