//! HTTP/1.1 head syntax shared by both sides: where a head ends, its start line and
//! header fields, list-valued fields, and the incremental buffer behind
//! `ServerHandshake` and `ClientHandshake`.

use std::mem;

use super::{HandshakeError, DEFAULT_MAX_HEADERS};

/// Header fields as received: names as sent, values without surrounding whitespace.
pub(super) type Headers = Vec<(String, String)>;

/// Collects bytes until a whole head has arrived, parses it once, and then keeps what
/// followed it.
#[derive(Debug)]
pub(super) struct HeadBuffer {
    /// The head so far while reading; the bytes after the head once done.
    buf: Vec<u8>,
    /// How much of `buf` has been searched for the end of the head already.
    searched: usize,
    /// The lines (start line included) that end before `searched`.
    lines: usize,
    max_header_size: usize,
    max_headers: usize,
    state: State,
}

#[derive(Debug)]
enum State {
    Reading,
    Done,
    Failed(HandshakeError),
}

impl HeadBuffer {
    pub(super) fn new(max_header_size: usize) -> Self {
        HeadBuffer {
            buf: Vec::new(),
            searched: 0,
            lines: 0,
            max_header_size,
            max_headers: DEFAULT_MAX_HEADERS,
            state: State::Reading,
        }
    }

    /// Refuses a head with more than `count` header fields (see
    /// [`locate_counting`]).
    pub(super) fn set_max_headers(&mut self, count: usize) {
        self.max_headers = count;
    }

    /// Appends `data`; once the head is complete, returns what `parse` makes of it.
    /// Before that, `start` sees the head so far and may refuse it at once (bytes
    /// that cannot begin this head: a TLS ClientHello sent to a plain port needs no
    /// wait for a head that never ends). After success, more data is kept with the
    /// leftover (`Ok(None)`); after an error, the same error is returned again.
    pub(super) fn feed<T>(
        &mut self,
        data: &[u8],
        start: impl FnOnce(&[u8]) -> Result<(), HandshakeError>,
        parse: impl FnOnce(&[u8]) -> Result<T, HandshakeError>,
    ) -> Result<Option<T>, HandshakeError> {
        match &self.state {
            State::Reading => {}
            State::Done => {
                self.buf.extend_from_slice(data);
                return Ok(None);
            }
            State::Failed(err) => return Err(err.clone()),
        }
        self.buf.extend_from_slice(data);
        let limits = (self.max_header_size, self.max_headers);
        let parsed = match start(&self.buf)
            .and_then(|()| locate_counting(&self.buf, self.searched, &mut self.lines, limits))
        {
            Ok(None) => {
                self.searched = self.buf.len();
                return Ok(None);
            }
            Ok(Some(end)) => parse(&self.buf[..end]).map(|value| (value, end)),
            Err(err) => Err(err),
        };
        match parsed {
            Ok((value, end)) => {
                self.buf.drain(..end);
                self.state = State::Done;
                Ok(Some(value))
            }
            Err(err) => {
                self.buf = Vec::new();
                self.state = State::Failed(err.clone());
                Err(err)
            }
        }
    }

    /// The bytes after the head, once it is complete; empty before.
    pub(super) fn take_leftover(&mut self) -> Vec<u8> {
        match self.state {
            State::Done => mem::take(&mut self.buf),
            State::Reading | State::Failed(_) => Vec::new(),
        }
    }

    pub(super) fn buffered(&self) -> usize {
        self.buf.len()
    }
}

/// The length of the head at the start of `buf` (blank line included), `None` if it
/// is not complete yet. Lines of `buf` before `from` are known not to end the head.
/// A head of more than [`DEFAULT_MAX_HEADERS`] header lines after `from` is refused
/// (the stateless parsers start from 0).
pub(super) fn locate(
    buf: &[u8],
    from: usize,
    max_header_size: usize,
) -> Result<Option<usize>, HandshakeError> {
    locate_counting(buf, from, &mut 0, (max_header_size, DEFAULT_MAX_HEADERS))
}

