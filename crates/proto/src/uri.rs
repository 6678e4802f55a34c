//! RFC 3986 character classes, shared by everything that reads or builds a URI path.

/// `unreserved`: `A-Z a-z 0-9 - . _ ~` (§2.3).
pub fn is_unreserved(byte: u8) -> bool {
    byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'.' | b'_' | b'~')
}

/// A `pchar` written as itself (§3.3), that is, not percent-encoded: unreserved, a
/// sub-delimiter (`! $ & ' ( ) * + , ; =`), `:` or `@`.
pub fn is_raw_pchar(byte: u8) -> bool {
    is_unreserved(byte)
        || matches!(
            byte,
            b'!' | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
                | b':'
                | b'@'
        )
}
