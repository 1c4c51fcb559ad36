//! The receiving half: its public API, and the pooling of its decoding state
//! (the decoder proper is in `decoder.rs`).
use std::io::{self, Read};

use super::decoder::Decoder;
use super::{pool, Config, Handler, ProtocolError, RecvStatus, ReplySink, Role};

/// Decodes the peer's bytes into events for a [`Handler`], and reports the
/// replies they call for to a [`ReplySink`].
///
/// It holds no large buffer while idle: reads go into a pooled buffer that is
/// given back as soon as every byte in it is processed. A message that arrives
/// whole in one read is handed to the handler as a slice of that buffer
/// (unmasked in place); only fragmented or split messages are copied, into a
/// pooled buffer that goes back after the message (the pool frees a large one,
/// and keeps a bounded total per thread).
///
/// Between messages, with nothing kept, it holds no decoder state either: the
/// decoder goes back to a small per-thread pool after each call that leaves it
/// so, and an idle receiver is its configuration and one empty pointer. With
/// permessage-deflate the inflater is lent the same way, per compressed
/// message, unless the peer keeps its context between messages (then the
/// decoder and the inflater stay, about 48 KiB).
pub struct Receiver {
    role: Role,
    config: Config,
    /// `None` while idle (see [`Decoder::is_pristine`]).
    decoder: Option<Box<Decoder>>,
}

thread_local! {
    // Boxes: a spare goes back and forth as the allocation it is (`pool::Spares`).
    #[allow(clippy::vec_box)]
    static SPARE_DECODERS: std::cell::RefCell<Vec<Box<Decoder>>> =
        const { std::cell::RefCell::new(Vec::new()) };
}

/// A decoder for a receiver: a spare from the pool, or a new one.
#[cold]
fn pooled_decoder(role: Role, config: &Config) -> Box<Decoder> {
    match pool::take_spare(&SPARE_DECODERS) {
        Some(mut d) => {
            d.renew(role, config);
            d
        }
        None => Box::new(Decoder::new(role, config)),
    }
}

impl Receiver {
    /// A receiver for `role` (a server expects masked frames).
    pub fn new(role: Role, config: &Config) -> Receiver {
        Receiver {
            role,
            config: config.clone(),
            decoder: None,
        }
    }

    /// The decoder, from the pool or new when idle.
    #[inline]
    fn decoder(&mut self) -> &mut Decoder {
        let (role, config) = (self.role, &self.config);
        self.decoder
            .get_or_insert_with(|| pooled_decoder(role, config))
    }

    /// Gives the decoder back to the pool when it holds nothing worth keeping.
    fn idle_check<T>(&mut self, result: T) -> T {
        if self.decoder.as_ref().is_some_and(|d| d.is_pristine()) {
            if let Some(spare) = self.decoder.take() {
                pool::keep_spare(&SPARE_DECODERS, spare);
            }
        }
        result
    }

    /// Reads from `r` until it would block, ends, the handler pauses, or reading
    /// is over, processing every frame read (many per read). Bytes kept from an
    /// earlier pause are processed first. `Interrupted` is retried; other I/O
    /// errors are returned.
    pub fn recv<R: Read, H: Handler, S: ReplySink>(
        &mut self,
        r: &mut R,
        h: &mut H,
        s: &mut S,
    ) -> io::Result<RecvStatus> {
        let result = self.decoder().recv_until(r, h, s, false);
        self.idle_check(result)
    }

    /// [`Receiver::recv`] for a non-blocking socket watched level-triggered (a
    /// libev io watcher): a read that returns fewer bytes than asked for ends the
    /// call with [`RecvStatus::WouldBlock`]. The socket had no more bytes then,
    /// so the next read would only fail with `EAGAIN`: skipping it saves one
    /// syscall per readiness event, and the watcher fires again when more come.
    pub fn recv_available<R: Read, H: Handler, S: ReplySink>(
        &mut self,
        r: &mut R,
        h: &mut H,
        s: &mut S,
    ) -> io::Result<RecvStatus> {
        let result = self.decoder().recv_until(r, h, s, true);
        self.idle_check(result)
    }

    /// Processes bytes already in memory (those that came with the handshake,
    /// say). `WouldBlock` means all were consumed; after a pause the rest is kept
    /// (copied) for [`Receiver::resume`].
    pub fn feed<H: Handler, S: ReplySink>(
        &mut self,
        data: &[u8],
        h: &mut H,
        s: &mut S,
    ) -> RecvStatus {
        let result = self.decoder().feed(data, h, s);
        self.idle_check(result)
    }

