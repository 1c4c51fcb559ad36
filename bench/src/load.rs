//! What the load generators `fanout-load` and `handshake-load` share: a latency
//! histogram, CPU times from /proc and getrusage, the open-file limit, a small PRNG,
//! prepared upgrade requests and the check of the server's response.
//! Included by each with `#[path]` (they are binaries of this crate, not a library).

/// Log-linear latency histogram over nanoseconds: 64 sub-buckets per power of two
/// (under 1.6 % error), fixed memory, O(1) record.
pub struct Histogram {
    counts: Vec<u64>,
    total: u64,
}

impl Histogram {
    pub fn new() -> Histogram {
        Histogram {
            counts: vec![0; 128 + 58 * 64],
            total: 0,
        }
    }
    fn index(v: u64) -> usize {
        if v < 128 {
            return v as usize;
        }
        let shift = 63 - v.leading_zeros() - 6;
        (128 + (shift as u64 - 1) * 64 + ((v >> shift) - 64)) as usize
    }
    fn value(i: usize) -> u64 {
        let i = i as u64;
        if i < 128 {
            return i;
        }
        let shift = (i - 128) / 64 + 1;
        (((i - 128) % 64 + 64) << shift) + (1 << shift) / 2
    }
    pub fn record(&mut self, ns: u64) {
        self.counts[Self::index(ns)] += 1;
        self.total += 1;
    }
    /// The value (µs) at quantile q; 0 when empty.
    pub fn quantile_us(&self, q: f64) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, &c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Self::value(i) as f64 / 1000.0;
            }
        }
        0.0
    }
}

/// utime+stime of a process in µs, from /proc/PID/stat.
pub fn proc_cpu_us(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = &s[s.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some(ticks * 1_000_000 / hz)
}

/// This process's utime+stime in µs.
pub fn self_cpu_us() -> u64 {
    // SAFETY: getrusage fills the zeroed rusage it is given; it has no other effect.
    let ru = unsafe {
        let mut ru: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut ru);
        ru
    };
    let tv = |t: libc::timeval| t.tv_sec as u64 * 1_000_000 + t.tv_usec as u64;
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// Raises the soft limit on open files to what `want` needs (at most the hard limit).
pub fn raise_nofile(want: u64) {
    let mut rl = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `rl` is a valid, writable rlimit for getrlimit to fill.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut rl) } != 0 || rl.rlim_cur >= want {
        return;
    }
    rl.rlim_cur = want.min(rl.rlim_max);
    // SAFETY: `rl` is a valid rlimit; only the soft limit changed, within the hard one.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &rl) } != 0 || rl.rlim_cur < want {
        eprintln!(
            "fanout-load: open-file limit {} (wanted {want})",
            rl.rlim_cur
        );
    }
}

/// xorshift64*: mask keys and handshake keys.
pub struct Rng(pub u64);
impl Rng {
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

fn base64(data: &[u8]) -> String {
    const ABC: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (b[0] as u32) << 16 | (b[1] as u32) << 8 | b[2] as u32;
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ABC[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Checks a complete response head: 101 and the expected accept key.
pub fn response_ok(head: &[u8], accept: &str) -> bool {
    let Ok(head) = std::str::from_utf8(head) else {
        return false;
    };
    let mut lines = head.split("\r\n");
    let status_ok = lines
        .next()
        .is_some_and(|l| l.starts_with("HTTP/1.1 101 ") || l == "HTTP/1.1 101");
    status_ok
        && lines.any(|line| {
            line.split_once(':').is_some_and(|(name, value)| {
                name.trim().eq_ignore_ascii_case("sec-websocket-accept") && value.trim() == accept
            })
        })
}

/// `n` upgrade requests to 127.0.0.1:`port`, each with its own key, and the
/// `Sec-WebSocket-Accept` value each expects.
pub fn upgrade_requests(port: u16, n: usize, rng: &mut Rng) -> Vec<(Vec<u8>, String)> {
    (0..n)
        .map(|_| {
            let key = base64(&[rng.next().to_le_bytes(), rng.next().to_le_bytes()].concat());
            let request = format!(
                "GET / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n\
                 Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n\
                 Sec-WebSocket-Version: 13\r\n\r\n"
            );
            let accept = net_websocket_ev::handshake::accept_key(key.as_bytes());
            (request.into_bytes(), accept)
        })
        .collect()
}

/// A seed for [`Rng`] from the clock (never 0).
pub fn seed() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        | 1
}

/// Parses the value of a command-line option.
pub fn num<T: std::str::FromStr>(flag: &str, v: &str) -> Result<T, String> {
    v.parse()
        .map_err(|_| format!("bad value for {flag}: {v:?}"))
}
