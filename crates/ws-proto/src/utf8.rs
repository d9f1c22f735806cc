//! Incremental UTF-8 validation for text messages that arrive in pieces.
//!
//! A text message may be split across frames and each frame across reads,
//! with a multi-byte character cut anywhere. [`Utf8Validator`] keeps the at
//! most three bytes of an unfinished character between calls and reports an
//! error as soon as the bytes seen so far can no longer be the start of valid
//! UTF-8 (RFC 6455 section 8.1 asks endpoints to fail fast). Validation itself
//! is delegated to `simdutf8`.

use thiserror::Error;

/// The bytes are not, and cannot become, valid UTF-8.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("invalid UTF-8")]
pub struct InvalidUtf8;

/// Validates a byte stream chunk by chunk.
///
/// ```
/// use ws_proto::utf8::Utf8Validator;
/// let mut v = Utf8Validator::default();
/// let euro = "€".as_bytes(); // e2 82 ac
/// v.feed(&euro[..1]).unwrap();
/// v.feed(&euro[1..]).unwrap();
/// v.finish().unwrap();
/// assert!(v.feed(&[0xff]).is_err());
/// ```
#[derive(Debug, Default, Clone)]
pub struct Utf8Validator {
    pending: [u8; 4],
    pending_len: u8,
}

impl Utf8Validator {
    /// Validates the next chunk. Fails as soon as the stream is invalid; an
    /// unfinished character at the end is kept for the next call.
    pub fn feed(&mut self, mut chunk: &[u8]) -> Result<(), InvalidUtf8> {
        if self.pending_len > 0 {
            let have = usize::from(self.pending_len);
            let need = sequence_len(self.pending[0]).saturating_sub(have);
            let take = need.min(chunk.len());
            self.pending[have..have + take].copy_from_slice(&chunk[..take]);
            let now = have + take;
            match simdutf8::compat::from_utf8(&self.pending[..now]) {
                Ok(_) => self.pending_len = 0,
                Err(e) if e.error_len().is_some() => return Err(InvalidUtf8),
                Err(_) => {
                    // Still unfinished: the chunk was too short to complete it.
                    self.pending_len = now as u8;
                    return Ok(());
                }
            }
            chunk = &chunk[take..];
        }
        if simdutf8::basic::from_utf8(chunk).is_ok() {
            return Ok(());
        }
        match simdutf8::compat::from_utf8(chunk) {
            Ok(_) => Ok(()),
            Err(e) if e.error_len().is_some() => Err(InvalidUtf8),
            Err(e) => {
                let tail = &chunk[e.valid_up_to()..];
                self.pending[..tail.len()].copy_from_slice(tail);
                self.pending_len = tail.len() as u8;
                Ok(())
            }
        }
    }

    /// Ends the stream: an unfinished character is an error. Resets the
    /// validator for the next message either way.
    pub fn finish(&mut self) -> Result<(), InvalidUtf8> {
        let unfinished = self.pending_len > 0;
        self.pending_len = 0;
        if unfinished {
            Err(InvalidUtf8)
        } else {
            Ok(())
        }
    }

    /// Forgets any unfinished character.
    pub fn reset(&mut self) {
        self.pending_len = 0;
    }
}

/// Length of the sequence a lead byte announces (1 for anything unexpected,
/// which then fails validation on its own).
fn sequence_len(lead: u8) -> usize {
    match lead {
        0xC0..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF7 => 4,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn chunked(data: &[u8], cuts: &[usize]) -> Result<(), InvalidUtf8> {
        let mut v = Utf8Validator::default();
        let mut start = 0;
        for &cut in cuts {
            let cut = cut.clamp(start, data.len());
            v.feed(&data[start..cut])?;
            start = cut;
        }
        v.feed(&data[start..])?;
        v.finish()
    }

    proptest! {
        #[test]
        fn agrees_with_std(data in proptest::collection::vec(any::<u8>(), 0..64),
                           mut cuts in proptest::collection::vec(0usize..64, 0..6)) {
            cuts.sort_unstable();
            prop_assert_eq!(chunked(&data, &cuts).is_ok(), std::str::from_utf8(&data).is_ok());
        }

        #[test]
        fn valid_text_any_split(s in "\\PC{0,40}", cut in 0usize..200) {
            let bytes = s.as_bytes();
            prop_assert!(chunked(bytes, &[cut.min(bytes.len())]).is_ok());
        }
    }

    #[test]
    fn fails_fast_inside_a_character() {
        // ED A0 80 would be a surrogate: invalid as soon as A0 follows ED.
        let mut v = Utf8Validator::default();
        v.feed(&[b'a', 0xED]).unwrap();
        assert_eq!(v.feed(&[0xA0]), Err(InvalidUtf8));
        // F4 90 is beyond U+10FFFF.
        let mut v = Utf8Validator::default();
        v.feed(&[0xF4]).unwrap();
        assert_eq!(v.feed(&[0x90]), Err(InvalidUtf8));
    }

    #[test]
    fn unfinished_at_end_is_error() {
        let mut v = Utf8Validator::default();
        v.feed(&[0xE2, 0x82]).unwrap();
        assert_eq!(v.finish(), Err(InvalidUtf8));
        // and the validator is clean again
        v.feed(b"ok").unwrap();
        v.finish().unwrap();
    }
}
