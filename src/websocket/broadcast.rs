//! One message to many connections: [`PreparedMessage`] (checked once, its payload
//! shared by every send queue instead of copied into each) and [`Group`] (a set of
//! connections to publish to, each written once per loop iteration whatever the
//! number of messages, each slow reader handled as the group says).
use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::rc::{Rc, Weak};
use std::time::Duration;

use crate::ev::{Loop, Timer};
use crate::proto::{self, OpCode, SharedMessage};

use super::{Error, WebSocket};

/// A text or binary message made ready once for many connections: checked once
/// (text as UTF-8), and its payload shared by the send queues it goes on rather
/// than copied into each. A server connection without compression writes a large
/// payload (16 KiB and more) from where it is; a small one, a client's (masked
/// per frame) and a compressed connection's are copied, as with
/// [`WebSocket::queue_msg`]. Cloning it clones a pointer; it is `Send` and
/// `Sync`, so another thread may prepare it.
///
/// ```
/// use net_websocket_ev::{OpCode, PreparedMessage};
///
/// let msg = PreparedMessage::text("tick 42");
/// assert_eq!((msg.opcode(), msg.payload()), (OpCode::Text, &b"tick 42"[..]));
/// assert!(PreparedMessage::new(b"\xff", OpCode::Text).is_err()); // not UTF-8
/// ```
#[derive(Clone, Debug)]
pub struct PreparedMessage {
    msg: SharedMessage,
}

impl PreparedMessage {
    /// A message of `opcode` (text or binary) with a copy of `msg`, in
    /// `queue_msg`'s argument order. Text must be UTF-8.
    ///
    /// ```
    /// use net_websocket_ev::{OpCode, PreparedMessage};
    ///
    /// let msg = PreparedMessage::new(&[1, 2, 3], OpCode::Binary)?;
    /// assert_eq!(msg.payload(), [1, 2, 3]);
    /// assert!(PreparedMessage::new(b"", OpCode::Ping).is_err()); // text or binary only
    /// # Ok::<(), net_websocket_ev::Error>(())
    /// ```
    pub fn new(msg: &[u8], opcode: OpCode) -> Result<PreparedMessage, Error> {
        PreparedMessage::from_vec(msg.to_vec(), opcode)
    }

    /// As [`new`](Self::new), taking the payload without a copy.
    ///
    /// ```
    /// use net_websocket_ev::{OpCode, PreparedMessage};
    ///
    /// let msg = PreparedMessage::from_vec(vec![0; 1 << 20], OpCode::Binary)?;
    /// assert_eq!(msg.payload().len(), 1 << 20);
    /// # Ok::<(), net_websocket_ev::Error>(())
    /// ```
    pub fn from_vec(msg: Vec<u8>, opcode: OpCode) -> Result<PreparedMessage, Error> {
        let msg = SharedMessage::new(opcode, msg)?;
        Ok(PreparedMessage { msg })
    }

    /// A text message.
    ///
    /// ```
    /// # use net_websocket_ev::{OpCode, PreparedMessage};
    /// assert_eq!(PreparedMessage::text("hi").opcode(), OpCode::Text);
    /// ```
    pub fn text(text: &str) -> PreparedMessage {
        PreparedMessage {
            msg: SharedMessage::checked(OpCode::Text, text.as_bytes().to_vec()),
        }
    }

    /// A binary message.
    ///
    /// ```
    /// # use net_websocket_ev::{OpCode, PreparedMessage};
    /// assert_eq!(PreparedMessage::binary(&[0xff]).opcode(), OpCode::Binary);
    /// ```
    pub fn binary(data: &[u8]) -> PreparedMessage {
        PreparedMessage {
            msg: SharedMessage::checked(OpCode::Binary, data.to_vec()),
        }
    }

    /// Text or binary.
    ///
    /// ```
    /// # use net_websocket_ev::{OpCode, PreparedMessage};
    /// assert_eq!(PreparedMessage::binary(b"").opcode(), OpCode::Binary);
    /// ```
    pub fn opcode(&self) -> OpCode {
        self.msg.opcode()
    }

