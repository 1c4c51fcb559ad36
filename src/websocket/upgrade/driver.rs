//! One loop-driven handshake in progress: the [`Driver`] reads and writes the
//! socket (through the TLS session, if any: the connection's own [`Transport`]) on
//! one io watcher with a timer, and the [`Side`] (server or client) parses the
//! peer's head and says what to answer.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::panic::{self, AssertUnwindSafe};
use std::rc::{Rc, Weak};
use std::time::Duration;

use crate::ev::{Events, Io, Loop, Timer};
use crate::handshake::{
    self, Answer, ClientHandshake, HandshakeError, Request, Response, ServerHandshake,
};
#[cfg(feature = "deflate")]
use crate::proto::Compression;
use crate::websocket::transport::{Parts, Transport};

use super::{HandshakeOptions, UpgradeError, Upgraded};

/// What differs between the two sides of the handshake.
pub(super) trait Side: 'static {
    type Head;
    /// Parses input; Some once the peer's head is complete.
    fn feed(&mut self, data: &[u8]) -> Result<Option<Self::Head>, HandshakeError>;
    /// What to write once the head is parsed (the server's 101) and what was
    /// agreed, or what to write before failing with the error (a refusal). May run
    /// user code (the request hook): the driver is not borrowed meanwhile.
    fn answer(&self, head: &Self::Head) -> Result<(Vec<u8>, Agreed), (Vec<u8>, UpgradeError)>;
    /// What to write before closing after a bad head (the server's 400/426).
    fn refusal(&self, err: &HandshakeError) -> Vec<u8>;
    fn leftover(&mut self) -> Vec<u8>;
}

/// What a handshake agreed on besides the upgrade itself.
pub(super) struct Agreed {
    protocol: Option<String>,
    #[cfg(feature = "deflate")]
    compression: Option<Compression>,
}

impl Agreed {
    /// A subprotocol (or none), and no extension.
    fn protocol(protocol: Option<String>) -> Agreed {
        Agreed {
            protocol,
            #[cfg(feature = "deflate")]
            compression: None,
        }
    }
}

pub(super) struct ServerSide {
    pub(super) parser: ServerHandshake,
    pub(super) options: Rc<HandshakeOptions>,
    /// The client's address, given to the request in [`Request::peer`].
    pub(super) peer: Option<SocketAddr>,
    /// The first bytes of the request (up to 5): a `HEAD ` gets no body, also in a
    /// refusal of a head that did not parse.
    pub(super) start: Vec<u8>,
}

impl Side for ServerSide {
    type Head = Request;
    fn feed(&mut self, data: &[u8]) -> Result<Option<Request>, HandshakeError> {
        let missing = HEAD.len().saturating_sub(self.start.len()).min(data.len());
        self.start.extend_from_slice(&data[..missing]);
        let mut request = self.parser.feed(data)?;
        if let Some(request) = request.as_mut() {
            request.peer = self.peer;
        }
        Ok(request)
    }
    fn answer(&self, request: &Request) -> Result<(Vec<u8>, Agreed), (Vec<u8>, UpgradeError)> {
        let options = &self.options;
        let answer = match &options.on_request {
            Some(hook) => hook(request),
            None => Answer::accept(),
        };
        if !answer.is_accept() || !request.upgrade {
            return Err(match answer.to_bytes(request, None) {
                Ok(bytes) => (
                    bytes,
                    UpgradeError::Refused {
                        status: answer.status_code(),
                    },
                ),
                // An accept of a plain request: answered as without a hook.
                Err(err @ HandshakeError::MissingUpgrade) => (
                    head_only(request.method == "HEAD", handshake::error_response(&err)),
                    UpgradeError::Handshake(err),
                ),
                Err(err) => (
                    head_only(
                        request.method == "HEAD",
                        handshake::internal_error_response(),
                    ),
                    UpgradeError::Answer(err),
                ),
            });
        }
        let answer = match (answer.chosen_protocol(), &options.select_protocol) {
            (None, Some(select)) => match select(request)
                .filter(|p| request.protocols.iter().any(|offered| offered == p))
            {
                Some(protocol) => answer.protocol(protocol),
                None => answer,
            },
            _ => answer,
        };
        let protocol = answer.chosen_protocol().map(str::to_owned);
        #[cfg_attr(not(feature = "deflate"), allow(unused_mut))]
        let mut agreed = Agreed::protocol(protocol);
        #[cfg(feature = "deflate")]
        let extensions = options.deflate.as_ref().and_then(|deflate| {
            let (extensions, compression) =
                handshake::deflate::accept(&request.extensions, deflate)?;
            agreed.compression = Some(compression);
            Some(extensions)
        });
        #[cfg(not(feature = "deflate"))]
        let extensions: Option<String> = None;
        match answer.to_bytes(request, extensions.as_deref()) {
            Ok(bytes) => Ok((bytes, agreed)),
            Err(err) => Err((
                handshake::internal_error_response(),
                UpgradeError::Answer(err),
            )),
        }
    }
    fn refusal(&self, err: &HandshakeError) -> Vec<u8> {
        head_only(self.start == HEAD, handshake::error_response(err))
    }
    fn leftover(&mut self) -> Vec<u8> {
        self.parser.take_leftover()
    }
}

