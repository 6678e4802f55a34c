//! Prints a Play Integrity token for the verdict JSON read from stdin, made under the fixed
//! published test keys (`TestPlayKeys::fixed`): seeds for the `play_integrity` fuzz target.
//! A `{"tokenPayloadExternal": …}` wrapper (Google's decodeIntegrityToken response) is removed.
//!
//! `cargo run -p medgate-verify --features test-tokens --example play_integrity_token < verdict.json`

use std::io::Read;

use medgate_verify::play_integrity::testing::{TestPlayKeys, encrypt_token};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut input = Vec::new();
    std::io::stdin().read_to_end(&mut input)?;
    let value: serde_json::Value = serde_json::from_slice(&input)?;
    let payload = value.get("tokenPayloadExternal").unwrap_or(&value);
    let token = encrypt_token(&serde_json::to_vec(payload)?, &TestPlayKeys::fixed());
    println!("{token}");
    Ok(())
}
