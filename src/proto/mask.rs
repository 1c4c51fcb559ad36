//! Payload masking (RFC 6455, section 5.3), a machine word at a time.

/// XORs `buf` with `mask`, where `buf[0]` is payload byte number `offset` of its
/// frame (so masking can resume in the middle of a payload). Masking and
/// unmasking are the same operation.
///
/// ```
/// use net_websocket_ev::proto::apply_mask;
/// let mut data = *b"hello";
/// apply_mask(&mut data, [1, 2, 3, 4], 0);
/// apply_mask(&mut data[..2], [1, 2, 3, 4], 0);
/// apply_mask(&mut data[2..], [1, 2, 3, 4], 2);
/// assert_eq!(&data, b"hello");
/// ```
#[inline]
pub fn apply_mask(buf: &mut [u8], mask: [u8; 4], offset: usize) {
    let key = phased(mask, offset);
    if buf.len() < 16 {
        // A call and a word setup cost more than the XOR on tiny payloads.
        for (i, b) in buf.iter_mut().enumerate() {
            *b ^= key[i % 4];
        }
        return;
    }
    let word = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    let mut chunks = buf.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(bytes) ^ word).to_ne_bytes());
    }
    // Whole words keep the key's phase: the tail starts at a multiple of 4.
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= key[i % 4];
    }
}

/// Writes `src` masked with `mask` into `dst` (of the same length), where
/// `src[0]` is payload byte number `offset` of its frame: unmasking while
/// copying, one pass over the bytes instead of two.
pub(crate) fn copy_masked(dst: &mut [u8], src: &[u8], mask: [u8; 4], offset: usize) {
    debug_assert_eq!(dst.len(), src.len());
    let key = phased(mask, offset);
    let word = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    let mut to = dst.chunks_exact_mut(8);
    let mut from = src.chunks_exact(8);
    for (out, chunk) in (&mut to).zip(&mut from) {
        let mut bytes = [0u8; 8];
        bytes.copy_from_slice(chunk);
        out.copy_from_slice(&(u64::from_ne_bytes(bytes) ^ word).to_ne_bytes());
    }
    let tail = to.into_remainder().iter_mut().zip(from.remainder());
    for (i, (out, b)) in tail.enumerate() {
        *out = b ^ key[i % 4];
    }
}

/// The mask as it applies from payload byte `offset` on.
#[inline]
fn phased(mask: [u8; 4], offset: usize) -> [u8; 4] {
    let shift = offset % 4;
    [
        mask[shift],
        mask[(shift + 1) % 4],
        mask[(shift + 2) % 4],
        mask[(shift + 3) % 4],
    ]
}

#[cfg(test)]
mod tests {
    use super::{apply_mask, copy_masked};

    #[test]
    fn copy_masked_equals_copy_then_mask() {
        let mask = [0x12, 0x34, 0x56, 0x78];
        for len in 0..70 {
            for offset in 0..8 {
                let data: Vec<u8> = (0..len as u8).map(|i| i.wrapping_mul(37)).collect();
                let mut copied = vec![0xee; len];
                copy_masked(&mut copied, &data, mask, offset);
                let mut slow = data.clone();
                naive(&mut slow, mask, offset);
                assert_eq!(copied, slow, "len {len} offset {offset}");
            }
        }
    }

    fn naive(buf: &mut [u8], mask: [u8; 4], offset: usize) {
        for (i, b) in buf.iter_mut().enumerate() {
            *b ^= mask[(offset + i) % 4];
        }
    }

    #[test]
    fn matches_bytewise_for_every_length_and_offset() {
        let mask = [0x12, 0x34, 0x56, 0x78];
        for len in 0..70 {
            for offset in 0..8 {
                let data: Vec<u8> = (0..len as u8).map(|i| i.wrapping_mul(37)).collect();
                let mut fast = data.clone();
                let mut slow = data.clone();
                apply_mask(&mut fast, mask, offset);
                naive(&mut slow, mask, offset);
                assert_eq!(fast, slow, "len {len} offset {offset}");
            }
        }
    }

    #[test]
    fn split_masking_equals_whole() {
        let mask = [1, 2, 3, 250];
        let data: Vec<u8> = (0..100u8).collect();
        let mut whole = data.clone();
        apply_mask(&mut whole, mask, 0);
        for cut in 0..100 {
            let mut parts = data.clone();
            let (a, b) = parts.split_at_mut(cut);
            apply_mask(a, mask, 0);
            apply_mask(b, mask, cut);
            assert_eq!(parts, whole);
        }
    }
}