const HEAD: &[u8] = b"HEAD ";

/// The server's own response (400, 500) without its body when the request is a
/// `HEAD` (its `Content-Length` stays, as for the hook's answers).
fn head_only(head: bool, mut response: Vec<u8>) -> Vec<u8> {
    if head {
        if let Some(end) = response.windows(4).position(|w| w == b"\r\n\r\n") {
            response.truncate(end + 4);
        }
    }
    response
}

pub(super) struct ClientSide {
    pub(super) parser: ClientHandshake,
}

impl Side for ClientSide {
    type Head = Response;
    fn feed(&mut self, data: &[u8]) -> Result<Option<Response>, HandshakeError> {
        self.parser.feed(data)
    }
    fn answer(&self, response: &Response) -> Result<(Vec<u8>, Agreed), (Vec<u8>, UpgradeError)> {
        let agreed = Agreed {
            protocol: response.protocol.clone(),
            #[cfg(feature = "deflate")]
            compression: response.compression,
        };
        Ok((Vec::new(), agreed))
    }
    fn refusal(&self, _err: &HandshakeError) -> Vec<u8> {
        Vec::new()
    }
    fn leftover(&mut self) -> Vec<u8> {
        self.parser.take_leftover()
    }
}

pub(super) type Done<H> = Box<dyn FnOnce(Result<Upgraded<H>, UpgradeError>)>;

/// Aborts one handshake in progress (nothing if it is over).
type AbortFn = Box<dyn Fn()>;

thread_local! {
    /// Handshakes in progress on this thread, by driver address: their loop's
    /// address and how to abort them, for [`abort_all`]. A handshake keeps itself
    /// alive through its watchers, so without this one whose listener was dropped
    /// (or a bare `accept`/`upgrade`) would keep its socket and its loop forever
    /// once the loop is no longer run.
    static LIVE: RefCell<HashMap<usize, (usize, AbortFn)>> = RefCell::new(HashMap::new());
}

/// Ends every handshake in progress on `lp` with [`UpgradeError::Aborted`] (each
/// socket closed, each `done` called); how many.
pub(crate) fn abort_all(lp: &Loop) -> usize {
    let key = lp.as_raw() as usize;
    let aborts: Vec<AbortFn> = LIVE.with(|live| {
        let mut live = live.borrow_mut();
        let ids: Vec<usize> = live
            .iter()
            .filter(|(_, (l, _))| *l == key)
            .map(|(id, _)| *id)
            .collect();
        ids.iter()
            .filter_map(|id| live.remove(id))
            .map(|(_, abort)| abort)
            .collect()
    });
    let count = aborts.len();
    for abort in aborts {
        abort();
    }
    count
}

/// One handshake in progress: writes `out`, reads and parses the peer's head, and
/// finishes once the head is parsed and everything is written.
pub(super) struct Driver<S: Side> {
    lp: Loop,
    link: Option<Box<dyn Transport>>,
    io: Option<Io>,
    timer: Option<Timer>,
    out: Vec<u8>,
    written: usize,
    /// Nothing waits in the TLS session to be written (always, without TLS).
    flushed: bool,
    /// `None` while its `answer` runs (user code, with the driver not borrowed).
    side: Option<S>,
    /// The peer's head, parsed and not yet answered.
    unanswered: Option<S::Head>,
    parsed: Option<(S::Head, Agreed)>,
    /// A bad head: the refusal (400/426) is in `out`; we fail once it is written.
    refused: Option<UpgradeError>,
    failure: Option<UpgradeError>,
    done: Option<Done<S::Head>>,
}

