//! Google Gemini batch mode (Developer API, `v1` and `v1beta`).

pub mod wire;
