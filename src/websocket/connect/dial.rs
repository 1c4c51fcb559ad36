//! The connection in progress behind [`connect`](super::connect): the name lookup,
//! each address in turn, the proxy's tunnel, then the opening handshake.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::rc::Rc;
use std::time::Duration;

use socket2::{Domain, Protocol, SockAddr, Socket, Type};

use crate::ev::{Events, Io, Loop, Timer};
use crate::handshake::{ClientRequest, Response};
use crate::websocket::upgrade::{self, HandshakeOptions, Upgraded};

use super::proxy::{self, ProxyUrl};
use super::resolve::Lookup;
use super::{ConnectError, Done};

/// A connection in progress.
pub(super) struct Inner {
    pub(super) lp: Loop,
    pub(super) request: ClientRequest,
    /// Taken when the handshake starts.
    pub(super) handshake: Option<HandshakeOptions>,
    pub(super) connect_timeout: Duration,
    /// The WebSocket server's host and port (the `CONNECT` target through a proxy).
    pub(super) target: (String, u16),
    pub(super) proxy: Option<ProxyUrl>,
    /// The host and port connected to: the target, or the proxy.
    pub(super) dial: (String, u16),
    /// Addresses not tried yet.
    pub(super) addrs: VecDeque<SocketAddr>,
    pub(super) attempts: Vec<(SocketAddr, io::Error)>,
    pub(super) phase: Phase,
    /// `None` once called or cancelled.
    pub(super) done: Option<Done>,
}

/// Where the connection is. Each phase owns its watchers (dropped with it, which
/// releases their hold on the `Inner`) and its socket, declared after the watchers
/// so that they stop before it closes.
pub(super) enum Phase {
    /// Not started, or over.
    Idle,
    /// An IP address: the first connect starts on the next loop iteration, so the
    /// callback never runs inside [`connect`].
    Starting {
        _timer: Timer,
    },
    Resolving {
        lookup: Lookup,
        _timer: Timer,
    },
    Dialing {
        _io: Io,
        _timer: Timer,
        socket: Socket,
        addr: SocketAddr,
    },
    Tunnelling {
        io: Io,
        _timer: Timer,
        socket: TcpStream,
        request: Vec<u8>,
        written: usize,
        /// What was read of the proxy's answer (none of it belongs to the tunnel).
        answer: Vec<u8>,
    },
    /// [`upgrade::upgrade`] runs; a second handle on the socket to shut it down on
    /// cancel.
    Handshaking {
        shutdown: Option<TcpStream>,
    },
}

/// What a step decided, carried out once the `Inner` is no longer borrowed.
pub(super) enum Next {
    Wait,
    Fail(ConnectError),
    Handshake(TcpStream),
}

impl Inner {
    /// The lookup's answer is in.
    pub(super) fn resolved(this: &Rc<RefCell<Inner>>) {
        let answer = match &this.borrow().phase {
            Phase::Resolving { lookup, .. } => lookup.take(),
            _ => None,
        };
        let next = match answer {
            None => return,
            Some(Ok(addrs)) => {
                this.borrow_mut().addrs.extend(addrs);
                return Inner::dial_next(this);
            }
            Some(Err(error)) => Next::Fail(ConnectError::Resolve {
                host: this.borrow().dial.0.clone(),
                error,
            }),
        };
        Inner::carry_out(this, next);
    }

    pub(super) fn resolve_timed_out(this: &Rc<RefCell<Inner>>) {
        let d = this.borrow();
        let error = io::Error::new(
            io::ErrorKind::TimedOut,
            format!("no answer within {:?}", d.connect_timeout),
        );
        let host = d.dial.0.clone();
        drop(d);
        Inner::carry_out(this, Next::Fail(ConnectError::Resolve { host, error }));
    }

    /// Starts a connect to the next address; fails once none is left.
    pub(super) fn dial_next(this: &Rc<RefCell<Inner>>) {
        let mut d = this.borrow_mut();
        let next = loop {
            let Some(addr) = d.addrs.pop_front() else {
                let (host, port) = d.dial.clone();
                let attempts = std::mem::take(&mut d.attempts);
                break Next::Fail(ConnectError::Connect {
                    host,
                    port,
                    attempts,
                });
            };
            match Inner::start_dial(&d.lp, addr, d.connect_timeout, this) {
                Ok(phase) => {
                    // The old phase (a finished lookup, a failed attempt) goes after
                    // the borrow.
                    let old = std::mem::replace(&mut d.phase, phase);
                    drop(d);
                    drop(old);
                    return;
                }
                Err(err) => d.attempts.push((addr, err)),
            }
        };
        drop(d);
        Inner::carry_out(this, next);
    }

