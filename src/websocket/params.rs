use std::fmt;
use std::os::fd::OwnedFd;
use std::time::Duration;

use crate::ev::Loop;
#[cfg(feature = "deflate")]
use crate::proto::Compression;
use crate::proto::{Config, Fragment, OpCode, Rsv};

use super::deadlines::Timeouts;
use super::WebSocket;

pub(crate) type MsgRecv = Box<dyn FnMut(&WebSocket, Rsv, OpCode, &[u8], u16)>;
pub(crate) type FrameStart = Box<dyn FnMut(&WebSocket, bool, Rsv, OpCode, u64)>;
pub(crate) type FrameChunk = Box<dyn FnMut(&WebSocket, &[u8])>;
pub(crate) type FrameEnd = Box<dyn FnMut(&WebSocket)>;
pub(crate) type OnClose = Box<dyn FnMut(&WebSocket, u16)>;
pub(crate) type GenMask = crate::proto::MaskSource;
pub(crate) type Producer = Box<dyn FnMut(&WebSocket, &mut [u8]) -> Fragment>;

/// The default close timeout: how long a closing connection may go without progress
/// (our queued data and close frame leaving, then the peer's close reply arriving)
/// before the socket is closed with 1006.
pub const DEFAULT_CLOSE_TIMEOUT: Duration = Duration::from_secs(10);

/// The parameters of [`Server::new`](super::Server::new) and
/// [`Client::new`](super::Client::new): the Perl hash `{ fh => ..., on_msg_recv => ... }`
/// as a builder.
///
/// ```no_run
/// use net_websocket_ev::{Params, Server};
/// # let stream: std::net::TcpStream = unimplemented!();
/// let ws = Server::new(
///     Params::new(stream)
///         .buffering(true)
///         .max_recv_size(16 << 20)
///         .on_msg_recv(|ws, _rsv, opcode, msg, _status| {
///             ws.queue_msg(msg, opcode).ok();
///         })
///         .on_close(|_ws, code| println!("closed with {code}")),
/// )
/// .unwrap();
/// ```
pub struct Params {
    pub(crate) socket: OwnedFd,
    pub(crate) event_loop: Option<Loop>,
    pub(crate) config: Config,
    pub(crate) timeouts: Timeouts,
    pub(crate) initial_data: Vec<u8>,
    pub(crate) on_msg_recv: Option<MsgRecv>,
    pub(crate) on_frame_recv_start: Option<FrameStart>,
    pub(crate) on_frame_recv_chunk: Option<FrameChunk>,
    pub(crate) on_frame_recv_end: Option<FrameEnd>,
    pub(crate) on_close: Option<OnClose>,
    pub(crate) genmask: Option<GenMask>,
    #[cfg(feature = "tls")]
    pub(crate) tls: Option<crate::tls::Session>,
    /// Dropped when the connection's socket is closed (before `on_close`): the
    /// listener's count of its open connections.
    pub(crate) guard: Option<Box<dyn std::any::Any>>,
}

impl Params {
    /// Parameters for a connected socket whose opening handshake is done (Perl `fh`):
    /// a `TcpStream`, a `UnixStream`, or any `OwnedFd` of a stream socket. The
    /// connection takes ownership, sets `O_NONBLOCK`, and closes it exactly once.
    ///
    /// A raw fd is passed as `unsafe { OwnedFd::from_raw_fd(fd) }` (you promise it is
    /// yours to give).
    ///
    /// ```
    /// use net_websocket_ev::{Params, Server};
    /// use std::os::fd::{FromRawFd, OwnedFd};
    /// use std::os::unix::net::UnixStream;
    ///
    /// let (socket, _peer) = UnixStream::pair()?;
    /// let ws = Server::new(Params::new(socket))?; // on libev's default loop
    /// # let fd = { use std::os::fd::IntoRawFd; UnixStream::pair()?.0.into_raw_fd() };
    /// // Perl's `fd`: a raw fd from elsewhere, now the connection's to close.
    /// // SAFETY: `fd` is an open socket that nothing else will use or close.
    /// let params = Params::new(unsafe { OwnedFd::from_raw_fd(fd) });
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn new(socket: impl Into<OwnedFd>) -> Params {
        Params {
            socket: socket.into(),
            event_loop: None,
            config: Config::default(),
            timeouts: Timeouts {
                close: Some(DEFAULT_CLOSE_TIMEOUT),
                idle: None,
                keepalive: None,
                message: None,
            },
            initial_data: Vec::new(),
            on_msg_recv: None,
            on_frame_recv_start: None,
            on_frame_recv_chunk: None,
            on_frame_recv_end: None,
            on_close: None,
            genmask: None,
            #[cfg(feature = "tls")]
            tls: None,
            guard: None,
        }
    }

