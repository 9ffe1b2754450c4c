//! The provider seam. Each provider module owns its wire types and its upstream client;
//! the simulator shares the wire types and nothing else.

pub mod anthropic;
pub mod http;
pub mod openai;

/// Provider names as they appear in the price table, metrics and reports.
pub const ANTHROPIC: &str = "anthropic";
pub const OPENAI: &str = "openai";
