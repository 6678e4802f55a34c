//! X.509 (ASN.1 DER): one certificate, the input read as PEM, then as an Android chain (DER
//! certificates back to back) through chain verification and KeyDescription extraction.
#![no_main]

use libfuzzer_sys::fuzz_target;
use medgate_verify::UnixTime;
use medgate_verify::android::attestation::{self, AndroidRoots};
use medgate_verify::x509::{self, Certificate};

fuzz_target!(|data: &[u8]| {
    if let Ok(cert) = Certificate::from_der(data, 0) {
        let _ = cert.summary();
        let _ = cert.extension("1.3.6.1.4.1.11129.2.1.17");
        let _ = cert.public_key();
    }
    // The same bytes as PEM, then as DER certificates back to back.
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = x509::pem_blocks(text, "CERTIFICATE");
    }
    let Ok(chain) = x509::split_der(data) else { return };
    if chain.is_empty() {
        return;
    }
    let chain: Vec<Vec<u8>> = chain.into_iter().map(<[u8]>::to_vec).collect();
    let _ = attestation::describe(&chain);
    let _ = attestation::verify(&chain, &AndroidRoots::default(), None, None, UnixTime::from_secs(1_758_900_000));
});
