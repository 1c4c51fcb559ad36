//! Incremental UTF-8 validation: std's validator on whole chunks, with at most
//! one code point carried across chunk (and frame) edges.
use std::str;

/// The state of a text message being checked: the bytes of a code point cut by
/// the end of the last chunk.
///
/// ```
/// use net_websocket_ev::proto::Utf8Validator;
/// let mut v = Utf8Validator::default();
/// let text = "h\u{e9}llo".as_bytes();
/// assert!(v.feed(&text[..2])); // cut inside the 2-byte \u{e9}
/// assert!(!v.is_complete());
/// assert!(v.feed(&text[2..]));
/// assert!(v.is_complete());
/// assert!(!v.feed(b"\xff"));
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct Utf8Validator {
    partial: [u8; 4],
    len: u8,
}

/// Whether `bytes` is valid UTF-8 ([`str::from_utf8`], with a shortcut for
/// short ASCII input).
#[inline]
pub(crate) fn is_valid(bytes: &[u8]) -> bool {
    is_short_ascii(bytes) || str::from_utf8(bytes).is_ok()
}

/// Short ASCII input, the common case of small text messages: checked a word
/// at a time, which costs a fraction of std's validator set-up on a few bytes.
#[inline]
fn is_short_ascii(bytes: &[u8]) -> bool {
    bytes.len() <= 64 && bytes.is_ascii()
}

/// The bytes a code point starting with `lead` has (1 for bytes that cannot
/// start one: the validator reports them).
fn sequence_len(lead: u8) -> usize {
    match lead {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => 1,
    }
}

impl Utf8Validator {
    /// Forgets any carried bytes (a new message).
    pub fn reset(&mut self) {
        self.len = 0;
    }

    /// Whether the text so far ends on a code point boundary.
    pub fn is_complete(&self) -> bool {
        self.len == 0
    }

    /// Checks the next chunk: false as soon as a byte cannot be part of valid
    /// UTF-8 (a cut code point at the end is fine until [`Self::is_complete`]).
    #[inline]
    pub fn feed(&mut self, chunk: &[u8]) -> bool {
        if self.len == 0 && is_short_ascii(chunk) {
            return true; // the common case, without a call
        }
        self.feed_any(chunk)
    }

    fn feed_any(&mut self, chunk: &[u8]) -> bool {
        let mut rest = chunk;
        if self.len > 0 {
            let have = usize::from(self.len);
            let need = sequence_len(self.partial[0]).saturating_sub(have);
            let take = need.min(rest.len());
            let mut joined = [0u8; 4];
            joined[..have].copy_from_slice(&self.partial[..have]);
            joined[have..have + take].copy_from_slice(&rest[..take]);
            match str::from_utf8(&joined[..have + take]) {
                Ok(_) => self.len = 0,
                Err(e) if e.error_len().is_some() => return false,
                Err(_) => {
                    // Still cut short: only possible when the chunk ran out.
                    self.partial = joined;
                    self.len = (have + take) as u8;
                    return true;
                }
            }
            rest = &rest[take..];
        }
        if is_short_ascii(rest) {
            return true;
        }
        match str::from_utf8(rest) {
            Ok(_) => true,
            Err(e) if e.error_len().is_some() => false,
            Err(e) => {
                let tail = &rest[e.valid_up_to()..];
                self.partial[..tail.len()].copy_from_slice(tail);
                self.len = tail.len() as u8;
                true
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Utf8Validator;

    fn check_split(bytes: &[u8]) -> Option<bool> {
        // Some(valid) when every split gives the same answer as the whole.
        let whole = std::str::from_utf8(bytes).is_ok();
        for cut1 in 0..=bytes.len() {
            for cut2 in cut1..=bytes.len() {
                let mut v = Utf8Validator::default();
                let ok = v.feed(&bytes[..cut1])
                    && v.feed(&bytes[cut1..cut2])
                    && v.feed(&bytes[cut2..])
                    && v.is_complete();
                if ok != whole {
                    return None;
                }
            }
        }
        Some(whole)
    }

    #[test]
    fn splits_agree_with_std() {
        let samples: &[&[u8]] = &[
            "héllo €𝄞".as_bytes(),
            b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5",
            b"\xf4\x90\x80\x80",
            b"\xed\xa0\x80",
            b"\xe0\x80\xaf",
            b"ab\xc0\xaf",
            b"\xf0\x9f\x98",
            b"\xff",
            b"\xe2\x82",
            b"",
        ];
        for s in samples {
            assert!(check_split(s).is_some(), "{s:?}");
        }
    }

    #[test]
    fn fails_at_the_first_bad_byte_of_a_cut_code_point() {
        let mut v = Utf8Validator::default();
        assert!(v.feed(b"ok\xf4"));
        // 0xf4 0x90 can never be valid: fail now, not at the end of the message.
        assert!(!v.feed(b"\x90"));
    }

    #[test]
    fn is_valid_agrees_with_std_on_short_and_long_input() {
        let samples: &[&[u8]] = &[
            b"",
            b"plain ascii",
            "héllo".as_bytes(),
            b"ab\xc0\xaf",
            b"\xff",
            &[b'a'; 64],
            &[b'a'; 65],
            b"\xe2\x82",
        ];
        for s in samples {
            assert_eq!(super::is_valid(s), std::str::from_utf8(s).is_ok(), "{s:?}");
        }
        let mut long = vec![b'a'; 100];
        long[99] = 0x80;
        assert!(!super::is_valid(&long));
    }
}
