//! HTTP proxies: which one to use (the options, or the environment read the way curl
//! reads it), the `CONNECT` request, and the proxy's answer. Pure: no socket here.

use base64::Engine as _;

/// Which HTTP proxy a connection goes through ([`ConnectOptions::proxy`](super::ConnectOptions::proxy)).
///
/// ```
/// use net_websocket_ev::websocket::connect::{ConnectOptions, Proxy};
///
/// let through = ConnectOptions::new().proxy(Proxy::Http("http://user:secret@proxy.lan:3128".into()));
/// let direct = ConnectOptions::new().proxy(Proxy::Direct);
/// assert_eq!(Proxy::default(), Proxy::FromEnv);
/// # drop((through, direct));
/// ```
///
/// Its debug output hides a password in the URL (`***`).
#[derive(Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Proxy {
    /// The default: the environment, read as curl reads it when the connection
    /// starts. `ws://` uses `http_proxy` (lower case only: a CGI program gets the
    /// request header `Proxy:` as `HTTP_PROXY`, curl's reason too), `wss://` uses
    /// `https_proxy` or `HTTPS_PROXY`. `no_proxy` (or `NO_PROXY`) lists, separated by
    /// commas, the hosts reached directly: `*` for all, a name for itself and its
    /// subdomains (`example.com` and `.example.com` both match `api.example.com`),
    /// an IP address for itself. Empty variables count as unset; `all_proxy` is not
    /// read. Unlike curl, and like Go's `net/http`, `localhost` and loopback
    /// addresses are always reached directly.
    #[default]
    FromEnv,
    /// No proxy, whatever the environment says.
    Direct,
    /// This proxy: `http://[user:password@]host[:port][/]` (the scheme may be left
    /// out; the port defaults to 1080, as in curl). User and password, which may be
    /// percent-encoded, are sent as `Proxy-Authorization: Basic`.
    Http(String),
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Proxy::FromEnv => f.write_str("FromEnv"),
            Proxy::Direct => f.write_str("Direct"),
            Proxy::Http(url) => f.debug_tuple("Http").field(&redact(url)).finish(),
        }
    }
}

/// `url` with its user information (a password), if any, replaced by `***`: for
/// messages and logs. Everything between the scheme and the last `@` goes, so that
/// a malformed URL (an unescaped `/` in the password) hides it too.
pub(super) fn redact(url: &str) -> String {
    let start = url.find("://").map_or(0, |at| at + 3);
    match url[start..].rfind('@') {
        Some(at) => format!("{}***{}", &url[..start], &url[start + at..]),
        None => url.to_owned(),
    }
}

/// A proxy to tunnel through.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct ProxyUrl {
    pub(super) host: String,
    pub(super) port: u16,
    /// `user:password`, decoded, for basic authentication.
    pub(super) credentials: Option<String>,
}