    /// `on_close`, holding the `guard` until it runs.
    pub(crate) fn take_on_close(&mut self) -> Option<OnClose> {
        let Some(guard) = self.guard.take() else {
            return self.on_close.take();
        };
        let (mut guard, mut user) = (Some(guard), self.on_close.take());
        Some(Box::new(move |ws, code| {
            drop(guard.take());
            if let Some(user) = user.as_mut() {
                user(ws, code);
            }
        }))
    }

    /// Perl `buffering` (default true). False: messages are not assembled, `on_msg_recv`
    /// gets an empty message for data and the data comes through the frame callbacks;
    /// `max_recv_size` then limits each frame.
    ///
    /// ```
    /// use net_websocket_ev::Params;
    /// use std::io::Write;
    /// # let (socket, _peer) = std::os::unix::net::UnixStream::pair().unwrap();
    /// // Stream messages of any size to a file instead of assembling them in memory.
    /// let mut file = Vec::new(); // a std::fs::File
    /// let params = Params::new(socket)
    ///     .buffering(false)
    ///     .max_recv_size(1 << 20) // now a limit per frame
    ///     .on_frame_recv_chunk(move |_ws, piece| {
    ///         file.write_all(piece).ok();
    ///     });
    /// ```
    pub fn buffering(mut self, on: bool) -> Params {
        self.config.buffering = on;
        self
    }

    /// Perl `max_recv_size`: the largest message (buffering) or frame (no buffering)
    /// accepted; over it the peer gets close 1009. Default 64 MiB (wslay's 2 GiB let one
    /// connection pin 2 GiB).
    ///
    /// ```
    /// use net_websocket_ev::Params;
    /// # let (socket, _peer) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let params = Params::new(socket).max_recv_size(16 << 20); // larger messages: close 1009
    /// ```
    pub fn max_recv_size(mut self, bytes: u64) -> Params {
        self.config.max_recv_size = bytes;
        self
    }

    /// Perl `on_msg_recv($rsv, $opcode, $msg, $status_code)`: each complete text,
    /// binary, ping and pong message (never close); the status code is always 0.
    ///
    /// ```
    /// use net_websocket_ev::{OpCode, Params};
    /// # let (socket, _peer) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let params = Params::new(socket).on_msg_recv(|ws, _rsv, opcode, msg, _status_code| {
    ///     match opcode {
    ///         OpCode::Text => drop(ws.queue_msg(msg, opcode)), // echo
    ///         OpCode::Binary => println!("{} bytes", msg.len()),
    ///         _ => {} // ping (already answered) or pong
    ///     }
    /// });
    /// ```
    pub fn on_msg_recv(
        mut self,
        callback: impl FnMut(&WebSocket, Rsv, OpCode, &[u8], u16) + 'static,
    ) -> Params {
        self.on_msg_recv = Some(Box::new(callback));
        self
    }

