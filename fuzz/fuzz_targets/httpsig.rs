//! `Signature-Input`, `Signature` and `Content-Digest` as a client (or anyone on the way) sends
//! them: the first byte picks which, the rest splits at the first newline into two fields. The
//! parsers and the signature base must refuse without panicking, within their bounds.
#![no_main]

use libfuzzer_sys::fuzz_target;
use medgate_proto::httpsig::{self, RequestMessage, parse_content_digest};

fuzz_target!(|data: &[u8]| {
    let Some((&which, rest)) = data.split_first() else {
        return;
    };
    let Ok(text) = std::str::from_utf8(rest) else {
        return;
    };
    let (first, second) = text.split_once('\n').unwrap_or((text, ""));
    if which % 2 == 0 {
        drop(parse_content_digest(first));
        return;
    }
    if let Ok((params, _)) = httpsig::parse(first, second, "medgate") {
        let message = RequestMessage {
            method: "POST",
            target_uri: "https://gw.example.org/api/v1/treatments?x=1",
            fields: vec![
                ("authorization".into(), "DPoP t".into()),
                ("content-digest".into(), first.into()),
            ],
        };
        let _ = httpsig::signature_base(&params, &message);
    }
});