impl ProxyUrl {
    /// Parses `[http://][user:password@]host[:port][/]`.
    pub(super) fn parse(url: &str) -> Result<ProxyUrl, &'static str> {
        if url.bytes().any(|b| b <= b' ' || b == 0x7f) {
            return Err("whitespace or control character in the proxy URL");
        }
        let rest = match url.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
            Some(_) => return Err("only http:// proxies are supported"),
            None => url,
        };
        let authority = rest.strip_suffix('/').unwrap_or(rest);
        if authority.contains(['/', '?', '#']) {
            return Err("a proxy URL has no path");
        }
        let (credentials, host_port) = match authority.rsplit_once('@') {
            Some((userinfo, host_port)) => {
                let (user, password) = userinfo.split_once(':').unwrap_or((userinfo, ""));
                let credentials =
                    format!("{}:{}", percent_decode(user)?, percent_decode(password)?);
                (Some(credentials), host_port)
            }
            None => (None, authority),
        };
        let (host, port) = match host_port.strip_prefix('[') {
            Some(bracketed) => {
                let (host, after) = bracketed
                    .split_once(']')
                    .ok_or("unclosed IPv6 address in the proxy URL")?;
                if !host
                    .bytes()
                    .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
                {
                    return Err("bad IPv6 address in the proxy URL");
                }
                let port = match after {
                    "" => None,
                    _ => Some(after.strip_prefix(':').ok_or("bad port in the proxy URL")?),
                };
                (host, port)
            }
            None => match host_port.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (host_port, None),
            },
        };
        if host.is_empty() || !host.contains(':') && host.contains(['[', ']', '@']) {
            return Err("bad host in the proxy URL");
        }
        let port = match port {
            None | Some("") => 1080,
            Some(digits) if digits.bytes().all(|b| b.is_ascii_digit()) => {
                digits.parse().map_err(|_| "bad port in the proxy URL")?
            }
            Some(_) => return Err("bad port in the proxy URL"),
        };
        Ok(ProxyUrl {
            host: host.to_owned(),
            port,
            credentials,
        })
    }

    /// The `CONNECT` request for a tunnel to `host:port`.
    pub(super) fn connect_request(&self, host: &str, port: u16) -> Vec<u8> {
        let authority = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        let mut out = format!("CONNECT {authority} HTTP/1.1\r\nHost: {authority}\r\n");
        if let Some(credentials) = &self.credentials {
            let encoded = base64::engine::general_purpose::STANDARD.encode(credentials);
            out.push_str(&format!("Proxy-Authorization: Basic {encoded}\r\n"));
        }
        out.push_str("\r\n");
        out.into_bytes()
    }
}

/// The proxy URL the environment gives for a `ws://` (`tls` false) or `wss://`
/// connection to `host`, as [`Proxy::FromEnv`] describes; `var` reads a variable.
pub(super) fn from_env(
    tls: bool,
    host: &str,
    var: impl Fn(&str) -> Option<String>,
) -> Option<String> {
    if is_loopback(host) {
        return None;
    }
    let set = |name: &str| var(name).filter(|value| !value.is_empty());
    let proxy = if tls {
        set("https_proxy").or_else(|| set("HTTPS_PROXY"))
    } else {
        set("http_proxy")
    }?;
    let no_proxy = set("no_proxy").or_else(|| set("NO_PROXY"));
    match no_proxy {
        Some(list) if no_proxy_matches(&list, host) => None,
        _ => Some(proxy),
    }
}

/// `localhost` (or a name under it) or a loopback address: never proxied from the
/// environment.
fn is_loopback(host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let lower = host.to_ascii_lowercase();
    let name = lower.strip_suffix('.').unwrap_or(&lower);
    name == "localhost"
        || name.ends_with(".localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Whether `host` is in a `no_proxy` list.
fn no_proxy_matches(list: &str, host: &str) -> bool {
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let host = host.strip_suffix('.').unwrap_or(host);
    list.split([',', ' ']).map(str::trim).any(|entry| {
        if entry == "*" {
            return true;
        }
        let entry = entry.trim_start_matches('[').trim_end_matches(']');
        let entry = entry.strip_prefix('.').unwrap_or(entry);
        let entry = entry.strip_suffix('.').unwrap_or(entry);
        // An IP address matches itself only (as curl), not as the suffix of a name.
        if let Ok(ip) = host.parse::<std::net::IpAddr>() {
            return entry.parse() == Ok(ip);
        }
        if entry.is_empty() || entry.len() > host.len() {
            return false;
        }
        // Bytes, not str: the split may fall inside a multi-byte character.
        let (head, tail) = host.as_bytes().split_at(host.len() - entry.len());
        tail.eq_ignore_ascii_case(entry.as_bytes()) && (head.is_empty() || head.ends_with(b"."))
    })
}

/// Where the proxy's answer head ends (after its blank line), if it has.
pub(super) fn head_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|at| at + 4)
}

/// The status code and reason of a proxy's answer head.
pub(super) fn parse_status(head: &[u8]) -> Result<(u16, String), &'static str> {
    let line_end = head
        .windows(2)
        .position(|w| w == b"\r\n")
        .unwrap_or(head.len());
    // Lossy: the reason phrase may hold obs-text (bytes 0x80-0xFF); the version and
    // the status code are checked as ASCII below.
    let line = String::from_utf8_lossy(&head[..line_end]);
    let mut parts = line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err("proxy answer is not HTTP/1.x");
    }
    let status = parts
        .next()
        .filter(|code| code.len() == 3 && code.bytes().all(|b| b.is_ascii_digit()))
        .and_then(|code| code.parse().ok())
        .ok_or("proxy answer has no status code")?;
    let reason = parts
        .next()
        .unwrap_or_default()
        .chars()
        .filter(|c| !c.is_control())
        .collect();
    Ok((status, reason))
}