    /// A non-blocking connect to `addr`, watched for WRITE, with its timeout.
    pub(super) fn start_dial(
        lp: &Loop,
        addr: SocketAddr,
        timeout: Duration,
        this: &Rc<RefCell<Inner>>,
    ) -> io::Result<Phase> {
        let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
        socket.set_nonblocking(true)?;
        match socket.connect(&SockAddr::from(addr)) {
            Ok(()) => {}
            Err(err) if err.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(err) => return Err(err),
        }
        let keep = this.clone();
        let io = Io::new(lp, socket.as_raw_fd(), Events::WRITE, move |_| {
            Inner::dialled(&keep, false)
        })
        .map_err(|err| io::Error::new(io::ErrorKind::InvalidInput, err))?;
        let keep = this.clone();
        let timer = Timer::new(lp, timeout, Duration::ZERO, move |_| {
            Inner::dialled(&keep, true)
        });
        io.start();
        timer.start();
        Ok(Phase::Dialing {
            _io: io,
            _timer: timer,
            socket,
            addr,
        })
    }

    /// The connect attempt finished (the socket is writable) or timed out.
    pub(super) fn dialled(this: &Rc<RefCell<Inner>>, timed_out: bool) {
        let mut d = this.borrow_mut();
        let Phase::Dialing { socket, addr, .. } = &d.phase else {
            return;
        };
        let addr = *addr;
        let failure = if timed_out {
            Some(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no answer within {:?}", d.connect_timeout),
            ))
        } else {
            match socket.take_error() {
                Ok(None) => None,
                Ok(Some(err)) | Err(err) => Some(err),
            }
        };
        if let Some(err) = failure {
            d.attempts.push((addr, err));
            drop(d);
            return Inner::dial_next(this);
        }
        let Phase::Dialing { socket, .. } = std::mem::replace(&mut d.phase, Phase::Idle) else {
            unreachable!("matched above");
        };
        let stream = TcpStream::from(socket);
        let _ = stream.set_nodelay(true);
        let next = match d.proxy.as_ref() {
            None => Next::Handshake(stream),
            Some(proxy) => {
                let request = proxy.connect_request(&d.target.0, d.target.1);
                match Inner::start_tunnel(&mut d, this, stream, request) {
                    Ok(()) => Next::Wait,
                    Err(err) => Next::Fail(ConnectError::Proxy(err)),
                }
            }
        };
        drop(d);
        Inner::carry_out(this, next);
    }

    /// Sends `CONNECT` to the proxy on `stream` and waits for its answer.
    pub(super) fn start_tunnel(
        d: &mut Inner,
        this: &Rc<RefCell<Inner>>,
        stream: TcpStream,
        request: Vec<u8>,
    ) -> io::Result<()> {
        let keep = this.clone();
        let io = Io::new(
            &d.lp,
            stream.as_raw_fd(),
            Events::READ | Events::WRITE,
            move |_| Inner::tunnel_step(&keep, false),
        )
        .map_err(|err| io::Error::new(io::ErrorKind::InvalidInput, err))?;
        let keep = this.clone();
        let timeout = d
            .handshake
            .as_ref()
            .map_or(upgrade::DEFAULT_HANDSHAKE_TIMEOUT, |h| h.timeout);
        let timer = Timer::new(&d.lp, timeout, Duration::ZERO, move |_| {
            Inner::tunnel_step(&keep, true)
        });
        io.start();
        timer.start();
        d.phase = Phase::Tunnelling {
            io,
            _timer: timer,
            socket: stream,
            request,
            written: 0,
            answer: Vec::new(),
        };
        Ok(())
    }

    /// Writes the `CONNECT` request, reads the proxy's answer head (no byte past it:
    /// those belong to the tunnel), and decides.
    pub(super) fn tunnel_step(this: &Rc<RefCell<Inner>>, timed_out: bool) {
        let mut d = this.borrow_mut();
        let limit = d
            .handshake
            .as_ref()
            .map_or(crate::handshake::DEFAULT_MAX_HEADER_SIZE, |h| {
                h.max_header_size
            });
        let Phase::Tunnelling {
            io,
            socket,
            request,
            written,
            answer,
            ..
        } = &mut d.phase
        else {
            return;
        };
        let outcome = if timed_out {
            Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the proxy did not answer CONNECT in time",
            ))
        } else {
            tunnel_io(socket, request, written, answer, limit)
        };
        let next = match outcome {
            Ok(None) => {
                let events = if *written < request.len() {
                    Events::READ | Events::WRITE
                } else {
                    Events::READ
                };
                io.set_events(events);
                Next::Wait
            }
            Ok(Some(head)) => match proxy::parse_status(&head) {
                Ok((status, _)) if (200..300).contains(&status) => {
                    let Phase::Tunnelling { socket, .. } =
                        std::mem::replace(&mut d.phase, Phase::Idle)
                    else {
                        unreachable!("matched above");
                    };
                    Next::Handshake(socket)
                }
                Ok((status, reason)) => Next::Fail(ConnectError::ProxyRefused { status, reason }),
                Err(what) => Next::Fail(ConnectError::Proxy(io::Error::new(
                    io::ErrorKind::InvalidData,
                    what,
                ))),
            },
            Err(err) => Next::Fail(ConnectError::Proxy(err)),
        };
        drop(d);
        Inner::carry_out(this, next);
    }

    /// Carries out a decision, with no borrow held.
    pub(super) fn carry_out(this: &Rc<RefCell<Inner>>, next: Next) {
        match next {
            Next::Wait => {}
            Next::Fail(err) => Inner::finish(this, Err(err)),
            Next::Handshake(stream) => {
                let mut d = this.borrow_mut();
                let options = d.handshake.take().unwrap_or_default();
                let request = d.request.clone();
                let lp = d.lp.clone();
                let old = std::mem::replace(
                    &mut d.phase,
                    Phase::Handshaking {
                        shutdown: stream.try_clone().ok(),
                    },
                );
                drop(d);
                drop(old);
                let keep = this.clone();
                upgrade::upgrade(&lp, stream, &request, options, move |result| {
                    Inner::finish(&keep, result.map_err(ConnectError::Upgrade))
                });
            }
        }
    }

    /// Calls the callback (unless cancelled) and ends the connection's phases.
    pub(super) fn finish(
        this: &Rc<RefCell<Inner>>,
        result: Result<Upgraded<Response>, ConnectError>,
    ) {
        let (phase, done) = {
            let mut d = this.borrow_mut();
            (std::mem::replace(&mut d.phase, Phase::Idle), d.done.take())
        };
        drop(phase);
        if let Some(done) = done {
            done(result);
        }
    }
}

