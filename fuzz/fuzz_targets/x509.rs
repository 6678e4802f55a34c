//! X.509 (ASN.1 DER): one certificate, then the input read as an Android chain (DER
//! certificates back to back) through chain verification and KeyDescription extraction.
#![no_main]

use libfuzzer_sys::fuzz_target;
use medgate_verify::UnixTime;
use medgate_verify::android::attestation::{self, AndroidRoots};
use medgate_verify::x509::Certificate;

/// Splits back-to-back DER TLVs (short or long length forms up to 4 bytes).
fn split(mut bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    while bytes.len() >= 2 && out.len() < 12 {
        let first = bytes[1];
        let (header, length) = if first < 0x80 {
            (2, usize::from(first))
        } else {
            let count = usize::from(first & 0x7f);
            if count == 0 || count > 4 || bytes.len() < 2 + count {
                break;
            }
            (2 + count, bytes[2..2 + count].iter().fold(0usize, |acc, b| (acc << 8) | usize::from(*b)))
        };
        let end = header.saturating_add(length).min(bytes.len());
        out.push(bytes[..end].to_vec());
        bytes = &bytes[end..];
    }
    out
}

fuzz_target!(|data: &[u8]| {
    if let Ok(cert) = Certificate::from_der(data, 0) {
        let _ = cert.summary();
        let _ = cert.extension("1.3.6.1.4.1.11129.2.1.17");
        let _ = cert.public_key();
    }
    let chain = split(data);
    if chain.is_empty() {
        return;
    }
    let _ = attestation::describe(&chain);
    let _ = attestation::verify(&chain, &AndroidRoots::default(), None, None, UnixTime::from_secs(1_758_900_000));
});