impl<S: Side> Driver<S> {
    /// Starts the handshake; the driver keeps itself alive until it finishes (the
    /// weak reference then no longer upgrades).
    pub(super) fn start(
        lp: &Loop,
        parts: Parts,
        timeout: Duration,
        out: Vec<u8>,
        side: S,
        done: Done<S::Head>,
    ) -> Weak<RefCell<Self>> {
        let link = match parts.open() {
            Ok(link) => link,
            Err(err) => {
                done(Err(UpgradeError::Io(err)));
                return Weak::new();
            }
        };
        let fd = link.fd();
        let driver = Rc::new(RefCell::new(Driver {
            lp: lp.clone(),
            link: Some(link),
            io: None,
            timer: None,
            out,
            written: 0,
            flushed: true,
            side: Some(side),
            unanswered: None,
            parsed: None,
            refused: None,
            failure: None,
            done: Some(done),
        }));
        // The watchers' closures keep the driver alive until it finishes.
        let keep = driver.clone();
        let io = match Io::new(lp, fd, Events::READ | Events::WRITE, move |events| {
            Driver::step(&keep, events)
        }) {
            Ok(io) => io,
            Err(err) => {
                let done = driver.borrow_mut().done.take();
                if let Some(done) = done {
                    done(Err(UpgradeError::Io(io::Error::new(
                        io::ErrorKind::InvalidInput,
                        err,
                    ))));
                }
                return Weak::new();
            }
        };
        let keep = driver.clone();
        let timer = Timer::new(lp, timeout, Duration::ZERO, move |_| {
            keep.borrow_mut().failure = Some(UpgradeError::Timeout);
            Driver::step(&keep, Events::empty());
        });
        io.start();
        timer.start();
        let mut d = driver.borrow_mut();
        d.io = Some(io);
        d.timer = Some(timer);
        drop(d);
        let weak = Rc::downgrade(&driver);
        let abort = weak.clone();
        LIVE.with(|live| {
            let entry: (usize, AbortFn) = (
                lp.as_raw() as usize,
                Box::new(move || Driver::abort(&abort)),
            );
            live.borrow_mut()
                .insert(Rc::as_ptr(&driver) as usize, entry);
        });
        Driver::arm(&driver);
        weak
    }

    /// Ends a handshake in progress with [`UpgradeError::Aborted`] (its socket
    /// closed, `done` called); nothing if it is over.
    pub(super) fn abort(this: &Weak<RefCell<Self>>) {
        let Some(this) = this.upgrade() else {
            return;
        };
        let Ok(mut d) = this.try_borrow_mut() else {
            return; // cannot happen: no user code runs while it is borrowed
        };
        if d.done.is_none() {
            return;
        }
        d.failure = Some(UpgradeError::Aborted);
        drop(d);
        Driver::arm(&this);
    }

    fn step(this: &Rc<RefCell<Self>>, events: Events) {
        let mut d = this.borrow_mut();
        if d.done.is_none() || d.side.is_none() {
            return; // over, or its answer is being decided (a nested loop run)
        }
        let reading = d.failure.is_none()
            && d.unanswered.is_none()
            && d.parsed.is_none()
            && d.refused.is_none();
        if events.contains(Events::READ) && reading {
            d.read();
        }
        if let Some(head) = d.unanswered.take().filter(|_| d.failure.is_none()) {
            let side = d.side.take().expect("checked above");
            drop(d);
            let decided = panic::catch_unwind(AssertUnwindSafe(|| side.answer(&head)));
            d = this.borrow_mut();
            d.side = Some(side);
            let decided = match decided {
                Ok(decided) => decided,
                Err(payload) => {
                    // The hook panicked: the socket is closed and `done` told,
                    // then the panic goes on (the ev layer carries it out of `run`).
                    d.failure = Some(UpgradeError::Io(io::Error::other(
                        "the request hook panicked",
                    )));
                    drop(d);
                    Driver::arm(this);
                    panic::resume_unwind(payload);
                }
            };
            if d.done.is_none() {
                return;
            }
            match decided {
                Ok((answer, agreed)) => {
                    d.out.extend_from_slice(&answer);
                    d.parsed = Some((head, agreed));
                }
                Err((refusal, err)) => {
                    d.out.extend_from_slice(&refusal);
                    d.refused = Some(err);
                }
            }
        }
        if d.failure.is_none() {
            d.write();
        }
        drop(d);
        Driver::arm(this);
    }

