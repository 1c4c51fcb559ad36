//! Name resolution off the loop: one thread per lookup, which hands its answer over
//! through a shared slot and wakes the loop with an [`Async`].

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;

use crate::ev::{Async, Loop};

/// A custom resolver ([`ConnectOptions::resolver`](super::ConnectOptions::resolver)):
/// host and port in, addresses out, run on the resolver thread.
pub type Resolver = Arc<dyn Fn(&str, u16) -> io::Result<Vec<SocketAddr>> + Send + Sync>;

type Answer = io::Result<Vec<SocketAddr>>;

/// One lookup in progress. Dropping it abandons the lookup: the thread finishes on
/// its own, its answer is dropped with the slot and its wake-up goes nowhere.
pub(super) struct Lookup {
    // Declared first, so stopped before the slot goes (the order does not matter for
    // soundness: a sender outliving the watcher is harmless).
    _wake: Async,
    slot: Arc<Mutex<Option<Answer>>>,
}

impl Lookup {
    /// Starts resolving `host`:`port` with `resolver` (the system's `getaddrinfo`
    /// when `None`) on a new thread; `ready` runs on the loop once the answer is in.
    pub(super) fn start(
        lp: &Loop,
        resolver: Option<Resolver>,
        host: &str,
        port: u16,
        ready: impl FnMut() + 'static,
    ) -> io::Result<Lookup> {
        let slot: Arc<Mutex<Option<Answer>>> = Arc::new(Mutex::new(None));
        let mut ready = ready;
        let wake = Async::new(lp, move |_| ready());
        wake.start();
        let (sender, answer, host) = (wake.sender(), slot.clone(), host.to_owned());
        thread::Builder::new()
            .name("ws-resolve".into())
            .spawn(move || {
                let result = panic::catch_unwind(AssertUnwindSafe(|| match resolver {
                    Some(resolve) => resolve(&host, port),
                    None => (host.as_str(), port)
                        .to_socket_addrs()
                        .map(|addrs| addrs.collect()),
                }))
                .unwrap_or_else(|_| Err(io::Error::other("the resolver panicked")));
                *answer.lock().unwrap_or_else(PoisonError::into_inner) = Some(result);
                sender.send();
            })?;
        Ok(Lookup { _wake: wake, slot })
    }

    /// The answer, once the thread has given it.
    pub(super) fn take(&self) -> Option<Answer> {
        self.slot
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
    }
}
