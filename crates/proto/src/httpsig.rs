//! HTTP Message Signatures (RFC 9421) and `Content-Digest` (RFC 9530): the parts signer and
//! verifier must agree on byte for byte. Reading `Signature-Input` and `Signature`, building the
//! signature base, and reading, writing and computing `Content-Digest`. No crypto backend: the
//! SDK signs the base with its key, `medgate-verify::httpsig` verifies it.
//!
//! Covered components medgate reads (no component parameters: `;sf`, `;key`, `;bs`, `;req`,
//! `;name` are refused, so a signer and a verifier can never disagree on one):
//! `@method`, `@target-uri`, `@authority`, `@scheme`, `@path`, `@query`, `@status`, and header
//! fields by lowercase name, each field's values trimmed and joined with `", "` (§2.1).
//!
//! Structured fields are parsed and serialized with `sfv` (RFC 9651). Every input is bounded
//! before it is parsed; errors never repeat the input.

use sfv::{BareItem, Dictionary, InnerList, Item, ListEntry, Parameters, Parser};
use sha2::{Digest as _, Sha256, Sha512};

/// The longest `Signature-Input`, `Signature` or `Content-Digest` value read.
pub const MAX_FIELD_LEN: usize = 8 * 1024;
/// The most components one signature may cover.
pub const MAX_COMPONENTS: usize = 32;
/// The longest `nonce`, `keyid` or `tag`.
pub const MAX_PARAM_LEN: usize = 256;

/// Why a signature's fields were refused. Never quotes them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FieldError {
    #[error("{0} is longer than allowed")]
    TooLong(&'static str),
    #[error("{0} is not a structured field of the expected shape")]
    Malformed(&'static str),
    #[error("no signature with the expected label")]
    NoLabel,
    #[error("a covered component is not one medgate reads (component parameters are refused)")]
    UnsupportedComponent,
    #[error("a covered component is listed twice")]
    DuplicateComponent,
    #[error("a covered component is absent from the message")]
    MissingComponent,
    #[error("a signature parameter is malformed or unknown")]
    BadParameter,
}

/// The parameters of one signature (RFC 9421 §2.3), and the exact `@signature-params` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignatureParams {
    /// Covered components, in order, lowercase.
    pub components: Vec<String>,
    pub created: Option<i64>,
    pub expires: Option<i64>,
    pub nonce: Option<String>,
    pub keyid: Option<String>,
    pub alg: Option<String>,
    pub tag: Option<String>,
    /// The serialized inner list with its parameters: the value of `@signature-params`.
    serialized: String,
}

