//! The life of a protocol thread that owns its sockets: it starts in a network namespace, reports ready
//! before it serves, takes commands over a channel woken by an eventfd, answers each caller, and ends on
//! [`Handle::stop`] or on its own (a fatal error or a panic), saying why. The BGP speaker's thread and the BFD
//! thread both run on it.

use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};

use metallb_sys::worker::{lock, panic_message};
use metallb_sys::EventFd;

use crate::{netns, BgpError};

/// How the thread answers one command.
pub(crate) type Reply<T> = SyncSender<Result<T, BgpError>>;

/// What the thread and its handle share.
#[derive(Default)]
pub(crate) struct Control {
    stop: AtomicBool,
    /// Why the thread ended, if it ended on its own.
    failure: Mutex<Option<String>>,
}

impl Control {
    pub(crate) fn stopping(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}

/// The thread's side: where its commands arrive.
pub(crate) struct Inbox<C> {
    pub(crate) control: Arc<Control>,
    pub(crate) commands: Receiver<C>,
    /// Written by every command and by [`Handle::stop`]; the thread polls it with its sockets.
    pub(crate) wake: Arc<EventFd>,
}

/// What a thread started with [`start`] does.
pub(crate) trait Worker {
    /// Serves until [`Control::stopping`], or fails (the reason is what callers see in
    /// [`BgpError::Stopped`]).
    fn run(&mut self) -> Result<(), String>;
    /// Ends the sessions as a stop should (a Cease, an AdminDown), closes the sockets, releases every waiter.
    fn shut_down(&mut self);
    /// Called instead when `shut_down` panicked: release every waiter it did not.
    fn abandon(&mut self);
}

/// The caller's side of a running thread.
pub(crate) struct Handle<C> {
    control: Arc<Control>,
    commands: Mutex<Sender<C>>,
    wake: Arc<EventFd>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

/// Starts thread `name`, which enters `netns` (if given), builds its worker with `make` and runs it;
/// returns once the worker runs, or with the namespace's (or `make`'s) error. `what` names the thread in
/// errors ("the BFD thread"). A panic in the worker is caught: callers learn why the thread ended, and the
/// worker still shuts down (its peers are told).
pub(crate) fn start<C, W, F>(name: &str, what: &str, netns: Option<&str>, make: F) -> Result<Handle<C>, BgpError>
where
    C: Send + 'static,
    W: Worker,
    F: FnOnce(Inbox<C>) -> Result<W, BgpError> + Send + 'static,
{
    let wake = Arc::new(
        EventFd::new().map_err(|source| BgpError::Io { context: format!("creating an eventfd for {what}"), source })?,
    );
    let control = Arc::new(Control::default());
    let (command_tx, command_rx) = mpsc::channel();
    let (ready_tx, ready_rx) = mpsc::sync_channel(1);
    let netns = netns.map(str::to_string);
    let inbox = Inbox { control: Arc::clone(&control), commands: command_rx, wake: Arc::clone(&wake) };
    let thread = thread::Builder::new()
        .name(name.into())
        .spawn(move || {
            let control = Arc::clone(&inbox.control);
            if let Some(name) = &netns {
                if let Err(err) = netns::enter(name) {
                    let _ = ready_tx.send(Err(err));
                    return;
                }
            }
            let mut worker = match make(inbox) {
                Ok(worker) => worker,
                Err(err) => {
                    let _ = ready_tx.send(Err(err));
                    return;
                }
            };
            let _ = ready_tx.send(Ok(()));
            // A panic is a bug here, never the peers' doing: it is caught so that callers learn why the
            // thread ended, the peers are still told, and every waiter is released.
            let failure = match panic::catch_unwind(AssertUnwindSafe(|| worker.run())) {
                Ok(Ok(())) => None,
                Ok(Err(err)) => Some(err),
                Err(payload) => Some(format!("it panicked: {}", panic_message(Some(payload), ""))),
            };
            if let Some(failure) = failure {
                *lock(&control.failure) = Some(failure);
            }
            if panic::catch_unwind(AssertUnwindSafe(|| worker.shut_down())).is_err() {
                worker.abandon();
            }
        })
        .map_err(|source| BgpError::Io { context: format!("starting {what}"), source })?;
    match ready_rx.recv() {
        Ok(Ok(())) => Ok(Handle { control, commands: Mutex::new(command_tx), wake, thread: Mutex::new(Some(thread)) }),
        Ok(Err(err)) => {
            let _ = thread.join();
            Err(err)
        }
        Err(_) => Err(BgpError::Stopped(panic_message(thread.join().err(), "it ended before it was ready"))),
    }
}

impl<C> Handle<C> {
    /// Sends a command and waits for the answer, however long the thread takes to apply it: giving up early
    /// would report a failure for a change the thread still makes. A thread that ends drops the reply,
    /// which ends the wait.
    pub(crate) fn call<T>(&self, command: impl FnOnce(Reply<T>) -> C) -> Result<T, BgpError> {
        let (reply_tx, reply_rx) = mpsc::sync_channel(1);
        if self.control.stopping() || lock(&self.commands).send(command(reply_tx)).is_err() {
            return Err(self.gone());
        }
        self.wake.notify();
        reply_rx.recv().unwrap_or_else(|_| Err(self.gone()))
    }

    pub(crate) fn is_running(&self) -> bool {
        lock(&self.thread).as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Asks the thread to shut down and joins it. Idempotent.
    pub(crate) fn stop(&self) {
        self.control.stop.store(true, Ordering::SeqCst);
        self.wake.notify();
        let thread = lock(&self.thread).take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }

    fn gone(&self) -> BgpError {
        if self.control.stopping() {
            return BgpError::NotRunning;
        }
        // The thread is ending (its channels closed while it unwound): wait until it has said why.
        let thread = lock(&self.thread).take();
        if let Some(thread) = thread {
            let _ = thread.join();
        }
        let failure = lock(&self.control.failure).clone();
        BgpError::Stopped(failure.unwrap_or_else(|| "it panicked".into()))
    }
}