    /// Perl `on_frame_recv_start($fin, $rsv, $opcode, $payload_length)`: every frame,
    /// control frames included; continuation frames report [`OpCode::Continuation`].
    ///
    /// ```
    /// use net_websocket_ev::Params;
    /// # let (socket, _peer) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let params = Params::new(socket).on_frame_recv_start(|_ws, fin, _rsv, opcode, len| {
    ///     println!("{opcode:?} frame of {len} bytes{}", if fin { ", final" } else { "" });
    /// });
    /// ```
    pub fn on_frame_recv_start(
        mut self,
        callback: impl FnMut(&WebSocket, bool, Rsv, OpCode, u64) + 'static,
    ) -> Params {
        self.on_frame_recv_start = Some(Box::new(callback));
        self
    }

    /// Perl `on_frame_recv_chunk($data)`: payload pieces as they arrive; an empty frame
    /// gives one empty chunk.
    ///
    /// ```
    /// use net_websocket_ev::Params;
    /// use std::{cell::Cell, rc::Rc};
    /// # let (socket, _peer) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let received = Rc::new(Cell::new(0));
    /// let count = received.clone();
    /// let params = Params::new(socket)
    ///     .buffering(false)
    ///     .on_frame_recv_chunk(move |_ws, piece| count.set(count.get() + piece.len()));
    /// ```
    pub fn on_frame_recv_chunk(
        mut self,
        callback: impl FnMut(&WebSocket, &[u8]) + 'static,
    ) -> Params {
        self.on_frame_recv_chunk = Some(Box::new(callback));
        self
    }

    /// Perl `on_frame_recv_end()`: the end of each frame.
    ///
    /// ```
    /// use net_websocket_ev::Params;
    /// # let (socket, _peer) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let mut frames = 0;
    /// let params = Params::new(socket).on_frame_recv_end(move |_ws| frames += 1);
    /// ```
    pub fn on_frame_recv_end(mut self, callback: impl FnMut(&WebSocket) + 'static) -> Params {
        self.on_frame_recv_end = Some(Box::new(callback));
        self
    }

    /// Perl `on_close($code)`: once, after the socket is closed, with the code of the
    /// peer's close frame, 1005 if it had none, 1006 if none came.
    ///
    /// ```
    /// use net_websocket_ev::Params;
    /// # let (socket, _peer) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let params = Params::new(socket).on_close(|ws, code| {
    ///     println!("closed with {code}: {:?}", ws.close_cause());
    /// });
    /// ```
    pub fn on_close(mut self, callback: impl FnMut(&WebSocket, u16) + 'static) -> Params {
        self.on_close = Some(Box::new(callback));
        self
    }