    /// The payload.
    ///
    /// ```
    /// # use net_websocket_ev::PreparedMessage;
    /// assert_eq!(PreparedMessage::text("hi").payload(), b"hi");
    /// ```
    pub fn payload(&self) -> &[u8] {
        self.msg.payload()
    }
}

impl WebSocket {
    /// Queues a [`PreparedMessage`]: as [`queue_msg`](Self::queue_msg), without
    /// checking or (for a large payload on a server) copying it again. The loop over
    /// handles of a Perl broadcast, sharing the bytes:
    ///
    /// ```
    /// # use net_websocket_ev::{ev::{Loop, RunFlags}, Client, Params, Server};
    /// # use std::{cell::RefCell, os::unix::net::UnixStream, rc::Rc};
    /// # let lp = Loop::new().unwrap();
    /// # let got: Rc<RefCell<Vec<Vec<u8>>>> = Default::default();
    /// # let (mut clients, mut peers) = (Vec::new(), Vec::new());
    /// # for _ in 0..3 {
    /// #     let (sock, other) = UnixStream::pair().unwrap();
    /// #     clients.push(Server::new(Params::new(sock).event_loop(&lp)).unwrap());
    /// #     let g = got.clone();
    /// #     peers.push(Client::new(Params::new(other).event_loop(&lp).on_msg_recv(move |_, _, _, msg, _| {
    /// #         g.borrow_mut().push(msg.to_vec())
    /// #     })).unwrap());
    /// # }
    /// use net_websocket_ev::PreparedMessage;
    ///
    /// let msg = PreparedMessage::binary(&[42; 100_000]);
    /// for ws in &clients {
    ///     ws.queue_prepared(&msg)?;
    /// }
    /// # while got.borrow().len() < 3 {
    /// #     lp.run_with(RunFlags::Once);
    /// # }
    /// # assert!(got.borrow().iter().all(|m| m[..] == [42; 100_000][..]));
    /// # Ok::<(), net_websocket_ev::Error>(())
    /// ```
    pub fn queue_prepared(&self, msg: &PreparedMessage) -> Result<(), Error> {
        self.conn.sender()?.queue_shared(&msg.msg)?;
        self.conn.settle(false);
        Ok(())
    }
}

/// What [`Group::publish`] does with a member whose send queue cannot take the
/// message (its [`max_queued_bytes`](super::Params::max_queued_bytes) would be
/// passed: a reader slower than the publisher).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Overflow {
    /// The member misses this message and stays in the group (the default): a
    /// stream where the latest message supersedes the others (prices, positions).
    #[default]
    Skip,
    /// The member is closed with 1008 ("too slow"), behind what it has queued, and
    /// leaves the group: a stream where a gap is worse than a reconnect.
    Close,
    /// The member's connection ends at once, without a closing handshake (its
    /// queue is dropped), and it leaves the group: memory back now.
    Abort,
}

/// What one [`Group::publish`] did, member by member.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Published {
    /// Members the message was queued on (and written to, as far as their
    /// sockets took it).
    pub queued: usize,
    /// Members over their high-water mark that missed it ([`Overflow::Skip`]),
    /// and members that refused it for another reason (a closing connection, a
    /// call from inside their `genmask`).
    pub skipped: usize,
    /// Members over their high-water mark closed or aborted ([`Overflow::Close`],
    /// [`Overflow::Abort`]).
    pub dropped: usize,
    /// Members found over (their `on_close` had run), now out of the group.
    pub gone: usize,
}