/// `%XX` decoding of a URL's user information.
fn percent_decode(s: &str) -> Result<String, &'static str> {
    let mut out = Vec::with_capacity(s.len());
    let mut bytes = s.bytes();
    while let Some(b) = bytes.next() {
        if b == b'%' {
            let hex = [bytes.next(), bytes.next()];
            let value = match hex {
                // Two hex digits exactly: `from_str_radix` alone takes a sign (`%+1`).
                [Some(hi), Some(lo)] if hi.is_ascii_hexdigit() && lo.is_ascii_hexdigit() => {
                    std::str::from_utf8(&[hi, lo])
                        .ok()
                        .and_then(|h| u8::from_str_radix(h, 16).ok())
                }
                _ => None,
            };
            out.push(value.ok_or("bad %-escape in the proxy URL")?);
        } else {
            out.push(b);
        }
    }
    String::from_utf8(out).map_err(|_| "proxy user or password is not UTF-8")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env<'a>(vars: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            vars.iter()
                .find(|(n, _)| *n == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn proxy_urls() {
        let url = ProxyUrl::parse("http://alice:p%40ss@proxy.lan:3128/").unwrap();
        assert_eq!(
            url,
            ProxyUrl {
                host: "proxy.lan".into(),
                port: 3128,
                credentials: Some("alice:p@ss".into())
            }
        );
        let bare = ProxyUrl::parse("proxy.lan").unwrap();
        assert_eq!(
            (bare.host.as_str(), bare.port, bare.credentials),
            ("proxy.lan", 1080, None)
        );
        let v6 = ProxyUrl::parse("http://[::1]:8080").unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("::1", 8080));
        for bad in [
            "https://proxy:443",
            "socks5://proxy:1080",
            "http://proxy:port",
            "http://proxy:99999",
            "http://",
            "http://proxy/path",
            "http://a%zz@proxy",
            "http://a%+1@proxy",
            "http://a%-0@proxy",
            "http://a:b%+f@proxy",
            "http://pro xy",
            "http://[::1",
        ] {
            assert!(ProxyUrl::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn connect_request_with_basic_auth() {
        let url = ProxyUrl::parse("http://Aladdin:open%20sesame@p").unwrap();
        assert_eq!(
            url.connect_request("example.com", 443),
            b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\
              Proxy-Authorization: Basic QWxhZGRpbjpvcGVuIHNlc2FtZQ==\r\n\r\n"
        );
        let plain = ProxyUrl::parse("p:1").unwrap();
        assert_eq!(
            plain.connect_request("::1", 80),
            b"CONNECT [::1]:80 HTTP/1.1\r\nHost: [::1]:80\r\n\r\n"
        );
    }

    #[test]
    fn environment_as_curl_reads_it() {
        let vars = [
            ("http_proxy", "http://plain:1"),
            ("HTTP_PROXY", "http://upper:1"),
            ("HTTPS_PROXY", "http://secure:1"),
        ];
        assert_eq!(
            from_env(false, "h", env(&vars)).as_deref(),
            Some("http://plain:1")
        );
        assert_eq!(
            from_env(true, "h", env(&vars)).as_deref(),
            Some("http://secure:1")
        );
        // Upper-case HTTP_PROXY alone is not read.
        assert_eq!(
            from_env(false, "h", env(&[("HTTP_PROXY", "http://u:1")])),
            None
        );
        // Lower case wins; empty counts as unset.
        let both = [
            ("https_proxy", "http://low:1"),
            ("HTTPS_PROXY", "http://up:1"),
        ];
        assert_eq!(
            from_env(true, "h", env(&both)).as_deref(),
            Some("http://low:1")
        );
        let empty = [("https_proxy", ""), ("HTTPS_PROXY", "http://up:1")];
        assert_eq!(
            from_env(true, "h", env(&empty)).as_deref(),
            Some("http://up:1")
        );
        assert_eq!(from_env(false, "h", env(&[])), None);
    }

    #[test]
    fn no_proxy_lists() {
        let vars = |list: &'static str| [("http_proxy", "p:1"), ("no_proxy", list)];
        let direct = |list, host| from_env(false, host, env(&vars(list))).is_none();
        assert!(direct("*", "anything.example"));
        assert!(direct("example.com", "example.com"));
        assert!(direct("example.com", "API.Example.com"));
        assert!(direct(".example.com", "api.example.com"));
        assert!(direct("other, example.com", "api.example.com"));
        assert!(direct("192.0.2.1", "192.0.2.1"));
        assert!(direct("2001:db8::1", "2001:db8::1"));
        assert!(direct("[2001:db8::1]", "2001:db8::1"));
        assert!(!direct("example.com", "badexample.com"));
        assert!(!direct("example.com", "example.com.evil"));
        assert!(!direct("*.example.com", "api.example.com")); // curl: no wildcards
        assert!(!direct("", "example.com"));
        assert!(!direct("192.0.2.1", "192.0.2.10"));
        // An IP address matches itself only, not as a name's suffix.
        assert!(!direct("0.2.1", "192.0.2.1"));
        assert!(!direct(".1", "192.0.2.1"));
        assert!(direct("2001:db8:0::1", "2001:db8::1"));
        // Loopback is never proxied from the environment.
        for host in [
            "localhost",
            "LocalHost.",
            "a.localhost",
            "127.0.0.1",
            "127.1.2.3",
            "::1",
            "[::1]",
        ] {
            assert!(direct("", host), "{host}");
        }
        assert!(!direct("", "localhost.example"));
        // NO_PROXY too, when no_proxy is unset.
        let upper = [("http_proxy", "p:1"), ("NO_PROXY", "example.com")];
        assert!(from_env(false, "example.com", env(&upper)).is_none());
    }

    #[test]
    fn no_proxy_with_a_non_ascii_host_does_not_panic() {
        // The suffix's start may fall inside a multi-byte character of the host.
        let vars = [("http_proxy", "p:1"), ("no_proxy", "x.com")];
        assert_eq!(
            from_env(false, "\u{e9}.com", env(&vars)).as_deref(),
            Some("p:1")
        );
        let vars = [("http_proxy", "p:1"), ("no_proxy", "b.\u{e9}")];
        assert_eq!(
            from_env(false, "a.\u{e9}\u{e9}", env(&vars)).as_deref(),
            Some("p:1")
        );
        let vars = [("http_proxy", "p:1"), ("no_proxy", "\u{e9}.com")];
        assert!(from_env(false, "api.\u{c9}.com", env(&vars)).is_some()); // ASCII case only
        assert!(from_env(false, "api.\u{e9}.com", env(&vars)).is_none());
    }

    #[test]
    fn proxy_answers() {
        assert_eq!(head_end(b"HTTP/1.1 200 OK\r\n\r\nrest"), Some(19));
        assert_eq!(head_end(b"HTTP/1.1 200 OK\r\n"), None);
        assert_eq!(
            parse_status(b"HTTP/1.1 200 Connection established\r\n\r\n"),
            Ok((200, "Connection established".into()))
        );
        assert_eq!(
            parse_status(b"HTTP/1.0 403\r\n\r\n"),
            Ok((403, String::new()))
        );
        // A reason phrase may hold obs-text (RFC 9112: bytes 0x80-0xFF, Latin-1).
        assert_eq!(
            parse_status(b"HTTP/1.1 403 Verboten f\xfcr dich\r\n\r\n"),
            Ok((403, "Verboten f\u{fffd}r dich".into()))
        );
        assert!(parse_status(b"SSH-2.0-OpenSSH\r\n\r\n").is_err());
        assert!(parse_status(b"HTTP/1.1 2000 x\r\n\r\n").is_err());
        assert!(parse_status(b"HTTP/1.1 abc x\r\n\r\n").is_err());
    }
}