/// [`locate`] for a head searched piece by piece: `lines` counts the lines that
/// end before `from` (the start line included) and is brought up to date. A head
/// with more than `max_headers` header lines is refused as soon as the line past
/// the limit ends, before the head does: a count, not only a size, bounds what a
/// peer makes the parser build (each line becomes a pair of strings).
pub(super) fn locate_counting(
    buf: &[u8],
    from: usize,
    lines: &mut usize,
    (max_header_size, max_headers): (usize, usize),
) -> Result<Option<usize>, HandshakeError> {
    let window = &buf[..buf.len().min(max_header_size)];
    let mut i = from.min(window.len());
    while let Some(offset) = window[i..].iter().position(|&b| b == b'\n') {
        let lf = i + offset;
        // The line this LF ends is empty, or holds just a CR.
        let empty = match lf {
            0 => true,
            _ if window[lf - 1] == b'\n' => true,
            1 => window[0] == b'\r',
            _ => window[lf - 1] == b'\r' && window[lf - 2] == b'\n',
        };
        if empty {
            return Ok(Some(lf + 1));
        }
        *lines += 1;
        if *lines > max_headers.saturating_add(1) {
            return Err(HandshakeError::TooManyHeaders { limit: max_headers });
        }
        i = lf + 1;
    }
    if buf.len() >= max_header_size {
        return Err(HandshakeError::HeaderTooLarge {
            limit: max_header_size,
        });
    }
    Ok(None)
}

/// Splits a complete head into its start line and header fields, checking the syntax.
pub(super) fn parse(head: &[u8]) -> Result<(String, Headers), HandshakeError> {
    if head.contains(&0) {
        return Err(HandshakeError::Malformed("NUL byte in head"));
    }
    let mut lines = head
        .split(|&b| b == b'\n')
        .map(|line| line.strip_suffix(b"\r").unwrap_or(line))
        .take_while(|line| !line.is_empty());
    let start = match lines.next() {
        Some(line) if !line.iter().any(|&b| is_control(b)) => text(line),
        Some(_) => return Err(HandshakeError::Malformed("control byte in start line")),
        None => return Err(HandshakeError::Malformed("empty start line")),
    };
    let mut headers = Vec::new();
    for line in lines {
        if line[0] == b' ' || line[0] == b'\t' {
            return Err(HandshakeError::Malformed("obsolete line folding"));
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return Err(HandshakeError::Malformed("header line without colon"));
        };
        let name = &line[..colon];
        if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
            return Err(HandshakeError::Malformed("header name is not a token"));
        }
        let value = trim_ows(&line[colon + 1..]);
        if value.iter().any(|&b| is_control(b) && b != b'\t') {
            return Err(HandshakeError::Malformed("control byte in header value"));
        }
        headers.push((text(name), text(value)));
    }
    Ok((start, headers))
}

/// Whether `version` has the syntax `HTTP/<digit>.<digit>`.
pub(super) fn is_http_version(version: &str) -> bool {
    match version.strip_prefix("HTTP/").map(str::as_bytes) {
        Some([major, b'.', minor]) => major.is_ascii_digit() && minor.is_ascii_digit(),
        _ => false,
    }
}

/// Checks a header the user asks us to write (a client's request header, a server's
/// answer header): its name must be a token, it must not be one the handshake writes
/// itself (`ours`), and its value must have no CR, LF or other control byte (tab
/// allowed), so no user value can inject a header or end the head.
pub(super) fn check_user_header(
    name: &str,
    value: &str,
    ours: impl Fn(&str) -> bool,
) -> Result<(), HandshakeError> {
    use HandshakeError::Malformed;
    if !is_token(name) {
        return Err(Malformed("a header name is not a token"));
    }
    if ours(name) {
        return Err(Malformed("a header repeats one the handshake writes"));
    }
    if value.bytes().any(|b| b != b'\t' && is_control(b)) {
        return Err(Malformed("a header value has CR, LF or a control byte"));
    }
    Ok(())
}

