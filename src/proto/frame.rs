//! The frame header codec (RFC 6455, section 5.2).
use super::{ProtocolError, Rsv};

/// The longest header: 2 bytes, 8 of extended length, 4 of mask key.
pub(crate) const MAX_HEADER_LEN: usize = 14;

/// A decoded frame header; the opcode is still raw (reserved ones are checked by
/// the receiver, which knows the message state).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) fin: bool,
    pub(crate) rsv: Rsv,
    pub(crate) opcode: u8,
    pub(crate) mask: Option<[u8; 4]>,
    pub(crate) len: u64,
}

impl Header {
    /// Decodes a header from the start of `buf`: `Ok(None)` when `buf` is too
    /// short, else the header and its length in bytes.
    #[inline]
    pub(crate) fn parse(buf: &[u8]) -> Result<Option<(Header, usize)>, ProtocolError> {
        let (b0, b1) = match buf {
            [b0, b1, ..] => (*b0, *b1),
            _ => return Ok(None),
        };
        let masked = b1 & 0x80 != 0;
        let (len, mut at) = match b1 & 0x7f {
            126 => {
                let Some(bytes) = buf.get(2..4) else {
                    return Ok(None);
                };
                let len = u16::from_be_bytes([bytes[0], bytes[1]]);
                if len < 126 {
                    return Err(ProtocolError::NonMinimalLength);
                }
                (u64::from(len), 4)
            }
            127 => {
                let Some(bytes) = buf.get(2..10) else {
                    return Ok(None);
                };
                let mut be = [0u8; 8];
                be.copy_from_slice(bytes);
                let len = u64::from_be_bytes(be);
                if len >> 63 != 0 {
                    return Err(ProtocolError::LengthMsbSet);
                }
                if len <= 0xffff {
                    return Err(ProtocolError::NonMinimalLength);
                }
                (len, 10)
            }
            short => (u64::from(short), 2),
        };
        let mask = if masked {
            let Some(bytes) = buf.get(at..at + 4) else {
                return Ok(None);
            };
            at += 4;
            Some([bytes[0], bytes[1], bytes[2], bytes[3]])
        } else {
            None
        };
        let header = Header {
            fin: b0 & 0x80 != 0,
            rsv: Rsv::from_bits_truncate((b0 >> 4) & 0x7),
            opcode: b0 & 0x0f,
            mask,
            len,
        };
        Ok(Some((header, at)))
    }

    /// The encoded header in an array, and its length.
    pub(crate) fn to_bytes(self) -> ([u8; MAX_HEADER_LEN], usize) {
        let mut bytes = [0u8; MAX_HEADER_LEN];
        let b0 = (u8::from(self.fin) << 7) | (self.rsv.bits() << 4) | (self.opcode & 0x0f);
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        bytes[0] = b0;
        let mut len = if self.len < 126 {
            bytes[1] = mask_bit | self.len as u8;
            2
        } else if self.len <= 0xffff {
            bytes[1] = mask_bit | 126;
            bytes[2..4].copy_from_slice(&(self.len as u16).to_be_bytes());
            4
        } else {
            bytes[1] = mask_bit | 127;
            bytes[2..10].copy_from_slice(&self.len.to_be_bytes());
            10
        };
        if let Some(mask) = self.mask {
            bytes[len..len + 4].copy_from_slice(&mask);
            len += 4;
        }
        (bytes, len)
    }

    /// Appends the encoded header to `out`.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        let b0 = (u8::from(self.fin) << 7) | (self.rsv.bits() << 4) | (self.opcode & 0x0f);
        let mask_bit = if self.mask.is_some() { 0x80 } else { 0 };
        if self.len < 126 {
            out.extend_from_slice(&[b0, mask_bit | self.len as u8]);
        } else if self.len <= 0xffff {
            out.extend_from_slice(&[b0, mask_bit | 126]);
            out.extend_from_slice(&(self.len as u16).to_be_bytes());
        } else {
            out.extend_from_slice(&[b0, mask_bit | 127]);
            out.extend_from_slice(&self.len.to_be_bytes());
        }
        if let Some(mask) = self.mask {
            out.extend_from_slice(&mask);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_every_length_form() {
        for len in [0u64, 1, 125, 126, 127, 65535, 65536, 1 << 40] {
            for mask in [None, Some([1, 2, 3, 4])] {
                let h = Header {
                    fin: len % 2 == 0,
                    rsv: Rsv::RSV1,
                    opcode: 2,
                    mask,
                    len,
                };
                let mut out = Vec::new();
                h.encode(&mut out);
                let (bytes, n) = h.to_bytes();
                assert_eq!(&bytes[..n], &out[..]);
                assert_eq!(Header::parse(&out).unwrap(), Some((h, out.len())));
                for cut in 0..out.len() {
                    assert_eq!(Header::parse(&out[..cut]).unwrap(), None);
                }
            }
        }
    }

    #[test]
    fn rejects_bad_length_encodings() {
        assert_eq!(
            Header::parse(&[0x82, 126, 0, 125]),
            Err(ProtocolError::NonMinimalLength)
        );
        assert_eq!(
            Header::parse(&[0x82, 127, 0, 0, 0, 0, 0, 0, 0xff, 0xff]),
            Err(ProtocolError::NonMinimalLength)
        );
        assert_eq!(
            Header::parse(&[0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0]),
            Err(ProtocolError::LengthMsbSet)
        );
    }
}