impl SignatureParams {
    /// Parameters for signing: the components and parameters, serialized canonically.
    pub fn new(
        components: &[&str],
        created: i64,
        expires: Option<i64>,
        nonce: &str,
        keyid: &str,
        alg: &str,
    ) -> Result<SignatureParams, FieldError> {
        let items = components
            .iter()
            .map(|name| {
                sfv::String::from_string((*name).to_string())
                    .map(|name| Item::new(BareItem::String(name)))
                    .map_err(|_| FieldError::UnsupportedComponent)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let mut params = Parameters::new();
        let mut put = |key: &str, value: BareItem| -> Result<(), FieldError> {
            let key =
                sfv::Key::from_string(key.to_string()).map_err(|_| FieldError::BadParameter)?;
            params.insert(key, value);
            Ok(())
        };
        let string = |text: &str| {
            sfv::String::from_string(text.to_string())
                .map(BareItem::String)
                .map_err(|_| FieldError::BadParameter)
        };
        let integer = |value: i64| {
            sfv::Integer::try_from(value)
                .map(BareItem::Integer)
                .map_err(|_| FieldError::BadParameter)
        };
        put("created", integer(created)?)?;
        if let Some(expires) = expires {
            put("expires", integer(expires)?)?;
        }
        put("nonce", string(nonce)?)?;
        put("keyid", string(keyid)?)?;
        put("alg", string(alg)?)?;
        Self::from_inner_list(InnerList::with_params(items, params))
    }

    /// Reads one inner list of `Signature-Input`.
    fn from_inner_list(list: InnerList) -> Result<SignatureParams, FieldError> {
        if list.items.len() > MAX_COMPONENTS {
            return Err(FieldError::TooLong("the covered components"));
        }
        let mut components = Vec::with_capacity(list.items.len());
        for item in &list.items {
            let name = item
                .bare_item
                .as_string()
                .ok_or(FieldError::Malformed("a covered component"))?
                .as_str();
            if !item.params.is_empty() || !is_supported_component(name) {
                return Err(FieldError::UnsupportedComponent);
            }
            if components.iter().any(|seen: &String| seen == name) {
                return Err(FieldError::DuplicateComponent);
            }
            components.push(name.to_string());
        }
        let mut params = SignatureParams {
            components,
            created: None,
            expires: None,
            nonce: None,
            keyid: None,
            alg: None,
            tag: None,
            serialized: String::new(),
        };
        for (key, value) in &list.params {
            let text = || -> Result<String, FieldError> {
                let text = value.as_string().ok_or(FieldError::BadParameter)?.as_str();
                if text.len() > MAX_PARAM_LEN {
                    return Err(FieldError::BadParameter);
                }
                Ok(text.to_string())
            };
            let integer = || -> Result<i64, FieldError> {
                value
                    .as_integer()
                    .map(i64::from)
                    .ok_or(FieldError::BadParameter)
            };
            match key.as_str() {
                "created" => params.created = Some(integer()?),
                "expires" => params.expires = Some(integer()?),
                "nonce" => params.nonce = Some(text()?),
                "keyid" => params.keyid = Some(text()?),
                "alg" => params.alg = Some(text()?),
                "tag" => params.tag = Some(text()?),
                _ => return Err(FieldError::BadParameter),
            }
        }
        params.serialized = sfv::FieldType::serialize(&vec![ListEntry::InnerList(list)])
            .ok_or(FieldError::Malformed("Signature-Input"))?;
        Ok(params)
    }

    /// The `Signature-Input` value for `label`.
    pub fn header_value(&self, label: &str) -> String {
        format!("{label}={}", self.serialized)
    }

    /// The serialized inner list (`@signature-params`).
    pub fn serialized(&self) -> &str {
        &self.serialized
    }

    pub fn covers(&self, component: &str) -> bool {
        self.components.iter().any(|c| c == component)
    }
}

/// Whether medgate reads `name` as a covered component: a derived component it knows, or a
/// lowercase field name.
fn is_supported_component(name: &str) -> bool {
    match name.strip_prefix('@') {
        Some(derived) => matches!(
            derived,
            "method" | "target-uri" | "authority" | "scheme" | "path" | "query" | "status"
        ),
        None => {
            !name.is_empty()
                && name.len() <= 64
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.".contains(&b))
        }
    }
}

fn bounded<'a>(value: &'a str, what: &'static str) -> Result<&'a str, FieldError> {
    if value.len() > MAX_FIELD_LEN {
        return Err(FieldError::TooLong(what));
    }
    Ok(value)
}

fn dictionary(value: &str, what: &'static str) -> Result<Dictionary, FieldError> {
    Parser::new(bounded(value, what)?)
        .parse::<Dictionary>()
        .map_err(|_| FieldError::Malformed(what))
}

/// The signature labelled `label`: its parameters (from `Signature-Input`) and its bytes
/// (from `Signature`). Other labels are ignored.
pub fn parse(
    signature_input: &str,
    signature: &str,
    label: &str,
) -> Result<(SignatureParams, Vec<u8>), FieldError> {
    let inputs = dictionary(signature_input, "Signature-Input")?;
    let signatures = dictionary(signature, "Signature")?;
    let (Some(input), Some(bytes)) = (inputs.get(label), signatures.get(label)) else {
        return Err(FieldError::NoLabel);
    };
    let ListEntry::InnerList(list) = input else {
        return Err(FieldError::Malformed("Signature-Input"));
    };
    let bytes = match bytes {
        ListEntry::Item(item) if item.params.is_empty() => item
            .bare_item
            .as_byte_sequence()
            .ok_or(FieldError::Malformed("Signature"))?
            .to_vec(),
        _ => return Err(FieldError::Malformed("Signature")),
    };
    Ok((SignatureParams::from_inner_list(list.clone())?, bytes))
}

/// The `Signature` value for `label` and `signature`.
pub fn signature_header(label: &str, signature: &[u8]) -> String {
    use base64::Engine as _;
    format!(
        "{label}=:{}:",
        base64::engine::general_purpose::STANDARD.encode(signature)
    )
}

/// What a message offers the signature base: derived components and field values.
pub trait Message {
    /// `@method`, `@target-uri`, `@authority`, `@scheme`, `@path`, `@query`, `@status`; `None`
    /// when the message has no such component (a request has no `@status`).
    fn derived(&self, component: &str) -> Option<String>;
    /// Every value of field `name` (lowercase), in order; empty when absent.
    fn field_values(&self, name: &str) -> Vec<String>;
}

/// Where a message's header fields come from: a list of `(name, value)` pairs, or (in the
/// gateway) the request's own header map, read only for the components a signature covers.
pub trait Fields {
    /// Every value of field `name` (lowercase), in order; empty when absent.
    fn values(&self, name: &str) -> Vec<String>;
}

impl Fields for Vec<(String, String)> {
    fn values(&self, name: &str) -> Vec<String> {
        self.iter()
            .filter(|(field, _)| field.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.clone())
            .collect()
    }
}

/// A request as the gateway (or the signing client) sees it: the method, the target URI as
/// the client addressed it, and the header fields.
#[derive(Debug, Clone)]
pub struct RequestMessage<'a, F = Vec<(String, String)>> {
    pub method: &'a str,
    /// The absolute URI (scheme, authority, path and query), e.g. rebuilt from the gateway's
    /// public URL.
    pub target_uri: &'a str,
    pub fields: F,
}

impl<F> RequestMessage<'_, F> {
    /// `(scheme, authority, path, query)` of the target URI: scheme and host lowercase, the
    /// authority without a default port (§2.2.3).
    fn parts(&self) -> Option<(String, String, String, Option<String>)> {
        let (scheme, rest) = self.target_uri.split_once("://")?;
        let scheme = scheme.to_ascii_lowercase();
        let (authority, path_and_query) = match rest.find(['/', '?']) {
            Some(at) => rest.split_at(at),
            None => (rest, ""),
        };
        let authority = authority.to_ascii_lowercase();
        let authority = match (scheme.as_str(), authority.rsplit_once(':')) {
            ("https", Some((host, "443"))) | ("http", Some((host, "80"))) => host.to_string(),
            _ => authority,
        };
        let (path, query) = match path_and_query.split_once('?') {
            Some((path, query)) => (path, Some(query.to_string())),
            None => (path_and_query, None),
        };
        let path = if path.is_empty() { "/" } else { path };
        Some((scheme, authority, path.to_string(), query))
    }
}