    /// Perl `genmask` (client only): fills the 4 mask bytes of each frame. The default is
    /// a CSPRNG. It must not call the connection's methods (they return
    /// [`Error::Busy`](super::Error::Busy) there). It is `Send`, as every part of the
    /// sans-IO engine it goes into is (an [`Engine`](crate::proto::Engine) may move
    /// between threads): share state with it through an `Arc`, not an `Rc`.
    ///
    /// ```
    /// use net_websocket_ev::{Client, Params};
    /// # let (socket, _peer) = std::os::unix::net::UnixStream::pair().unwrap();
    /// // A fixed key, for test vectors only: the default is random, as RFC 6455 asks.
    /// let ws = Client::new(Params::new(socket).genmask(|mask| *mask = [1, 2, 3, 4]))?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn genmask(mut self, callback: impl FnMut(&mut [u8; 4]) + Send + 'static) -> Params {
        self.genmask = Some(Box::new(callback));
        self
    }

    /// The loop to run on; libev's default loop if not given (which one thread holds at
    /// a time: from another thread meanwhile, `Server::new` fails with
    /// [`Error::Loop`](super::Error::Loop)). A loop created by foreign code is adopted
    /// with [`Loop::from_raw`].
    ///
    /// ```
    /// use net_websocket_ev::{ev::Loop, Params, Server};
    /// # let (socket, _peer) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let lp = Loop::new()?; // e.g. one loop per thread
    /// let ws = Server::new(Params::new(socket).event_loop(&lp))?;
    /// assert!(ws.event_loop().same_as(&lp));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn event_loop(mut self, lp: &Loop) -> Params {
        self.event_loop = Some(lp.clone());
        self
    }

    /// Bytes that arrived after the opening handshake (they belong to the WebSocket);
    /// they are processed from the loop before anything read from the socket.
    ///
    /// ```
    /// use net_websocket_ev::ev::{Loop, RunFlags};
    /// use net_websocket_ev::{Params, Server};
    /// use std::{cell::RefCell, rc::Rc};
    /// # let (socket, _peer) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let lp = Loop::new()?;
    /// // A client's first frame, read together with its handshake: "hi", masked (key 0).
    /// let leftover = vec![0x81, 0x82, 0, 0, 0, 0, b'h', b'i'];
    /// let got = Rc::new(RefCell::new(Vec::new()));
    /// let g = got.clone();
    /// let params = Params::new(socket)
    ///     .event_loop(&lp)
    ///     .initial_data(leftover)
    ///     .on_msg_recv(move |_ws, _, _, msg, _| g.borrow_mut().extend_from_slice(msg));
    /// Server::new(params)?;
    /// lp.run_with(RunFlags::NoWait);
    /// assert_eq!(*got.borrow(), b"hi");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn initial_data(mut self, bytes: Vec<u8>) -> Params {
        self.initial_data = bytes;
        self
    }

    /// How long a closing connection may go without progress before the socket is
    /// closed and `on_close(1006)` runs. Closing starts when a close is queued (ours
    /// or the reply to the peer's), when the peer's EOF comes while data is still
    /// queued, or when reading is shut down; progress is bytes written. So a close
    /// behind a large queue on a slow but live link is not cut off, and a peer that
    /// neither reads nor answers is dropped `timeout` after it stopped reading.
    /// `None` waits forever, as the original did. Default [`DEFAULT_CLOSE_TIMEOUT`].
    ///
    /// ```
    /// use net_websocket_ev::Params;
    /// use std::time::Duration;
    /// # let (socket, _peer) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let params = Params::new(socket).close_timeout(Some(Duration::from_secs(3)));
    /// ```
    pub fn close_timeout(mut self, timeout: Option<Duration>) -> Params {
        self.timeouts.close = timeout;
        self
    }

    /// How long without anything received from the peer after which we start the
    /// closing handshake with code 1001 and reason `idle timeout` (the close timeout
    /// then bounds the wait for the reply: a vanished peer ends in `on_close(1006)`).
    /// "Received" means a frame began or a piece of payload arrived (any frame: a
    /// pong to a keepalive ping counts). The clock is suspended while reading is
    /// stopped. `None` (the default, as the original) never closes an idle connection.
    ///
    /// ```
    /// use net_websocket_ev::Params;
    /// use std::time::Duration;
    /// # let (socket, _peer) = std::os::unix::net::UnixStream::pair().unwrap();
    /// // Ping after 20 s of silence; a peer silent for 60 s (no pong either) is closed.
    /// let params = Params::new(socket)
    ///     .keepalive(Some(Duration::from_secs(20)))
    ///     .idle_timeout(Some(Duration::from_secs(60)));
    /// ```
    pub fn idle_timeout(mut self, timeout: Option<Duration>) -> Params {
        self.timeouts.idle = timeout;
        self
    }

    /// How long a silence from the peer lasts before we send a ping (empty payload),
    /// then again every `period` while the silence lasts. With an idle timeout longer
    /// than this, a live peer's pongs keep the connection open and a dead one is
    /// closed. Skipped while the send queue is full. `None` (the default) sends none.
    ///
    /// ```
    /// use net_websocket_ev::Params;
    /// use std::time::Duration;
    /// # let (socket, _peer) = std::os::unix::net::UnixStream::pair().unwrap();
    /// // Keeps NAT and proxy mappings alive; with an idle timeout, also finds dead peers.
    /// let params = Params::new(socket).keepalive(Some(Duration::from_secs(30)));
    /// ```
    pub fn keepalive(mut self, period: Option<Duration>) -> Params {
        self.timeouts.keepalive = period;
        self
    }

    /// How long a message may take to arrive, from the read that brought its
    /// first byte (a frame header) to the one that brings its last: past it the
    /// peer gets close 1008 (policy violation), reading ends, and
    /// [`CloseCause::MessageTimeout`](super::CloseCause::MessageTimeout) says
    /// why. It covers every frame of a fragmented message, and the control frames
    /// between them neither restart nor trip it; a control frame between
    /// messages is bounded alone (it is a message of one frame). The clock is
    /// suspended while reading is stopped ([`WebSocket::stop_read`](super::WebSocket::stop_read))
    /// and goes on at the resume. A peer that declares 1 MiB and sends a byte a
    /// second is thus cut after `timeout`, while the idle timeout (which each
    /// byte resets) would never fire. Choose it above the largest message over
    /// the slowest link you serve: 64 MiB at 1 MB/s takes a minute.
    /// `None` (the default, as the original) or zero: no limit.
    ///
    /// ```no_run
    /// use std::time::Duration;
    /// use net_websocket_ev::{Params, Server};
    /// # let stream: std::net::TcpStream = unimplemented!();
    /// let ws = Server::new(
    ///     Params::new(stream)
    ///         .max_recv_size(1 << 20)
    ///         .message_timeout(Some(Duration::from_secs(30))),
    /// )
    /// .unwrap();
    /// ```
    pub fn message_timeout(mut self, timeout: Option<Duration>) -> Params {
        self.timeouts.message = timeout;
        self
    }

    /// The most frames a data message may come in (its first frame and its
    /// continuations; control frames between them are not counted): the frame
    /// past it is refused with close 1009, the code for a message too big to
    /// process (as `max_recv_size` refuses one too big in bytes), and
    /// [`CloseCause::ProtocolError`](super::CloseCause::ProtocolError) carries
    /// [`ProtocolError::TooManyFragments`](crate::proto::ProtocolError::TooManyFragments).
    /// `Some(0)` counts as `Some(1)`. `None` (the default, as the original): no
    /// limit. On the open internet take at least 65,537 if Autobahn's 9.x cases
    /// must pass (4 MiB in 64-byte fragments, then an empty last one).
    ///
    /// ```no_run
    /// use net_websocket_ev::{Params, Server};
    /// # let stream: std::net::TcpStream = unimplemented!();
    /// let ws = Server::new(Params::new(stream).max_fragments(Some(1 << 16))).unwrap();
    /// ```
    pub fn max_fragments(mut self, frames: Option<u32>) -> Params {
        self.config.max_fragments = frames;
        self
    }

    /// The send-queue high-water mark in bytes: a queueing call that would exceed it
    /// fails with a `QueueFull` error instead of memory growing without bound.
    ///
    /// ```
    /// use net_websocket_ev::{ev::Loop, Params, Server};
    /// # let (socket, _peer) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let lp = Loop::new()?;
    /// let ws = Server::new(Params::new(socket).event_loop(&lp).max_queued_bytes(1024))?;
    /// ws.stop_write()?;
    /// ws.queue_binary(&[0; 1000])?;
    /// assert!(ws.queue_binary(&[0; 1000]).is_err()); // it would pass 1 KiB
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn max_queued_bytes(mut self, bytes: usize) -> Params {
        self.config.max_queued_bytes = bytes;
        self
    }

    /// The buffer size offered to a `queue_fragmented` producer per frame (default 4096,
    /// as the original).
    ///
    /// ```
    /// use net_websocket_ev::Params;
    /// # let (socket, _peer) = std::os::unix::net::UnixStream::pair().unwrap();
    /// let params = Params::new(socket).fragment_size(64 << 10); // frames of up to 64 KiB
    /// ```
    pub fn fragment_size(mut self, bytes: usize) -> Params {
        self.config.fragment_size = bytes.max(1);
        self
    }

    /// RSV bits the peer may set (for an extension negotiated during the handshake);
    /// with RSV1 allowed and set, text is not checked as UTF-8. Default none.
    /// With compression negotiated (`Params::compression`), RSV1 means a
    /// compressed message whatever this says.
    ///
    /// ```
    /// use net_websocket_ev::{Params, Rsv};
    /// # let (socket, _peer) = std::os::unix::net::UnixStream::pair().unwrap();
    /// // An extension of your own, agreed in the handshake, that marks frames with RSV2.
    /// let params = Params::new(socket).allowed_rsv(Rsv::RSV2);
    /// ```
    pub fn allowed_rsv(mut self, bits: Rsv) -> Params {
        self.config.allowed_rsv = bits;
        self
    }

    /// permessage-deflate as the opening handshake negotiated it (default
    /// none). [`Upgraded::into_params`](super::upgrade::Upgraded::into_params)
    /// sets it for a handshake run with
    /// [`HandshakeOptions::deflate`](super::upgrade::HandshakeOptions); after a
    /// handshake of your own, pass what
    /// [`handshake::deflate::accept`](crate::handshake::deflate::accept) or
    /// [`handshake::deflate::check_answer`](crate::handshake::deflate::check_answer)
    /// returned.
    ///
    /// Messages are then delivered inflated: `on_msg_recv` gets the whole
    /// message with RSV1 clear, `on_frame_recv_chunk` (with `buffering => 0`)
    /// inflated pieces, while `on_frame_recv_start` reports each frame as it
    /// is on the wire (RSV1 set on a compressed message's first frame, and
    /// `len` the compressed length). `max_recv_size` limits the inflated size.
    /// `queue_msg` compresses messages of at least `threshold` bytes,
    /// `queue_fragmented` every piece as it comes.
    ///
    /// ```
    /// use net_websocket_ev::handshake::deflate::{accept, PerMessageDeflate};
    /// use net_websocket_ev::Params;
    /// # let socket: std::net::TcpStream = return;
    /// // The client offered permessage-deflate; our answer goes in the 101.
    /// let offers = vec!["permessage-deflate; client_max_window_bits".to_string()];
    /// let (answer, agreed) = accept(&offers, &PerMessageDeflate::default()).unwrap();
    /// assert!(answer.starts_with("permessage-deflate"));
    /// let params = Params::new(socket).compression(agreed);
    /// ```
    #[cfg(feature = "deflate")]
    pub fn compression(mut self, agreed: Compression) -> Params {
        self.config.compression = Some(agreed);
        self
    }

    /// The socket carries this TLS session (feature `tls`): every byte is read and
    /// written through it, and `close_notify` is sent at the end.
    /// [`Upgraded::into_params`](super::upgrade::Upgraded::into_params) sets it after
    /// a TLS handshake; it is for a session made elsewhere, on this same socket.
    ///
    /// A TLS failure ends the connection with `on_close(1015)` and
    /// [`CloseCause::Tls`](super::CloseCause::Tls).
    ///
    /// ```no_run
    /// use net_websocket_ev::tls::{rustls, Session};
    /// use net_websocket_ev::{Params, Server};
    /// # let (stream, conn): (std::net::TcpStream, rustls::ServerConnection) = unimplemented!();
    /// // `conn` finished its handshake (and the WebSocket one) on `stream`.
    /// Server::new(Params::new(stream).tls(Session::from(conn))).unwrap();
    /// ```
    #[cfg(feature = "tls")]
    pub fn tls(mut self, session: crate::tls::Session) -> Params {
        self.tls = Some(session);
        self
    }
}

impl fmt::Debug for Params {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Params")
            .field("socket", &self.socket)
            .field("config", &self.config)
            .field("timeouts", &self.timeouts)
            .field("initial_data", &self.initial_data.len())
            .field("on_msg_recv", &self.on_msg_recv.is_some())
            .field("on_frame_recv_start", &self.on_frame_recv_start.is_some())
            .field("on_frame_recv_chunk", &self.on_frame_recv_chunk.is_some())
            .field("on_frame_recv_end", &self.on_frame_recv_end.is_some())
            .field("on_close", &self.on_close.is_some())
            .field("genmask", &self.genmask.is_some())
            .finish()
    }
}
