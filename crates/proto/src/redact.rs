//! Log-safe wrappers. Tokens, keys and secrets are held in [`Secret`], whose `Debug` and
//! `Display` never print the value, so a stray `tracing::debug!(?x)` cannot leak it.

/// A value that must never reach a log line or an error message.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret<T>(T);

impl<T> Secret<T> {
    pub fn new(value: T) -> Self {
        Secret(value)
    }

    /// The value itself, for the one place that needs it (a header, a signature check).
    pub fn expose(&self) -> &T {
        &self.0
    }

    pub fn into_inner(self) -> T {
        self.0
    }
}

impl<T> std::fmt::Debug for Secret<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl<T> std::fmt::Display for Secret<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

/// The first characters of an identifier (an installation id, a token id) for log lines: enough
/// to correlate with the audit log, not enough to act on.
pub fn short(id: &str) -> &str {
    let end = id
        .char_indices()
        .nth(8)
        .map_or(id.len(), |(index, _)| index);
    &id[..end]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_format() {
        let secret = Secret::new("eyJhbGciOi.token.sig".to_string());
        assert_eq!(
            format!("{secret:?} {secret}"),
            "Secret([redacted]) [redacted]"
        );
        assert_eq!(secret.expose(), "eyJhbGciOi.token.sig");
    }

    #[test]
    fn short_ids_are_char_safe() {
        assert_eq!(short("0ZcOCORZNYy-DWpqq30jZyJG"), "0ZcOCORZ");
        assert_eq!(short("abc"), "abc");
        assert_eq!(short("ééééééééé"), "éééééééé");
    }
}