/// A set of connections that one message is sent to at once: the room of a chat,
/// the subscribers of a topic. [`publish`](Self::publish) frames the message once
/// ([`PreparedMessage`]) and queues it on every member; the group then writes each
/// member's socket once, before the loop next waits for events, with everything
/// published to it meanwhile: thousands of members cost one `write` each per loop
/// iteration, however many messages, and no watcher is armed for them. A member
/// whose queue is full does not hold up the others (see [`Overflow`]). Members are
/// handles: a member stays in the group until it is removed or found over by a
/// publish. Perl's `%clients` hash and its loop of `queue_msg`, in one call.
///
/// ```
/// # use net_websocket_ev::{ev::{Loop, RunFlags}, Client, Params, Server};
/// # use std::{cell::RefCell, os::unix::net::UnixStream, rc::Rc};
/// # let lp = Loop::new().unwrap();
/// # let got: Rc<RefCell<Vec<Vec<u8>>>> = Default::default();
/// # let mut peers = Vec::new();
/// use net_websocket_ev::{Group, PreparedMessage};
///
/// let room = Group::new();
/// for _ in 0..3 {
/// #     let (sock, other) = UnixStream::pair().unwrap();
/// #     let g = got.clone();
/// #     peers.push(Client::new(Params::new(other).event_loop(&lp).on_msg_recv(move |_, _, _, msg, _| {
/// #         g.borrow_mut().push(msg.to_vec())
/// #     })).unwrap());
///     let ws = Server::new(Params::new(sock).event_loop(&lp))?;
///     room.insert(&ws);
/// }
/// let published = room.publish(&PreparedMessage::text("hello, all"));
/// assert_eq!(published.queued, 3);
/// # while got.borrow().len() < 3 {
/// #     lp.run_with(RunFlags::Once);
/// # }
/// # assert!(got.borrow().iter().all(|m| m == b"hello, all"));
/// # Ok::<(), net_websocket_ev::Error>(())
/// ```
#[derive(Debug, Default)]
pub struct Group {
    shared: Rc<Shared>,
}

/// What the group's flush (a timer callback) shares with the group.
#[derive(Debug, Default)]
struct Shared {
    members: RefCell<Members>,
    overflow: Cell<Overflow>,
    /// A timer due at once on the members' loop, started when a publish leaves
    /// something to write: it runs right after the loop's next poll, before the
    /// loop waits again. Made at the first publish, on the first member's loop.
    flush: RefCell<Option<(Loop, Timer)>>,
}

#[derive(Debug, Default)]
struct Members {
    list: Vec<WebSocket>,
    /// Whether `list[i]` has something published to write at the next flush.
    unwritten: Vec<bool>,
    /// Each member's place in `list`, by its connection's address.
    at: HashMap<usize, usize>,
}

impl Group {
    /// An empty group whose slow members miss messages ([`Overflow::Skip`]).
    ///
    /// ```
    /// # use net_websocket_ev::Group;
    /// assert!(Group::new().is_empty());
    /// ```
    pub fn new() -> Group {
        Group::default()
    }

    /// What a member over its high-water mark gets from now on.
    ///
    /// ```
    /// # use net_websocket_ev::{Group, Overflow};
    /// let feed = Group::new().overflow(Overflow::Close);
    /// ```
    pub fn overflow(self, overflow: Overflow) -> Group {
        self.shared.overflow.set(overflow);
        self
    }

    /// Adds `ws`; false if it was a member already.
    ///
    /// ```
    /// # use net_websocket_ev::{ev::Loop, Group, Params, Server};
    /// # use std::os::unix::net::UnixStream;
    /// # let lp = Loop::new().unwrap();
    /// # let (sock, _other) = UnixStream::pair().unwrap();
    /// let ws = Server::new(Params::new(sock).event_loop(&lp))?;
    /// let room = Group::new();
    /// assert!(room.insert(&ws));
    /// assert!(!room.insert(&ws));
    /// assert_eq!(room.len(), 1);
    /// # Ok::<(), net_websocket_ev::Error>(())
    /// ```
    pub fn insert(&self, ws: &WebSocket) -> bool {
        let mut m = self.shared.members.borrow_mut();
        let place = m.list.len();
        match m.at.entry(key(ws)) {
            std::collections::hash_map::Entry::Occupied(_) => false,
            std::collections::hash_map::Entry::Vacant(slot) => {
                slot.insert(place);
                m.list.push(ws.clone());
                m.unwritten.push(false);
                true
            }
        }
    }

