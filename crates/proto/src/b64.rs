//! base64url without padding (RFC 7515 §2), the only base64 flavour JOSE uses.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

/// Why a base64url string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum B64Error {
    /// The encoded text is longer than the caller's budget allows.
    #[error("base64url value is too long ({len} characters, at most {max})")]
    TooLong { len: usize, max: usize },
    /// Not canonical unpadded base64url.
    #[error("value is not canonical unpadded base64url")]
    Invalid,
}

/// Encodes bytes as unpadded base64url.
pub fn encode(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Decodes unpadded base64url, refusing padding, other alphabets, non-zero trailing bits and any
/// text longer than `max_encoded_len` characters (checked before any allocation).
pub fn decode(text: &str, max_encoded_len: usize) -> Result<Vec<u8>, B64Error> {
    if text.len() > max_encoded_len {
        return Err(B64Error::TooLong {
            len: text.len(),
            max: max_encoded_len,
        });
    }
    URL_SAFE_NO_PAD.decode(text).map_err(|_| B64Error::Invalid)
}

/// Decodes a value that must be exactly `N` bytes long.
pub fn decode_array<const N: usize>(text: &str) -> Result<[u8; N], B64Error> {
    let bytes = decode(text, N.div_ceil(3) * 4)?;
    bytes.try_into().map_err(|_| B64Error::Invalid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_refuses_padding_and_other_alphabets() {
        assert_eq!(encode(b"\xfb\xff"), "-_8");
        assert_eq!(decode("-_8", 10).unwrap(), b"\xfb\xff");
        assert_eq!(decode("-_8=", 10), Err(B64Error::Invalid));
        assert_eq!(decode("+/8", 10), Err(B64Error::Invalid));
        // "-_9" has non-zero trailing bits: a second spelling of the same bytes.
        assert_eq!(decode("-_9", 10), Err(B64Error::Invalid));
    }

    #[test]
    fn refuses_oversize_before_decoding() {
        assert_eq!(
            decode("AAAAAAAA", 4),
            Err(B64Error::TooLong { len: 8, max: 4 })
        );
    }

    #[test]
    fn fixed_size_values_must_have_that_size() {
        assert_eq!(decode_array::<2>("-_8").unwrap(), [0xfb, 0xff]);
        assert_eq!(decode_array::<3>("-_8"), Err(B64Error::Invalid));
    }
}
