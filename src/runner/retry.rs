//! Which failed outcomes are worth another attempt, and the next round's batches.

use super::provider::ItemResult;
use super::state::{Outcome, State};

/// The item's outcome and its reason (error type and message) from one result.
pub fn classify(r: &ItemResult) -> (Outcome, Option<String>) {
    match r {
        ItemResult::Succeeded(_) => (Outcome::Succeeded, None),
        // Each provider says which of its errors are the upstream's trouble rather than
        // the request's: invalid requests, authentication and permission errors and
        // unknown models would fail the same way again.
        ItemResult::Errored { kind, message, retryable } => {
            let reason =
                if message.is_empty() { kind.clone() } else { format!("{kind}: {message}") };
            let o = if *retryable { Outcome::Retry } else { Outcome::Failed };
            (o, Some(reason))
        }
        ItemResult::Expired => (Outcome::Retry, Some("expired".into())),
        ItemResult::Canceled => (Outcome::Failed, Some("canceled".into())),
    }
}

/// Items due another attempt (input order): retryable and under `max_attempts`. Items
/// out of attempts become failed for good.
pub fn due(st: &mut State, max_attempts: u32) -> Vec<u32> {
    let mut out = Vec::new();
    for (i, it) in st.items.iter_mut().enumerate() {
        if it.outcome == Outcome::Retry {
            if it.attempts < max_attempts {
                out.push(i as u32);
            } else {
                it.outcome = Outcome::Failed;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_trouble_is_retried_and_bad_requests_are_not() {
        let e = |k: &str| ItemResult::Errored {
            kind: k.into(),
            message: String::new(),
            retryable: crate::runner::anthropic::retryable(k),
        };
        assert_eq!(classify(&e("overloaded_error")).0, Outcome::Retry);
        assert_eq!(classify(&e("api_error")).0, Outcome::Retry);
        assert_eq!(classify(&ItemResult::Expired).0, Outcome::Retry);
        assert_eq!(classify(&e("invalid_request_error")).0, Outcome::Failed);
        assert_eq!(classify(&e("not_found_error")).0, Outcome::Failed);
        assert_eq!(classify(&ItemResult::Canceled).0, Outcome::Failed);
    }
}
