//! Hexadecimal: lowercase out, either case in.

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// `bytes` as lowercase hex.
pub fn encode(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        out.push(char::from(DIGITS[usize::from(byte >> 4)]));
        out.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    out
}

/// The bytes of an even-length hex string (either case); `None` for anything else.
pub fn decode(text: &str) -> Option<Vec<u8>> {
    let digits = text.as_bytes();
    if !digits.len().is_multiple_of(2) {
        return None;
    }
    digits
        .chunks_exact(2)
        .map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?))
        .collect()
}

/// A SHA-256 written as 64 lowercase hex digits (`names::is_sha256_hex`); `None` for anything
/// else.
pub fn sha256(text: &str) -> Option<[u8; 32]> {
    if !crate::wire::names::is_sha256_hex(text) {
        return None;
    }
    decode(text)?.try_into().ok()
}

fn nibble(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_every_byte() {
        let all: Vec<u8> = (0..=255).collect();
        let text = encode(&all);
        assert_eq!(&text[..8], "00010203");
        assert_eq!(&text[text.len() - 4..], "feff");
        assert_eq!(decode(&text), Some(all.clone()));
        assert_eq!(decode(&text.to_uppercase()), Some(all));
        assert_eq!(encode(&[]), "");
        assert_eq!(decode(""), Some(Vec::new()));
        let digest = "ab".repeat(32);
        assert_eq!(sha256(&digest), Some([0xab; 32]));
        assert_eq!(sha256(&digest.to_uppercase()), None, "lowercase only");
        assert_eq!(sha256(&digest[2..]), None);
        assert_eq!(sha256("zz"), None);
    }

    #[test]
    fn odd_lengths_and_non_digits_are_refused() {
        assert_eq!(decode("abc"), None);
        assert_eq!(decode("0g"), None);
        assert_eq!(decode("+1"), None);
        assert_eq!(decode("é0"), None);
    }
}