/// Whether `s` is an HTTP token (RFC 9110 §5.6.2), as names, methods and subprotocols are.
pub(super) fn is_token(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(is_tchar)
}

/// The values of every field called `name` (case-insensitive), in order.
pub(super) fn values<'a>(
    headers: &'a [(String, String)],
    name: &'a str,
) -> impl Iterator<Item = &'a str> + 'a {
    headers
        .iter()
        .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// The non-empty elements of the comma-separated lists of every field called `name`.
pub(super) fn list_items<'a>(
    headers: &'a [(String, String)],
    name: &'a str,
) -> impl Iterator<Item = &'a str> + 'a {
    values(headers, name)
        .flat_map(|value| value.split(','))
        .map(|item| item.trim_matches([' ', '\t']))
        .filter(|item| !item.is_empty())
}

/// Whether the lists of the fields called `name` contain `token` (case-insensitive).
pub(super) fn list_contains(headers: &[(String, String)], name: &str, token: &str) -> bool {
    list_items(headers, name).any(|item| item.eq_ignore_ascii_case(token))
}

/// The value of the one field called `name`: `None` if it is absent or repeated.
pub(super) fn single<'a>(headers: &'a [(String, String)], name: &'a str) -> Option<&'a str> {
    let mut found = values(headers, name);
    match (found.next(), found.next()) {
        (Some(value), None) => Some(value),
        _ => None,
    }
}

/// One element of a `Sec-WebSocket-Extensions` list: an extension name and its
/// parameters in order, as sent but with quoted-string values unquoted.
#[cfg(feature = "deflate")]
#[derive(Debug, PartialEq, Eq)]
pub(super) struct Extension<'a> {
    pub(super) name: &'a str,
    pub(super) params: Vec<(&'a str, Option<String>)>,
}

/// Parses a `Sec-WebSocket-Extensions` value (RFC 6455 §9.1):
///
/// ```text
/// extension-list  = 1#extension
/// extension       = extension-token *( OWS ";" OWS extension-param )
/// extension-param = token [ OWS "=" OWS ( token / quoted-string ) ]
/// ```
///
/// Whitespace is allowed around `,`, `;` and `=`, and empty list elements are
/// skipped (RFC 9110 §5.6.1), so an empty value is an empty list. `None` if the value
/// does not follow the grammar.
#[cfg(feature = "deflate")]
pub(super) fn extension_list(value: &str) -> Option<Vec<Extension<'_>>> {
    let mut cursor = Cursor { s: value, at: 0 };
    let mut list = Vec::new();
    loop {
        cursor.skip_ows();
        if cursor.at == value.len() {
            return Some(list);
        }
        if cursor.eat(b',') {
            continue;
        }
        let name = cursor.token()?;
        let mut params = Vec::new();
        cursor.skip_ows();
        while cursor.eat(b';') {
            cursor.skip_ows();
            let param = cursor.token()?;
            cursor.skip_ows();
            let value = if cursor.eat(b'=') {
                cursor.skip_ows();
                Some(match cursor.peek() {
                    Some(b'"') => cursor.quoted_string()?,
                    _ => cursor.token()?.to_owned(),
                })
            } else {
                None
            };
            params.push((param, value));
            cursor.skip_ows();
        }
        list.push(Extension { name, params });
        if cursor.at < value.len() && !cursor.eat(b',') {
            return None;
        }
    }
}

/// A read position in a header value, for [`extension_list`].
#[cfg(feature = "deflate")]
struct Cursor<'a> {
    s: &'a str,
    at: usize,
}

#[cfg(feature = "deflate")]
impl<'a> Cursor<'a> {
    fn peek(&self) -> Option<u8> {
        self.s.as_bytes().get(self.at).copied()
    }

