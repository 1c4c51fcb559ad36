//! What the listener counts: handshakes in progress and open connections, in
//! total and per client address, and the [`Slot`] each accepted socket holds
//! until it is closed.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::rc::Weak;

use super::params::Limits;
use super::Shared;

/// A client address as the per-address caps count it: an IPv4 address, or the
/// /64 prefix of an IPv6 one (a single host usually has a whole /64 to pick
/// addresses from). An IPv4-mapped IPv6 address counts as its IPv4 address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum IpKey {
    V4(Ipv4Addr),
    V6([u8; 8]),
}

impl IpKey {
    pub(super) fn of(ip: IpAddr) -> IpKey {
        match ip {
            IpAddr::V4(v4) => IpKey::V4(v4),
            IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
                Some(v4) => IpKey::V4(v4),
                None => {
                    let mut prefix = [0u8; 8];
                    prefix.copy_from_slice(&v6.octets()[..8]);
                    IpKey::V6(prefix)
                }
            },
        }
    }
}

/// Handshakes in progress and open sockets (handshakes included) of one address.
#[derive(Debug, Default)]
struct PerIp {
    handshakes: usize,
    open: usize,
}

/// The counts behind the caps.
#[derive(Debug, Default)]
pub(super) struct Counts {
    pub(super) handshakes: usize,
    pub(super) connections: usize,
    per_ip: HashMap<IpKey, PerIp>,
}

impl Counts {
    /// Counts a new handshake from `ip`, unless that address is at one of its caps.
    pub(super) fn admit(&mut self, ip: IpKey, limits: &Limits) -> bool {
        let entry = self.per_ip.entry(ip).or_default();
        let over = |count: usize, cap: Option<usize>| cap.is_some_and(|cap| count >= cap);
        if over(entry.handshakes, limits.max_handshakes_per_ip)
            || over(entry.open, limits.max_connections_per_ip)
        {
            if entry.open == 0 {
                self.per_ip.remove(&ip);
            }
            return false;
        }
        entry.handshakes += 1;
        entry.open += 1;
        self.handshakes += 1;
        true
    }

    /// A handshake from `ip` became a connection.
    fn promote(&mut self, ip: IpKey) {
        self.handshakes -= 1;
        self.connections += 1;
        if let Some(entry) = self.per_ip.get_mut(&ip) {
            entry.handshakes -= 1;
        }
    }

    /// A socket from `ip` was closed.
    fn release(&mut self, ip: IpKey, connected: bool) {
        if connected {
            self.connections -= 1;
        } else {
            self.handshakes -= 1;
        }
        if let Some(entry) = self.per_ip.get_mut(&ip) {
            if !connected {
                entry.handshakes -= 1;
            }
            entry.open -= 1;
            if entry.open == 0 {
                self.per_ip.remove(&ip);
            }
        }
    }

    /// How many addresses have a socket open.
    pub(super) fn addresses(&self) -> usize {
        self.per_ip.len()
    }
}

/// One accepted socket's place in the counts, from its accept until it is closed
/// (dropped with the handshake that failed, the [`Accepted`](super::Accepted) not
/// used, or, through `Params`, when the connection's socket is closed).
#[derive(Debug)]
pub(super) struct Slot {
    pub(super) shared: Weak<Shared>,
    pub(super) ip: IpKey,
    /// The handshake's key in the listener's table of handshakes in progress.
    pub(super) id: u64,
    pub(super) connected: bool,
}

impl Slot {
    /// The handshake succeeded: this is a connection now.
    pub(super) fn promote(&mut self) {
        if let Some(shared) = self.shared.upgrade() {
            shared.counts.borrow_mut().promote(self.ip);
            self.connected = true;
            shared.resume();
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.upgrade() {
            shared.counts.borrow_mut().release(self.ip, self.connected);
            shared.resume();
        }
    }
}