impl<F: Fields> Message for RequestMessage<'_, F> {
    fn derived(&self, component: &str) -> Option<String> {
        let (scheme, authority, path, query) = self.parts()?;
        match component {
            "@method" => Some(self.method.to_string()),
            "@target-uri" => Some(self.target_uri.to_string()),
            "@authority" => Some(authority),
            "@scheme" => Some(scheme),
            "@path" => Some(path),
            "@query" => Some(format!("?{}", query.unwrap_or_default())),
            _ => None,
        }
    }

    fn field_values(&self, name: &str) -> Vec<String> {
        self.fields.values(name)
    }
}

/// The signature base (RFC 9421 §2.5) of `params` over `message`.
pub fn signature_base(
    params: &SignatureParams,
    message: &dyn Message,
) -> Result<String, FieldError> {
    let mut base = String::new();
    for component in &params.components {
        let value = if component.starts_with('@') {
            message
                .derived(component)
                .ok_or(FieldError::MissingComponent)?
        } else {
            let values = message.field_values(component);
            if values.is_empty() {
                return Err(FieldError::MissingComponent);
            }
            values
                .iter()
                .map(|value| value.trim())
                .collect::<Vec<_>>()
                .join(", ")
        };
        // A value with a line break would forge another line of the base.
        if value.contains(['\n', '\r']) {
            return Err(FieldError::MissingComponent);
        }
        base.push_str(&format!("\"{component}\": {value}\n"));
    }
    base.push_str(&format!("\"@signature-params\": {}", params.serialized));
    Ok(base)
}