    fn eat(&mut self, b: u8) -> bool {
        let found = self.peek() == Some(b);
        self.at += usize::from(found);
        found
    }

    fn skip_ows(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t')) {
            self.at += 1;
        }
    }

    /// The token here (RFC 9110 §5.6.2), `None` if there is none.
    fn token(&mut self) -> Option<&'a str> {
        let start = self.at;
        while self.peek().is_some_and(is_tchar) {
            self.at += 1;
        }
        // Tokens are ASCII, so both ends are character boundaries.
        self.s.get(start..self.at).filter(|token| !token.is_empty())
    }

    /// The content of the quoted-string here (RFC 9110 §5.6.4), escapes undone;
    /// `None` if it is unterminated or holds a control byte.
    fn quoted_string(&mut self) -> Option<String> {
        let bytes = self.s.as_bytes();
        self.at += 1; // the opening quote
        let mut content = Vec::new();
        loop {
            let b = *bytes.get(self.at)?;
            self.at += 1;
            match b {
                b'"' => break,
                b'\\' => {
                    let escaped = *bytes.get(self.at)?;
                    if is_control(escaped) && escaped != b'\t' {
                        return None;
                    }
                    content.push(escaped);
                    self.at += 1;
                }
                _ if is_control(b) && b != b'\t' => return None,
                _ => content.push(b),
            }
        }
        // Only ASCII bytes were removed, so the rest is still UTF-8.
        String::from_utf8(content).ok()
    }
}

pub(super) fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

pub(super) fn is_control(b: u8) -> bool {
    b < 0x20 || b == 0x7f
}