    fn read(&mut self) {
        let mut buf = [0u8; 4096];
        loop {
            let (Some(link), Some(side)) = (self.link.as_mut(), self.side.as_mut()) else {
                return;
            };
            match link.read(&mut buf) {
                Ok(0) => {
                    self.failure = Some(UpgradeError::Eof);
                    return;
                }
                Ok(n) => match side.feed(&buf[..n]) {
                    Ok(None) => {}
                    Ok(Some(head)) => {
                        self.unanswered = Some(head);
                        return;
                    }
                    Err(err) => {
                        let refusal = side.refusal(&err);
                        self.out.extend_from_slice(&refusal);
                        self.refused = Some(UpgradeError::Handshake(err));
                        return;
                    }
                },
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => return,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => {
                    self.failure = Some(UpgradeError::from(err));
                    return;
                }
            }
        }
    }

    /// Writes `out`, then what the TLS session holds; `flushed` once all is out.
    fn write(&mut self) {
        let Some(link) = self.link.as_mut() else {
            return;
        };
        while self.written < self.out.len() {
            match link.write(&self.out[self.written..]) {
                Ok(n) => self.written += n,
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
                Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
                Err(err) => {
                    self.failure = Some(UpgradeError::from(err));
                    return;
                }
            }
        }
        match link.flush() {
            Ok(()) => self.flushed = !link.wants_write(),
            Err(err) => self.failure = Some(UpgradeError::from(err)),
        }
    }

    /// Finishes on failure or success; otherwise waits for what is missing.
    fn arm(this: &Rc<RefCell<Self>>) {
        let mut d = this.borrow_mut();
        let all_written = d.written == d.out.len() && d.flushed;
        if all_written && d.failure.is_none() {
            d.failure = d.refused.take();
        }
        let outcome = if let Some(failure) = d.failure.take() {
            if let Some(link) = d.link.take() {
                link.close(true); // the peer may still be sending
            }
            Some(Err(failure))
        } else if d.parsed.is_some() && all_written {
            let (head, agreed) = d.parsed.take().expect("checked above");
            let leftover = d.side.as_mut().map(Side::leftover).unwrap_or_default();
            d.link.take().map(|link| {
                let parts = link.into_parts();
                Ok(Upgraded {
                    stream: parts.socket,
                    #[cfg(feature = "tls")]
                    tls: parts.tls,
                    head,
                    protocol: agreed.protocol,
                    leftover,
                    event_loop: d.lp.clone(),
                    #[cfg(feature = "deflate")]
                    compression: agreed.compression,
                })
            })
        } else {
            let mut events = Events::empty();
            if d.parsed.is_none() && d.refused.is_none() && d.unanswered.is_none() {
                events |= Events::READ;
            }
            if !all_written {
                events |= Events::WRITE;
            }
            if let Some(io) = d.io.as_ref() {
                io.set_events(events);
            }
            None
        };
        if let Some(outcome) = outcome {
            let _ = LIVE.try_with(|live| live.borrow_mut().remove(&(Rc::as_ptr(this) as usize)));
            let done = d.done.take();
            // Dropping the watchers releases their closures' hold on the driver.
            let (io, timer) = (d.io.take(), d.timer.take());
            drop(d);
            drop((io, timer));
            if let Some(done) = done {
                done(outcome);
            }
        }
    }
}

/// A server handshake in progress, as its listener holds it: it can be aborted,
/// and does not keep the handshake alive.
#[derive(Default)]
pub(crate) struct HandshakeHandle(Weak<RefCell<Driver<ServerSide>>>);

impl HandshakeHandle {
    pub(super) fn new(driver: Weak<RefCell<Driver<ServerSide>>>) -> Self {
        HandshakeHandle(driver)
    }

    /// Whether the handshake is still in progress.
    pub(crate) fn is_live(&self) -> bool {
        self.0
            .upgrade()
            .is_some_and(|d| d.try_borrow().map_or(true, |d| d.done.is_some()))
    }

    /// Ends it now with [`UpgradeError::Aborted`].
    pub(crate) fn abort(&self) {
        Driver::abort(&self.0);
    }
}
