//! The admin API's request and response bodies, under `/v1/admin` on the admin listener.
//!
//! One set of types for every side: the server parses requests and writes responses with them,
//! the CLI writes requests and reads responses with them, and (with the `openapi` feature) the
//! server's OpenAPI document is generated from them. Times are [`UnixTime`](crate::time::UnixTime)
//! seconds unless a field says otherwise. Requests refuse unknown fields.
//!
//! Split by resource, as the server's admin module is.

mod apps;
mod credentials;
mod installations;
mod keys;
mod operators;
mod partners;
mod secrets;
mod telemetry;
mod trust;

pub use apps::*;
pub use credentials::*;
pub use installations::*;
pub use keys::*;
pub use operators::*;
pub use partners::*;
pub use secrets::*;
pub use telemetry::*;
pub use trust::*;

/// Schemas the derive cannot say alone: the rules the server checks, so the OpenAPI document
/// states exactly what it accepts.
#[cfg(feature = "openapi")]
mod schema {
    use utoipa::openapi::schema::{ArrayBuilder, ObjectBuilder, Schema, SchemaType, Type};

    fn scope() -> ObjectBuilder {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(super::SCOPE_PATTERN))
            .min_length(Some(1))
            .max_length(Some(128))
    }

    fn text(pattern: &str, max_length: usize) -> Schema {
        text_of(pattern, 1, max_length)
    }

    fn text_of(pattern: &str, min_length: usize, max_length: usize) -> Schema {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .pattern(Some(pattern))
            .min_length(Some(min_length))
            .max_length(Some(max_length))
            .build()
            .into()
    }

    pub(super) fn app_id() -> Schema {
        text(super::APP_ID_PATTERN, 128)
    }

    pub(super) fn version() -> Schema {
        text(super::VERSION_PATTERN, 64)
    }

    pub(super) fn name() -> Schema {
        text(super::NAME_PATTERN, 64)
    }

    pub(super) fn operator_name() -> Schema {
        text(super::OPERATOR_NAME_PATTERN, 64)
    }

    pub(super) fn secret_name() -> Schema {
        text(super::SECRET_NAME_PATTERN, 64)
    }

    /// 1 to 8192 bytes, in base64.
    pub(super) fn secret_value() -> Schema {
        text_of(super::BASE64_PATTERN, 4, 10924)
    }

    /// A SHA-256 in hex, or null.
    pub(super) fn optional_sha256_hex() -> Schema {
        ObjectBuilder::new()
            .schema_type(SchemaType::from_iter([Type::String, Type::Null]))
            .pattern(Some(super::SHA256_HEX_PATTERN))
            .min_length(Some(64))
            .max_length(Some(64))
            .build()
            .into()
    }

    /// A list of scope tokens.
    pub(super) fn scopes() -> Schema {
        ArrayBuilder::new().items(scope()).build().into()
    }

    /// 1 to 16 scope tokens, as a credential holds.
    pub(super) fn credential_scopes() -> Schema {
        ArrayBuilder::new()
            .items(scope())
            .min_items(Some(1))
            .max_items(Some(16))
            .build()
            .into()
    }
}

/// An OAuth scope token (`names::is_scope`).
pub const SCOPE_PATTERN: &str = r"^[!#-\[\]-~]{1,128}$";
/// An app id (`names::is_app_id`).
pub const APP_ID_PATTERN: &str = "^[A-Za-z0-9._-]{1,128}$";
/// A release version (`names::is_version`).
pub const VERSION_PATTERN: &str = "^[A-Za-z0-9._+-]{1,64}$";
/// A credential's or partner's name: 1 to 64 characters, none of them control characters.
pub const NAME_PATTERN: &str = r"^[^\x00-\x1f\x7f-\x9f]{1,64}$";
/// A secret's name (`names::is_secret_name`).
pub const SECRET_NAME_PATTERN: &str = "^[a-z0-9_-]{1,64}$";
/// An operator's name (`names::is_operator_name`).
pub const OPERATOR_NAME_PATTERN: &str = "^[a-z0-9._-]{1,64}$";
/// A SHA-256 in hex, either case.
pub const SHA256_HEX_PATTERN: &str = "^[0-9a-fA-F]{64}$";
/// Canonical standard base64 of 1 to 8192 bytes (at least 4 characters): up to 2730 groups of
/// three bytes and a padded last group, no stray bits in its last character.
pub const BASE64_PATTERN: &str =
    "^(?:[A-Za-z0-9+/]{4}){0,2730}(?:[A-Za-z0-9+/][AQgw]==|[A-Za-z0-9+/]{2}[AEIMQUYcgkosw048]=)?$";

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;

    use super::*;
    use crate::wire::names;

    /// Strings around each rule's edges: every ASCII character alone, in the middle of a valid
    /// string and repeated to each bound and one past it, and some non-ASCII.
    fn candidates() -> Vec<String> {
        let mut all = vec![String::new(), "é".into(), "a\u{85}b".into(), "Ωmega".into()];
        for byte in 0..=0x7fu8 {
            let c = char::from(byte);
            all.push(c.to_string());
            all.push(format!("a{c}b"));
            for n in [63, 64, 65, 127, 128, 129] {
                all.push(c.to_string().repeat(n));
            }
        }
        all
    }

    fn agree(pattern: &str, check: impl Fn(&str) -> bool) {
        let regex = regex::Regex::new(pattern).unwrap();
        for text in candidates() {
            assert_eq!(
                regex.is_match(&text),
                check(&text),
                "{pattern} and the server disagree on {text:?}"
            );
        }
    }

    /// The OpenAPI document states each rule as a pattern; the server checks it in code. They
    /// must be the same rule.
    #[test]
    fn patterns_state_the_rules_the_server_checks() {
        agree(APP_ID_PATTERN, names::is_app_id);
        agree(VERSION_PATTERN, names::is_version);
        agree(SCOPE_PATTERN, names::is_scope);
        agree(SECRET_NAME_PATTERN, names::is_secret_name);
        agree(OPERATOR_NAME_PATTERN, names::is_operator_name);
        agree(SHA256_HEX_PATTERN, |text| {
            names::is_sha256_hex(&text.to_ascii_lowercase())
        });
        agree(NAME_PATTERN, |text| {
            (1..=64).contains(&text.chars().count()) && !text.chars().any(char::is_control)
        });
    }

    #[test]
    fn the_base64_pattern_admits_exactly_what_decodes_to_one_to_8192_bytes() {
        let regex = regex::Regex::new(BASE64_PATTERN).unwrap();
        let decodes = |text: &str| {
            STANDARD
                .decode(text)
                .is_ok_and(|bytes| (1..=8192).contains(&bytes.len()))
        };
        let mut texts: Vec<String> = [0usize, 1, 2, 3, 4, 8190, 8191, 8192, 8193]
            .iter()
            .map(|&n| STANDARD.encode(vec![0xa5; n]))
            .collect();
        // Stray bits in the last character, missing or extra padding, other alphabets.
        texts.extend(
            [
                "QR==", "QUI=", "QUJ=", "QQ", "QQ===", "QUJD====", "-_8=", "QU I=",
            ]
            .map(String::from),
        );
        texts.extend(candidates());
        for text in texts {
            assert_eq!(
                regex.is_match(&text) && text.len() >= 4,
                decodes(&text),
                "the pattern and the decoder disagree on {:?}",
                &text[..text.len().min(16)]
            );
        }
    }
}
