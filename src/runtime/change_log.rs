//! One log line per change an API call makes: the service notes each audit
//! event it creates ([`note`]), the HTTP server collects the notes of each
//! request ([`collect`]) and logs them with the caller's address and the
//! answer's status. The audit table records what was committed; this log
//! also shows who tried and what they were told (a 507, a 409), in the
//! operator's log pipeline.
//!
//! Notes travel in a task-local: no allocation for a request that changes
//! nothing, and no change to every service signature. Work done on another
//! task or thread (the import's audit event, made in the store's blocking
//! call) is noted by the service before it hands the work off.

use std::cell::RefCell;
use std::future::Future;

/// One change: the audit action and its target.
pub type Change = (&'static str, String);

tokio::task_local! {
    static CHANGES: RefCell<Vec<Change>>;
}

/// Notes a change made on behalf of the current request (nothing outside
/// [`collect`], e.g. a background pruner: those log for themselves).
pub fn note(action: &'static str, target: &str) {
    let _ = CHANGES.try_with(|changes| changes.borrow_mut().push((action, target.to_owned())));
}

/// Runs `work`, answering its output and the changes it noted.
pub async fn collect<F: Future>(work: F) -> (F::Output, Vec<Change>) {
    CHANGES
        .scope(RefCell::new(Vec::new()), async move {
            let output = work.await;
            let changes = CHANGES.with(|changes| changes.take());
            (output, changes)
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn notes_reach_the_collector_of_their_own_request_only() {
        let (out, changes) = collect(async {
            note("user.create", "alice");
            tokio::task::yield_now().await;
            note("user.delete", "bob");
            7
        })
        .await;
        assert_eq!(out, 7);
        assert_eq!(
            changes,
            vec![
                ("user.create", "alice".to_owned()),
                ("user.delete", "bob".to_owned())
            ]
        );
        let ((), none) = collect(async {}).await;
        assert!(none.is_empty());
        note("outside", "-"); // no collector: ignored, no panic
    }
}