/// A digest algorithm of `Content-Digest` medgate computes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DigestAlg {
    Sha256,
    Sha512,
}

impl DigestAlg {
    pub fn name(self) -> &'static str {
        match self {
            DigestAlg::Sha256 => "sha-256",
            DigestAlg::Sha512 => "sha-512",
        }
    }

    fn len(self) -> usize {
        match self {
            DigestAlg::Sha256 => 32,
            DigestAlg::Sha512 => 64,
        }
    }
}

/// The digests a `Content-Digest` field claims, for the algorithms medgate computes (others
/// are ignored, RFC 9530 §4); refused when it names none of them, or one twice.
pub fn parse_content_digest(value: &str) -> Result<Vec<(DigestAlg, Vec<u8>)>, FieldError> {
    let field = dictionary(value, "Content-Digest")?;
    let mut digests = Vec::new();
    for (key, entry) in &field {
        let alg = match key.as_str() {
            "sha-256" => DigestAlg::Sha256,
            "sha-512" => DigestAlg::Sha512,
            _ => continue,
        };
        let bytes = match entry {
            ListEntry::Item(item) => item
                .bare_item
                .as_byte_sequence()
                .filter(|bytes| bytes.len() == alg.len())
                .ok_or(FieldError::Malformed("Content-Digest"))?,
            ListEntry::InnerList(_) => return Err(FieldError::Malformed("Content-Digest")),
        };
        digests.push((alg, bytes.to_vec()));
    }
    if digests.is_empty() {
        return Err(FieldError::Malformed("Content-Digest"));
    }
    Ok(digests)
}

/// A running digest of a body, for the algorithms a `Content-Digest` claims.
#[derive(Clone, Default)]
pub struct BodyDigest {
    sha256: Option<Sha256>,
    sha512: Option<Sha512>,
}

impl BodyDigest {
    /// Hashing for each of `algs`.
    pub fn new(algs: impl IntoIterator<Item = DigestAlg>) -> Self {
        let mut digest = BodyDigest::default();
        for alg in algs {
            match alg {
                DigestAlg::Sha256 => digest.sha256 = Some(Sha256::new()),
                DigestAlg::Sha512 => digest.sha512 = Some(Sha512::new()),
            }
        }
        digest
    }

    pub fn update(&mut self, chunk: &[u8]) {
        if let Some(hash) = &mut self.sha256 {
            hash.update(chunk);
        }
        if let Some(hash) = &mut self.sha512 {
            hash.update(chunk);
        }
    }

    /// Whether every claimed digest is the one computed (compared in full; digests are public).
    pub fn matches(self, claimed: &[(DigestAlg, Vec<u8>)]) -> bool {
        let sha256 = self.sha256.map(|hash| hash.finalize().to_vec());
        let sha512 = self.sha512.map(|hash| hash.finalize().to_vec());
        claimed.iter().all(|(alg, bytes)| {
            let computed = match alg {
                DigestAlg::Sha256 => &sha256,
                DigestAlg::Sha512 => &sha512,
            };
            computed.as_deref() == Some(bytes.as_slice())
        })
    }
}

/// The `Content-Digest` value of `body` with `alg`.
pub fn content_digest(alg: DigestAlg, body: &[u8]) -> String {
    use base64::Engine as _;
    let digest = match alg {
        DigestAlg::Sha256 => Sha256::digest(body).to_vec(),
        DigestAlg::Sha512 => Sha512::digest(body).to_vec(),
    };
    format!(
        "{}=:{}:",
        alg.name(),
        base64::engine::general_purpose::STANDARD.encode(digest)
    )
}

#[cfg(test)]
mod tests;
