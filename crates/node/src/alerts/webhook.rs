//! How an alert is delivered so the receiver can check it: Standard Webhooks
//! (<https://www.standardwebhooks.com>), as their libraries verify it. The body is
//! `{"type", "timestamp", "data"}`; the headers are `webhook-id` (unique per message),
//! `webhook-timestamp` (Unix seconds) and `webhook-signature`: `v1,` and the standard base64
//! of HMAC-SHA-256, keyed by the shared secret, over `id.timestamp.body`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::hmac;

/// The shared secret as operators hold it: `whsec_` and standard base64 of 24 to 64 bytes.
pub fn parse_secret(text: &str) -> Option<Vec<u8>> {
    let encoded = text.trim().strip_prefix("whsec_")?;
    let secret = STANDARD.decode(encoded).ok()?;
    (24..=64).contains(&secret.len()).then_some(secret)
}

/// The `webhook-signature` of a message.
pub fn sign(secret: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret);
    let mut context = hmac::Context::with_key(&key);
    context.update(id.as_bytes());
    context.update(b".");
    context.update(timestamp.to_string().as_bytes());
    context.update(b".");
    context.update(body);
    format!("v1,{}", STANDARD.encode(context.sign().as_ref()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The example of the Standard Webhooks specification's reference libraries.
    #[test]
    fn signs_as_the_reference_libraries_do() {
        let secret = parse_secret("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").unwrap();
        let signature = sign(
            &secret,
            "msg_p5jXN8AQM9LWM0D4loKWxJek",
            1614265330,
            br#"{"test": 2432232314}"#,
        );
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    }

    #[test]
    fn secrets_are_whsec_and_base64_of_24_to_64_bytes() {
        assert!(parse_secret("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_none());
        assert!(parse_secret("whsec_c2hvcnQ=").is_none());
        assert!(parse_secret("whsec_not base64!").is_none());
        assert_eq!(
            parse_secret(&format!("whsec_{}\n", STANDARD.encode([7u8; 32]))),
            Some(vec![7; 32])
        );
    }
}
