//! The one form of a request path that the route check sees and the upstream receives.
//!
//! A proxy that checks one spelling of a path and forwards another is a route bypass: servlet
//! containers read `/api/v1/status/..;/..;/admin` as `/admin`, some servers decode `%2e%2e`,
//! `%3b` or overlong UTF-8 after the check. So the gateway canonicalises every path (RFC 3986
//! §6.2.2), refuses what has no safe canonical form, checks routes against the result and
//! forwards exactly that.
//!
//! 1. At most [`MAX_PATH`] bytes (414 beyond), starting with `/`.
//! 2. Percent-encodings are two hex digits. An encoded unreserved character (`A-Z a-z 0-9 - .
//!    _ ~`) is decoded; any other encoding that is allowed stays encoded, in upper case.
//! 3. Refused outright: raw or encoded `;` (path parameters), encoded `/`, `\` and `%`, raw
//!    `\`, control characters (raw or encoded, `%00` included), and every byte above 0x7F, raw or
//!    encoded (non-ASCII and overlong UTF-8, full-width dots).
//! 4. After decoding, no segment is `.` or `..`, and no segment but the last is empty.

use medgate_proto::uri::{is_raw_pchar, is_unreserved as unreserved};

/// The longest request path accepted.
pub const MAX_PATH: usize = 2048;
/// The longest query accepted (414 beyond): what route rules read of it stays bounded.
pub const MAX_QUERY: usize = 8192;

/// Why a path has no canonical form.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PathError {
    #[error("the path is longer than {MAX_PATH} bytes")]
    TooLong,
    #[error("the path must start with /")]
    NotAbsolute,
    #[error("the path has a malformed percent-encoding")]
    BadEncoding,
    #[error("the path contains a character that could be read differently upstream")]
    Ambiguous,
    #[error("the path has a dot or empty segment")]
    DotOrEmptySegment,
}

/// Characters a path may carry raw besides unreserved ones: `/` and RFC 3986 sub-delims, `:`
/// and `@`, less `;`.
fn allowed_raw(byte: u8) -> bool {
    byte == b'/' || (byte != b';' && is_raw_pchar(byte))
}

