//! The slot a Python object keeps its running worker in (the Responder's and the Membership's threads).

use std::sync::{Arc, Mutex, PoisonError};

use pyo3::prelude::*;

/// A worker thread owned by a Python object: started from a config, stoppable, asked if still running.
pub trait Worker: Send + Sync + Sized {
    type Config: Clone + Send + Sync;
    type Error: Send;
    fn launch(config: Self::Config) -> Result<Self, Self::Error>;
    fn running(&self) -> bool;
    fn halt(&self);
}

impl Worker for metallb_l2::Responder {
    type Config = metallb_l2::ResponderConfig;
    type Error = metallb_l2::L2Error;
    fn launch(config: Self::Config) -> Result<Self, Self::Error> {
        Self::start(config)
    }
    fn running(&self) -> bool {
        self.is_running()
    }
    fn halt(&self) {
        self.stop()
    }
}

impl Worker for metallb_gossip::Gossip {
    type Config = metallb_gossip::GossipConfig;
    type Error = metallb_gossip::GossipError;
    fn launch(config: Self::Config) -> Result<Self, Self::Error> {
        Self::start(config)
    }
    fn running(&self) -> bool {
        self.is_running()
    }
    fn halt(&self) {
        self.stop()
    }
}

/// At most one running worker; start and stop release the GIL while the thread starts or ends.
pub struct Slot<W>(Mutex<Option<Arc<W>>>);

impl<W: Worker> Slot<W> {
    pub fn new() -> Self {
        Slot(Mutex::new(None))
    }

    pub fn current(&self) -> Option<Arc<W>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Starts a worker unless one is running (then `already` is the error).
    pub fn start(&self, py: Python<'_>, config: &W::Config, already: W::Error) -> Result<(), W::Error> {
        py.detach(|| {
            let mut slot = self.0.lock().unwrap_or_else(PoisonError::into_inner);
            if slot.as_ref().is_some_and(|w| w.running()) {
                return Err(already);
            }
            *slot = Some(Arc::new(W::launch(config.clone())?));
            Ok(())
        })
    }

    /// Stops the worker, if any, and forgets it.
    pub fn stop(&self, py: Python<'_>) {
        py.detach(|| {
            let worker = self.0.lock().unwrap_or_else(PoisonError::into_inner).take();
            if let Some(worker) = worker {
                worker.halt();
            }
        })
    }
}