/// One round of the `CONNECT` exchange: `Some(head)` once the proxy's answer head
/// is complete.
fn tunnel_io(
    socket: &mut TcpStream,
    request: &[u8],
    written: &mut usize,
    answer: &mut Vec<u8>,
    limit: usize,
) -> io::Result<Option<Vec<u8>>> {
    while *written < request.len() {
        match socket.write(&request[*written..]) {
            Ok(n) => *written += n,
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => break,
            Err(err) if err.kind() == io::ErrorKind::Interrupted => {}
            Err(err) => return Err(err),
        }
    }
    let mut buf = [0u8; 1024];
    loop {
        // Peek first, then consume no more than the head: what follows it is the
        // server's, for the handshake to read.
        let n = match socket.peek(&mut buf) {
            Ok(0) => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the proxy closed the connection before answering CONNECT",
                ))
            }
            Ok(n) => n,
            Err(err) if err.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(err) if err.kind() == io::ErrorKind::Interrupted => continue,
            Err(err) => return Err(err),
        };
        // The head's end may straddle what we hold and what we peeked.
        let keep = answer.len().min(3);
        let mut window = answer[answer.len() - keep..].to_vec();
        window.extend_from_slice(&buf[..n]);
        let take = match proxy::head_end(&window) {
            Some(end) => end - keep,
            None => n,
        };
        socket.read_exact(&mut buf[..take])?;
        answer.extend_from_slice(&buf[..take]);
        if proxy::head_end(answer).is_some() {
            return Ok(Some(std::mem::take(answer)));
        }
        if answer.len() > limit {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("the proxy's answer to CONNECT is longer than {limit} bytes"),
            ));
        }
    }
}
