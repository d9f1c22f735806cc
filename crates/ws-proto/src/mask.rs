//! Payload masking (RFC 6455 section 5.3).
//!
//! Owns the XOR of payload bytes with the 4-byte masking key, in place, in
//! streaming form: a payload may be unmasked in pieces as it arrives, so each
//! call says where in the payload its slice starts. It does not choose keys;
//! the connection does that.
//!
//! The fast path works a 64-bit word at a time in safe code, which the
//! compiler turns into SIMD on targets that have it; [`apply_mask_naive`] is
//! the byte-at-a-time reference the tests and benchmarks compare against.

/// XORs `buf` with `key`, as the bytes of a payload starting at offset 0.
///
/// ```
/// let mut data = *b"hello";
/// ws_proto::mask::apply_mask(&mut data, [1, 2, 3, 4]);
/// ws_proto::mask::apply_mask(&mut data, [1, 2, 3, 4]);
/// assert_eq!(&data, b"hello");
/// ```
#[inline]
pub fn apply_mask(buf: &mut [u8], key: [u8; 4]) {
    apply_mask_at(buf, key, 0);
}

/// XORs `buf` with `key`, where `buf` starts at byte `offset` of the payload.
///
/// Masking is position-dependent (`payload[i] ^= key[i % 4]`), so a payload
/// that arrives in pieces is unmasked piece by piece with the running offset.
#[inline]
pub fn apply_mask_at(buf: &mut [u8], key: [u8; 4], offset: usize) {
    let key = rotate(key, offset);
    let (words, tail) = buf.as_chunks_mut::<8>();
    let word_key = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    for word in words {
        *word = (u64::from_ne_bytes(*word) ^ word_key).to_ne_bytes();
    }
    // `words` covered a multiple of 8 bytes, so the key phase is unchanged.
    for (i, byte) in tail.iter_mut().enumerate() {
        *byte ^= key[i & 3];
    }
}

/// Byte-at-a-time reference implementation of [`apply_mask_at`].
pub fn apply_mask_naive(buf: &mut [u8], key: [u8; 4], offset: usize) {
    for (i, byte) in buf.iter_mut().enumerate() {
        *byte ^= key[(offset + i) & 3];
    }
}

/// The key as seen from payload position `offset`.
#[inline]
fn rotate(key: [u8; 4], offset: usize) -> [u8; 4] {
    let mut rotated = key;
    rotated.rotate_left(offset & 3);
    rotated
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn matches_reference(data in proptest::collection::vec(any::<u8>(), 0..300),
                             key in any::<[u8; 4]>(), offset in 0usize..16) {
            let mut fast = data.clone();
            let mut slow = data.clone();
            apply_mask_at(&mut fast, key, offset);
            apply_mask_naive(&mut slow, key, offset);
            prop_assert_eq!(fast, slow);
        }

        #[test]
        fn piecewise_equals_whole(data in proptest::collection::vec(any::<u8>(), 0..300),
                                  key in any::<[u8; 4]>(), split in 0usize..300) {
            let split = split.min(data.len());
            let mut whole = data.clone();
            apply_mask(&mut whole, key);
            let mut pieces = data.clone();
            let (a, b) = pieces.split_at_mut(split);
            apply_mask_at(a, key, 0);
            apply_mask_at(b, key, split);
            prop_assert_eq!(whole, pieces);
        }
    }

    #[test]
    fn rfc_example() {
        // RFC 6455 5.7: "Hello" masked with 37 fa 21 3d.
        let mut data = *b"Hello";
        apply_mask(&mut data, [0x37, 0xfa, 0x21, 0x3d]);
        assert_eq!(data, [0x7f, 0x9f, 0x4d, 0x51, 0x58]);
    }
}