    /// Removes `ws`; false if it was not a member.
    ///
    /// ```
    /// # use net_websocket_ev::{ev::Loop, Group, Params, Server};
    /// # use std::os::unix::net::UnixStream;
    /// # let lp = Loop::new().unwrap();
    /// # let (sock, _other) = UnixStream::pair().unwrap();
    /// let ws = Server::new(Params::new(sock).event_loop(&lp))?;
    /// let room = Group::new();
    /// room.insert(&ws);
    /// assert!(room.remove(&ws));
    /// assert!(!room.contains(&ws));
    /// # Ok::<(), net_websocket_ev::Error>(())
    /// ```
    pub fn remove(&self, ws: &WebSocket) -> bool {
        let removed = self.shared.members.borrow_mut().remove(key(ws));
        match removed {
            Some((ws, true)) => {
                ws.conn.settle(false); // what was published to it goes out from the loop
                true
            }
            Some(_) => true,
            None => false,
        }
    }

    /// Whether `ws` is a member.
    ///
    /// ```
    /// # use net_websocket_ev::{ev::Loop, Group, Params, Server};
    /// # use std::os::unix::net::UnixStream;
    /// # let lp = Loop::new().unwrap();
    /// # let (sock, _other) = UnixStream::pair().unwrap();
    /// let ws = Server::new(Params::new(sock).event_loop(&lp))?;
    /// assert!(!Group::new().contains(&ws));
    /// # Ok::<(), net_websocket_ev::Error>(())
    /// ```
    pub fn contains(&self, ws: &WebSocket) -> bool {
        self.shared.members.borrow().at.contains_key(&key(ws))
    }

    /// How many members.
    ///
    /// ```
    /// # use net_websocket_ev::Group;
    /// assert_eq!(Group::new().len(), 0);
    /// ```
    pub fn len(&self) -> usize {
        self.shared.members.borrow().list.len()
    }

    /// Whether the group has no member.
    ///
    /// ```
    /// # use net_websocket_ev::Group;
    /// assert!(Group::new().is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The members, in no particular order (handles: for a loop of your own).
    ///
    /// ```
    /// # use net_websocket_ev::Group;
    /// for ws in Group::new().members() {
    ///     ws.queue_text("hi").ok();
    /// }
    /// ```
    pub fn members(&self) -> Vec<WebSocket> {
        self.shared.members.borrow().list.clone()
    }

    /// Sends `msg` to every member: queued on each now (its payload shared, see
    /// [`PreparedMessage`]), and written to each socket right after the loop's next
    /// poll, together with whatever else is published before then: one `write` per
    /// member (what the socket does not take goes out as the loop sees it
    /// writable, as for any queued message). A member on another loop than the
    /// group's first member is written in the call. A member over its high-water
    /// mark is handled as [`overflow`](Self::overflow) says; members found over
    /// leave the group. No callback of any member runs inside this call (ends are
    /// carried out by the loop, as for `queue_msg`).
    ///
    /// ```
    /// # use net_websocket_ev::{ev::Loop, Group, Params, PreparedMessage, Server};
    /// # use std::os::unix::net::UnixStream;
    /// # let lp = Loop::new().unwrap();
    /// # let (sock, _other) = UnixStream::pair().unwrap();
    /// # let ws = Server::new(Params::new(sock).event_loop(&lp))?;
    /// let room = Group::new();
    /// room.insert(&ws);
    /// let published = room.publish(&PreparedMessage::text("hi"));
    /// assert_eq!((published.queued, published.skipped), (1, 0));
    /// # Ok::<(), net_websocket_ev::Error>(())
    /// ```
    pub fn publish(&self, msg: &PreparedMessage) -> Published {
        let overflow = self.shared.overflow.get();
        let flush_loop = self.flush_loop();
        let mut published = Published::default();
        let mut leaving = Vec::new();
        let mut i = 0;
        // One member at a time, nothing borrowed while a member is written.
        loop {
            let member = self.shared.members.borrow().list.get(i).cloned();
            let Some(ws) = member else {
                break;
            };
            i += 1;
            match ws
                .conn
                .sender()
                .and_then(|mut s| Ok(s.queue_shared(&msg.msg)?))
            {
                Ok(()) if flush_loop == Some(ws.event_loop().as_raw()) => {
                    // Its watcher is left as it is (no WRITE armed): the flush
                    // writes it and brings the watcher in line.
                    published.queued += 1;
                    self.shared.members.borrow_mut().unwritten[i - 1] = true;
                }
                Ok(()) => {
                    published.queued += 1;
                    ws.conn.write_now();
                    ws.conn.settle(false);
                }
                Err(Error::Queue(proto::Error::QueueFull { .. })) => match overflow {
                    Overflow::Skip => published.skipped += 1,
                    Overflow::Close => {
                        ws.close(Some(1008), "too slow").ok();
                        published.dropped += 1;
                        leaving.push(key(&ws));
                    }
                    Overflow::Abort => {
                        ws.abort().ok();
                        published.dropped += 1;
                        leaving.push(key(&ws));
                    }
                },
                Err(_) if ws.conn.check_open().is_err() => {
                    published.gone += 1;
                    leaving.push(key(&ws));
                }
                Err(_) => published.skipped += 1,
            }
        }
        let mut m = self.shared.members.borrow_mut();
        let mut settle = Vec::new();
        for k in leaving {
            if let Some((ws, true)) = m.remove(k) {
                settle.push(ws);
            }
        }
        drop(m);
        for ws in settle {
            ws.conn.settle(false);
        }
        if published.queued > 0 {
            if let Some((_, timer)) = &*self.shared.flush.borrow() {
                timer.start();
            }
        }
        published
    }