fn trim_ows(mut bytes: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = bytes {
        bytes = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = bytes {
        bytes = rest;
    }
    bytes
}

/// Bytes as text: UTF-8 when they are, else ISO-8859-1 (HTTP's historical charset),
/// so that no byte is lost or replaced.
fn text(bytes: &[u8]) -> String {
    match std::str::from_utf8(bytes) {
        Ok(s) => s.to_owned(),
        Err(_) => bytes.iter().map(|&b| char::from(b)).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_of_head() {
        assert_eq!(locate(b"A\r\n\r\nxy", 0, 100), Ok(Some(5)));
        assert_eq!(locate(b"A\n\nxy", 0, 100), Ok(Some(3)));
        assert_eq!(locate(b"A\r\n\nxy", 0, 100), Ok(Some(4)));
        assert_eq!(locate(b"A\n\r\nxy", 0, 100), Ok(Some(4)));
        assert_eq!(locate(b"A\r\nB\r\n", 0, 100), Ok(None));
        assert_eq!(locate(b"A\r\nB\r\n\r", 0, 100), Ok(None));
        assert_eq!(locate(b"\r\n", 0, 100), Ok(Some(2)));
        assert_eq!(locate(b"", 0, 100), Ok(None));
    }

    #[test]
    fn limit_counts_the_blank_line() {
        let head = b"GET / HTTP/1.1\r\n\r\n";
        assert_eq!(locate(head, 0, head.len()), Ok(Some(head.len())));
        assert_eq!(
            locate(head, 0, head.len() - 1),
            Err(HandshakeError::HeaderTooLarge {
                limit: head.len() - 1
            })
        );
        assert_eq!(locate(&head[..10], 0, head.len() - 1), Ok(None));
    }

    #[test]
    fn header_lines_are_counted_across_pieces() {
        let head = b"GET / HTTP/1.1\r\nA: 1\r\nB: 2\nC: 3\r\n\r\n";
        let limits = |n| (100, n);
        assert_eq!(
            locate_counting(head, 0, &mut 0, limits(3)),
            Ok(Some(head.len()))
        );
        let too_many = Err(HandshakeError::TooManyHeaders { limit: 2 });
        assert_eq!(locate_counting(head, 0, &mut 0, limits(2)), too_many);
        // Piece by piece, refused when the line past the limit ends, before the
        // blank line comes.
        for max in [2, 3] {
            let mut lines = 0;
            let mut searched = 0;
            let mut outcome = Ok(None);
            for end in 1..=head.len() {
                outcome = locate_counting(&head[..end], searched, &mut lines, limits(max));
                if outcome != Ok(None) {
                    let refused_at = head.len() - 2; // the LF that ends "C: 3"
                    let at = if max == 2 { refused_at } else { head.len() };
                    assert_eq!(end, at, "max {max}");
                    break;
                }
                searched = end;
            }
            let want = if max == 2 {
                too_many.clone()
            } else {
                Ok(Some(head.len()))
            };
            assert_eq!(outcome, want);
        }
        // None at all, and the stateless default.
        assert_eq!(
            locate_counting(b"X\r\n\r\n", 0, &mut 0, limits(0)),
            Ok(Some(5))
        );
        let mut many = b"X\r\n".to_vec();
        for _ in 0..DEFAULT_MAX_HEADERS {
            many.extend_from_slice(b"a:\n");
        }
        let at_default = [many.as_slice(), b"\n"].concat();
        assert_eq!(locate(&at_default, 0, 8192), Ok(Some(at_default.len())));
        many.extend_from_slice(b"a:\n\n");
        assert_eq!(
            locate(&many, 0, 8192),
            Err(HandshakeError::TooManyHeaders {
                limit: DEFAULT_MAX_HEADERS
            })
        );
    }

    #[test]
    fn header_syntax() {
        let (start, headers) = parse(b"X y\r\nA:  b c \t\r\nEmpty:\r\n\r\n").unwrap();
        assert_eq!(start, "X y");
        assert_eq!(
            headers,
            vec![
                ("A".to_owned(), "b c".to_owned()),
                ("Empty".to_owned(), String::new())
            ]
        );
        assert!(parse(b"X\r\nA : b\r\n\r\n").is_err());
        assert!(parse(b"X\r\nA: b\r\n c\r\n\r\n").is_err());
        assert!(parse(b"X\r\nA: b\rc\r\n\r\n").is_err());
        assert!(parse(b"X\r\nAb\r\n\r\n").is_err());
        assert!(parse(b"X\r\nA: \0\r\n\r\n").is_err());
    }

    #[cfg(feature = "deflate")]
    #[test]
    fn extension_lists() {
        let ext = |name, params: &[(&'static str, Option<&str>)]| Extension {
            name,
            params: params
                .iter()
                .map(|&(n, v)| (n, v.map(str::to_owned)))
                .collect(),
        };
        assert_eq!(extension_list(""), Some(vec![]));
        assert_eq!(extension_list(" , ,\t"), Some(vec![]));
        assert_eq!(
            extension_list("a ; b = 1 ;c=\"x\\\"y\" , d,e;f"),
            Some(vec![
                ext("a", &[("b", Some("1")), ("c", Some("x\"y"))]),
                ext("d", &[]),
                ext("e", &[("f", None)]),
            ])
        );
        assert_eq!(
            extension_list("a; b=\"caf\u{e9} \\\u{e9}\""),
            Some(vec![ext("a", &[("b", Some("caf\u{e9} \u{e9}"))])])
        );
        for bad in [
            "a;",
            "a; ",
            ";b",
            "a b",
            "a;b=",
            "a;b=\"x",
            "a;b=\"x\\",
            "a;b=\"x\"y",
            "a;=1",
            "a;b c",
            "a;b=1 2",
            "\"a\"",
            "a;b=\"\u{7}\"",
            "a;b=\"\\\u{7}\"",
            "a;b=c=d",
            "a,;",
        ] {
            assert_eq!(extension_list(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn latin1_values_are_kept() {
        let (_, headers) = parse(b"X\r\nA: caf\xe9\r\n\r\n").unwrap();
        assert_eq!(headers[0].1, "caf\u{e9}");
    }
}