/// Decoded bytes that must never come out of an encoding.
fn refused_encoded(byte: u8) -> bool {
    !(0x20..0x7f).contains(&byte) || matches!(byte, b'/' | b'\\' | b'%' | b';')
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

/// Steps 1–4: the canonical form of `raw`, or why there is none.
pub fn canonical_path(raw: &str) -> Result<String, PathError> {
    let bytes = raw.as_bytes();
    // Step 1.
    if bytes.len() > MAX_PATH {
        return Err(PathError::TooLong);
    }
    if bytes.first() != Some(&b'/') {
        return Err(PathError::NotAbsolute);
    }
    // Steps 2 and 3.
    let mut out = String::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let byte = bytes[i];
        if byte == b'%' {
            let (Some(high), Some(low)) = (
                bytes.get(i + 1).and_then(|d| hex_value(*d)),
                bytes.get(i + 2).and_then(|d| hex_value(*d)),
            ) else {
                return Err(PathError::BadEncoding);
            };
            let decoded = high << 4 | low;
            if refused_encoded(decoded) {
                return Err(PathError::Ambiguous);
            }
            if unreserved(decoded) {
                out.push(char::from(decoded));
            } else {
                out.push_str(&format!("%{decoded:02X}"));
            }
            i += 3;
        } else if allowed_raw(byte) {
            out.push(char::from(byte));
            i += 1;
        } else {
            return Err(PathError::Ambiguous);
        }
    }
    // Step 4.
    let mut segments = out[1..].split('/').peekable();
    while let Some(segment) = segments.next() {
        let last = segments.peek().is_none();
        if segment == "." || segment == ".." || (segment.is_empty() && !last) {
            return Err(PathError::DotOrEmptySegment);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_paths_are_unchanged() {
        for path in [
            "/",
            "/api/v1/entries",
            "/api/v1/entries.json",
            "/api/v1/entries/",
            "/api/v1/treatments/5f3c:2@x",
            "/a%20b",
            "/~user/a-b_c",
        ] {
            assert_eq!(canonical_path(path).as_deref(), Ok(path), "{path}");
        }
    }

    #[test]
    fn unreserved_encodings_are_decoded_and_others_upper_cased() {
        assert_eq!(
            canonical_path("/api/v1/%65ntries").unwrap(),
            "/api/v1/entries"
        );
        assert_eq!(canonical_path("/a%7eb").unwrap(), "/a~b");
        assert_eq!(canonical_path("/a%2bb").unwrap(), "/a%2Bb");
        assert_eq!(canonical_path("/q%3fx").unwrap(), "/q%3Fx");
    }

    /// The tricks that read differently upstream, each refused with its reason.
    #[test]
    fn ambiguous_paths_are_refused() {
        let cases: &[(&str, PathError)] = &[
            ("/api/v1/status/..;/..;/admin", PathError::Ambiguous),
            ("/api/v1/status;jsessionid=1", PathError::Ambiguous),
            ("/api/v1/status%3b/admin", PathError::Ambiguous),
            ("/api/v1/status%3B/admin", PathError::Ambiguous),
            ("/api/v1/entries%00.json", PathError::Ambiguous),
            ("/api/v1/entries%2f..%2fadmin", PathError::Ambiguous),
            ("/api/v1/entries%5cadmin", PathError::Ambiguous),
            ("/api/v1/entries%252e%252e", PathError::Ambiguous),
            ("/api/v1/%c0%ae%c0%ae/admin", PathError::Ambiguous),
            ("/api/v1/%ef%bc%8e%ef%bc%8e/admin", PathError::Ambiguous),
            ("/api/v1/\u{ff0e}\u{ff0e}/admin", PathError::Ambiguous),
            ("/api/v1/entries\\..\\admin", PathError::Ambiguous),
            ("/api/v1/entries%0d%0aX: y", PathError::Ambiguous),
            ("/api/v1/../admin", PathError::DotOrEmptySegment),
            ("/api/v1/%2e%2e/admin", PathError::DotOrEmptySegment),
            ("/api/v1/%2E/admin", PathError::DotOrEmptySegment),
            ("/api/v1//admin", PathError::DotOrEmptySegment),
            ("/api/v1/%zz", PathError::BadEncoding),
            ("/api/v1/%4", PathError::BadEncoding),
            ("api/v1", PathError::NotAbsolute),
            ("", PathError::NotAbsolute),
        ];
        for (path, reason) in cases {
            assert_eq!(canonical_path(path), Err(*reason), "{path:?}");
        }
        assert_eq!(
            canonical_path(&format!("/{}", "a".repeat(MAX_PATH))),
            Err(PathError::TooLong)
        );
    }

    #[test]
    fn the_canonical_form_is_a_fixed_point() {
        for path in ["/api/v1/%65ntries", "/a%2bb%7E", "/x/%41%42/"] {
            let once = canonical_path(path).unwrap();
            assert_eq!(canonical_path(&once).unwrap(), once);
        }
    }

    #[test]
    fn the_htu_of_a_canonical_path_is_what_parsing_the_whole_uri_gives() {
        use medgate_verify::dpop::{HtuBase, target_uri};
        const BASE: &str = "https://API.example:443/prefix/";
        let base = HtuBase::new(BASE).unwrap();
        // Deterministic pseudo-random paths over the characters that matter to URL parsers.
        let alphabet: Vec<char> = "/./..%2e%2E%41%7e%20aZ09-_~!$&'()*+,;=:@[]{}|^`\\\"<> ?#"
            .chars()
            .collect();
        let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut checked = 0;
        for _ in 0..20_000 {
            let len = (next() % 24) as usize;
            let mut path = String::from("/");
            for _ in 0..len {
                path.push(alphabet[(next() % alphabet.len() as u64) as usize]);
            }
            if let Ok(path) = canonical_path(&path) {
                assert_eq!(base.join(&path), target_uri(BASE, &path), "{path:?}");
                checked += 1;
            }
        }
        assert!(checked > 1_000, "only {checked} canonical paths");
    }
}
