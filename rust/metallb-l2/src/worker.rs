//! What the worker threads of the responder and of the gossip member (metallb-gossip) share.

/// Why a worker thread ended before it reported ready: its panic message, or `early` when it returned
/// without panicking (it failed before it was ready, and said so through its ready channel).
pub fn panic_message(payload: Option<Box<dyn std::any::Any + Send>>, early: &str) -> String {
    let Some(payload) = payload else { return early.into() };
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "it panicked".into())
}
