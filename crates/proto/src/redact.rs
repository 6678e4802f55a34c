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

/// What went wrong parsing JSON, without the input: serde's own messages quote the offending
/// value or unknown member name ("invalid type: string \"…\"", "unknown field `…`"), which are
/// the sender's text. Those become the category and position only; a missing member keeps its
/// name (ours, from the schema); a message medgate's own deserialisers raise is kept (they never
/// quote input).
pub fn json_error(error: &serde_json::Error) -> String {
    use serde_json::error::Category;
    const SERDE_QUOTES_INPUT: [&str; 8] = [
        "invalid type",
        "invalid value",
        "invalid length",
        "unknown variant",
        "unknown field",
        "duplicate field",
        "data did not match",
        "expected",
    ];
    let at = format!("line {}, column {}", error.line(), error.column());
    match error.classify() {
        Category::Syntax => format!("not valid JSON ({at})"),
        Category::Eof => format!("the JSON ends early ({at})"),
        Category::Io => "the JSON could not be read".to_string(),
        Category::Data => {
            let message = error.to_string();
            let own = message
                .rsplit_once(" at line ")
                .map_or(message.as_str(), |(text, _)| text);
            if let Some(name) = own
                .strip_prefix("missing field `")
                .and_then(|rest| rest.strip_suffix('`'))
                .filter(|name| {
                    name.len() <= 64
                        && name
                            .bytes()
                            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                })
            {
                format!("missing member {name} ({at})")
            } else if SERDE_QUOTES_INPUT.iter().any(|p| own.starts_with(p)) || own.len() > 200 {
                format!("a member has the wrong type or value, or is not allowed ({at})")
            } else {
                format!("{own} ({at})")
            }
        }
    }
}

#[cfg(test)]
mod json_error_tests {
    use super::json_error;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    #[allow(dead_code)]
    struct Shape {
        version: String,
        count: Option<u32>,
    }

    fn message(input: &str) -> String {
        json_error(&serde_json::from_str::<Shape>(input).unwrap_err())
    }

    #[test]
    fn json_errors_never_quote_the_input() {
        let secret = "PATIENT-GLUCOSE-123";
        for input in [
            format!(r#"{{"version": "1", "{secret}": 1}}"#),
            format!(r#"{{"version": "1", "count": "{secret}"}}"#),
            format!(r#"{{"version": {secret}}}"#),
            format!(r#"{{"version": "1", "count": -1, "x": "{secret}"}}"#),
            format!(r#"["{secret}"]"#),
            format!(r#"{{"version": "{secret}"#),
        ] {
            let text = message(&input);
            assert!(!text.contains(secret), "{text}");
            assert!(!text.contains("PATIENT"), "{text}");
        }
        assert_eq!(message("{}"), "missing member version (line 1, column 2)");
        // A message of medgate's own deserialisers is kept.
        let jwk = serde_json::from_str::<crate::PublicJwk>(
            r#"{"kty":"EC","crv":"P-256","x":"f83OJ3D2xF1Bg8vub9tLe1gHMzV76e8Tus9uPHvRVEU","y":"x_FEzRu9m36HLN_tue659LNpXW6pCyStikYjKIWI5a0","d":"jpsQnnGQmL-YBIffH1136cspYG6-0iY7X1fCE9-E9LI"}"#,
        )
        .unwrap_err();
        assert!(
            json_error(&jwk).contains("private key material"),
            "{}",
            json_error(&jwk)
        );
        assert!(message("{").starts_with("the JSON ends early"));
        assert!(message("{]").starts_with("not valid JSON"));
    }
}
