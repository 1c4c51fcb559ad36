//! One loop-driven handshake in progress: the [`Driver`] reads and writes the
//! socket (through the TLS session, if any: the connection's own [`Transport`]) on
//! one io watcher with a timer, and the [`Side`] (server or client) parses the
//! peer's head and says what to answer.

use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::time::Duration;

use crate::ev::{Events, Io, Loop, Timer};
use crate::handshake::{self, ClientHandshake, HandshakeError, Request, Response, ServerHandshake};
use crate::websocket::transport::{Parts, Transport};
#[cfg(feature = "deflate")]
use crate::{handshake::deflate::PerMessageDeflate, proto::Compression};

use super::{ProtocolSelector, UpgradeError, Upgraded};

/// What differs between the two sides of the handshake.
pub(super) trait Side: 'static {
    type Head;
    /// Parses input; Some once the peer's head is complete.
    fn feed(&mut self, data: &[u8]) -> Result<Option<Self::Head>, HandshakeError>;
    /// What to write once the head is parsed (the server's 101), and what was
    /// agreed.
    fn answer(&mut self, head: &Self::Head) -> (Vec<u8>, Agreed);
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
    pub(super) select: Option<ProtocolSelector>,
    #[cfg(feature = "deflate")]
    pub(super) deflate: Option<PerMessageDeflate>,
}

impl Side for ServerSide {
    type Head = Request;
    fn feed(&mut self, data: &[u8]) -> Result<Option<Request>, HandshakeError> {
        self.parser.feed(data)
    }
    fn answer(&mut self, request: &Request) -> (Vec<u8>, Agreed) {
        let protocol = self
            .select
            .as_ref()
            .and_then(|select| select(request))
            .filter(|p| request.protocols.iter().any(|offered| offered == p));
        #[cfg(feature = "deflate")]
        if let Some(deflate) = &self.deflate {
            if let Some((answer, agreed)) = handshake::deflate::accept(&request.extensions, deflate)
            {
                let bytes = handshake::response_with_extensions(
                    request,
                    protocol.as_deref(),
                    Some(&answer),
                );
                let agreed = Agreed {
                    protocol,
                    compression: Some(agreed),
                };
                return (bytes, agreed);
            }
        }
        let bytes = handshake::response(request, protocol.as_deref());
        (bytes, Agreed::protocol(protocol))
    }
    fn refusal(&self, err: &HandshakeError) -> Vec<u8> {
        handshake::error_response(err)
    }
    fn leftover(&mut self) -> Vec<u8> {
        self.parser.take_leftover()
    }
}

pub(super) struct ClientSide {
    pub(super) parser: ClientHandshake,
}

impl Side for ClientSide {
    type Head = Response;
    fn feed(&mut self, data: &[u8]) -> Result<Option<Response>, HandshakeError> {
        self.parser.feed(data)
    }
    fn answer(&mut self, response: &Response) -> (Vec<u8>, Agreed) {
        let agreed = Agreed {
            protocol: response.protocol.clone(),
            #[cfg(feature = "deflate")]
            compression: response.compression,
        };
        (Vec::new(), agreed)
    }
    fn refusal(&self, _err: &HandshakeError) -> Vec<u8> {
        Vec::new()
    }
    fn leftover(&mut self) -> Vec<u8> {
        self.parser.take_leftover()
    }
}

pub(super) type Done<H> = Box<dyn FnOnce(Result<Upgraded<H>, UpgradeError>)>;

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
    side: S,
    parsed: Option<(S::Head, Agreed)>,
    /// A bad head: the refusal (400/426) is in `out`; we fail once it is written.
    refused: Option<UpgradeError>,
    failure: Option<UpgradeError>,
    done: Option<Done<S::Head>>,
}

impl<S: Side> Driver<S> {
    pub(super) fn start(
        lp: &Loop,
        parts: Parts,
        timeout: Duration,
        out: Vec<u8>,
        side: S,
        done: Done<S::Head>,
    ) {
        let link = match parts.open() {
            Ok(link) => link,
            Err(err) => return done(Err(UpgradeError::Io(err))),
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
            side,
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
                return;
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
        Driver::arm(&driver);
    }

    fn step(this: &Rc<RefCell<Self>>, events: Events) {
        let mut d = this.borrow_mut();
        if d.done.is_none() {
            return;
        }
        let reading = d.failure.is_none() && d.parsed.is_none() && d.refused.is_none();
        if events.contains(Events::READ) && reading {
            d.read();
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
            let Some(link) = self.link.as_mut() else {
                return;
            };
            match link.read(&mut buf) {
                Ok(0) => {
                    self.failure = Some(UpgradeError::Eof);
                    return;
                }
                Ok(n) => match self.side.feed(&buf[..n]) {
                    Ok(None) => {}
                    Ok(Some(head)) => {
                        let (answer, agreed) = self.side.answer(&head);
                        self.out.extend_from_slice(&answer);
                        self.parsed = Some((head, agreed));
                        return;
                    }
                    Err(err) => {
                        let refusal = self.side.refusal(&err);
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
            let leftover = d.side.leftover();
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
            if d.parsed.is_none() && d.refused.is_none() {
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