    /// The loop the flush runs on (its raw pointer, for comparing): the first
    /// member's, the first time there is one.
    fn flush_loop(&self) -> Option<*mut crate::ev::sys::ev_loop> {
        let mut flush = self.shared.flush.borrow_mut();
        if flush.is_none() {
            let lp = self
                .shared
                .members
                .borrow()
                .list
                .first()?
                .event_loop()
                .clone();
            let shared = Rc::downgrade(&self.shared);
            let timer = Timer::new(&lp, Duration::ZERO, Duration::ZERO, move |_| {
                if let Some(shared) = Weak::upgrade(&shared) {
                    shared.flush();
                }
            });
            *flush = Some((lp, timer));
        }
        flush.as_ref().map(|(lp, _)| lp.as_raw())
    }

    /// [`publish`](Self::publish) of a message made from `msg` and `opcode`.
    ///
    /// ```
    /// # use net_websocket_ev::{Group, OpCode};
    /// let room = Group::new();
    /// assert_eq!(room.publish_msg(b"hi", OpCode::Text)?.queued, 0); // nobody in it
    /// assert!(room.publish_msg(b"\xff", OpCode::Text).is_err());
    /// # Ok::<(), net_websocket_ev::Error>(())
    /// ```
    pub fn publish_msg(&self, msg: &[u8], opcode: OpCode) -> Result<Published, Error> {
        Ok(self.publish(&PreparedMessage::new(msg, opcode)?))
    }
}

impl Shared {
    /// Writes every member something was published to since the last flush
    /// (one at a time, nothing borrowed while a member is written), and brings
    /// its watcher in line: WRITE armed for what the socket did not take.
    fn flush(&self) {
        let mut i = 0;
        loop {
            let ws = {
                let mut m = self.members.borrow_mut();
                let Some(ws) = m.list.get(i).cloned() else {
                    break;
                };
                i += 1;
                if !std::mem::take(&mut m.unwritten[i - 1]) {
                    continue;
                }
                ws
            };
            ws.conn.write_now();
            ws.conn.settle(false);
        }
    }
}

/// A group dropped before its flush writes what was published to it.
impl Drop for Group {
    fn drop(&mut self) {
        self.shared.flush();
    }
}

impl Members {
    /// Takes a member out: its handle, and whether something published to it is
    /// still unwritten.
    fn remove(&mut self, key: usize) -> Option<(WebSocket, bool)> {
        let place = self.at.remove(&key)?;
        let ws = self.list.swap_remove(place);
        let unwritten = self.unwritten.swap_remove(place);
        if let Some(moved) = self.list.get(place) {
            self.at.insert(self::key(moved), place);
        }
        Some((ws, unwritten))
    }
}

/// A connection's identity: the address of its state, alive while a handle is.
fn key(ws: &WebSocket) -> usize {
    Rc::as_ptr(&ws.conn) as usize
}
