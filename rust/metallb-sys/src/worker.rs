//! Helpers of a worker thread that reports ready through a channel before it serves (the layer 2 responder,
//! the gossip member), and of the API side that shares state with it.

use std::any::Any;
use std::sync::{Mutex, MutexGuard, PoisonError};

/// Why a worker thread ended before it reported ready: its panic message, or `early` when it returned
/// without panicking (it failed before it was ready, and said so through its ready channel).
pub fn panic_message(payload: Option<Box<dyn Any + Send>>, early: &str) -> String {
    let Some(payload) = payload else { return early.into() };
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "it panicked".into())
}

/// Locks `mutex` even if a thread panicked while holding it: the state behind it (a snapshot, a failure
/// reason, a join handle) is replaced whole, never left half-written, so it stays readable.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn panic_message_says_why_the_thread_ended() {
        let joined = |f: fn()| std::thread::spawn(f).join().err();
        assert_eq!(panic_message(joined(|| panic!("a literal")), "early"), "a literal");
        assert_eq!(panic_message(joined(|| panic!("formatted {}", 7)), "early"), "formatted 7");
        assert_eq!(panic_message(joined(|| std::panic::panic_any(7u8)), "early"), "it panicked");
        assert_eq!(panic_message(joined(|| {}), "it ended early"), "it ended early");
    }

    #[test]
    fn lock_reads_through_a_poisoned_mutex() {
        let mutex = std::sync::Arc::new(Mutex::new(1));
        let held = std::sync::Arc::clone(&mutex);
        let _ = std::thread::spawn(move || {
            let _guard = held.lock().unwrap();
            panic!("poisons the mutex");
        })
        .join();
        assert!(mutex.is_poisoned());
        assert_eq!(*lock(&mutex), 1);
    }
}