    /// Processes the bytes kept by a pause. `WouldBlock` means all are consumed.
    pub fn resume<H: Handler, S: ReplySink>(&mut self, h: &mut H, s: &mut S) -> RecvStatus {
        let result = self.decoder().resume(h, s);
        self.idle_check(result)
    }

    /// Whether bytes kept by a pause are waiting for [`Receiver::resume`].
    pub fn has_pending_input(&self) -> bool {
        self.decoder.as_ref().is_some_and(|d| d.has_pending_input())
    }

    /// Whether reading goes on: not shut down, no close received, no violation.
    pub fn want_read(&self) -> bool {
        self.decoder.as_ref().map_or(true, |d| d.want_read())
    }

    /// Whether a valid close frame was received.
    pub fn close_received(&self) -> bool {
        self.decoder.as_ref().is_some_and(|d| d.close_received())
    }

    /// Whether part of a message has arrived and the rest has not: a frame's
    /// header or payload is cut short by the end of the input so far, or a
    /// fragmented data message waits for its next frame (a control frame
    /// between its fragments does not end it). A control frame between
    /// messages counts as a one-frame message. False once reading is over.
    ///
    /// With [`Receiver::take_message_started`] it lets a caller with a clock
    /// bound the time a message takes to arrive (the connection's
    /// `message_timeout`): the engine itself reads no clock.
    ///
    /// ```
    /// use net_websocket_ev::proto::{Config, Handler, Receiver, Reply, ReplySink, Role};
    ///
    /// struct Ignore;
    /// impl Handler for Ignore {}
    /// impl ReplySink for Ignore {
    ///     fn reply(&mut self, _: Reply<'_>) {}
    /// }
    /// let mut r = Receiver::new(Role::Client, &Config::default());
    /// assert!(!r.message_in_progress());
    /// r.feed(b"\x01\x02h", &mut Ignore, &mut Ignore); // text, FIN clear, 1 of 2 bytes
    /// assert!(r.message_in_progress() && r.take_message_started());
    /// r.feed(b"i\x89\x00", &mut Ignore, &mut Ignore); // the rest, then a ping between fragments
    /// assert!(r.message_in_progress() && !r.take_message_started());
    /// r.feed(b"\x80\x00", &mut Ignore, &mut Ignore); // the last (empty) fragment
    /// assert!(!r.message_in_progress());
    /// ```
    pub fn message_in_progress(&self) -> bool {
        self.decoder
            .as_ref()
            .is_some_and(|d| d.message_in_progress())
    }

    /// Whether a message (or a control frame between messages) began arriving
    /// since the last call: its first header byte was processed. Clears the
    /// flag. A caller that checks [`Receiver::message_in_progress`] after each
    /// read tells by it a new message from the one it saw in progress before
    /// (one read can end a message and begin the next). A message that began
    /// and ended within one read may or may not leave the flag set; it is no
    /// longer in progress either way.
    pub fn take_message_started(&mut self) -> bool {
        self.decoder
            .as_mut()
            .is_some_and(|d| d.take_message_started())
    }

    /// The violation that ended reading, if any.
    pub fn failed(&self) -> Option<&ProtocolError> {
        self.decoder.as_ref().and_then(|d| d.failed())
    }

    /// The code of the peer's close: 1006 until one arrives, 1005 if it had none.
    pub fn status_code_received(&self) -> u16 {
        self.decoder
            .as_ref()
            .map_or(1006, |d| d.status_code_received())
    }

    /// Ends reading at once: kept bytes and partial messages are dropped.
    pub fn shutdown_read(&mut self) {
        self.decoder().shutdown_read();
    }

    /// The configuration in use.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Changes the configuration; `buffering` takes effect at the next message.
    pub fn set_config(&mut self, config: &Config) {
        self.config = config.clone();
        if let Some(d) = self.decoder.as_mut() {
            d.set_config(config);
        }
    }
}

impl std::fmt::Debug for Receiver {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.decoder {
            Some(d) => d.fmt(f),
            None => f
                .debug_struct("Receiver")
                .field("role", &self.role)
                .field("stage", &"Header")
                .finish(),
        }
    }
}

#[cfg(test)]
#[path = "receiver_tests.rs"]
mod tests;
