//! The admin API's request bodies and queries (`medgate_proto::admin`): never panic; what
//! parses serialises and parses back to the same value; an app's requested policy validates
//! or is refused, never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use medgate_proto::admin;
use serde::Serialize;
use serde::de::DeserializeOwned;

fn round_trip<T>(data: &[u8]) -> Option<T>
where
    T: Serialize + DeserializeOwned + PartialEq,
{
    let parsed: T = serde_json::from_slice(data).ok()?;
    let again: T = serde_json::from_slice(&serde_json::to_vec(&parsed).unwrap()).unwrap();
    // Compared without printing: some bodies carry secrets and have no Debug.
    assert!(parsed == again, "a body does not survive its own round trip");
    Some(parsed)
}

fuzz_target!(|data: &[u8]| {
    if let Some(app) = round_trip::<admin::CreateApp>(data) {
        let _ = app.policy().validate();
    }
    round_trip::<admin::AddRelease>(data);
    round_trip::<admin::CreateEnrolment>(data);
    round_trip::<admin::CreateCredential>(data);
    round_trip::<admin::CreatePartner>(data);
    round_trip::<admin::PartnerKeySource>(data);
    round_trip::<admin::AddPin>(data);
    round_trip::<admin::SetRoots>(data);
    round_trip::<admin::SetSecret>(data);
    round_trip::<admin::RotateSecret>(data);
    round_trip::<admin::PlayIntegrityKeys>(data);
    round_trip::<admin::CreateOperator>(data);
    // Queries as axum reads them.
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = serde_urlencoded::from_str::<admin::InstallationQuery>(text);
        let _ = serde_urlencoded::from_str::<admin::AuditQuery>(text);
        let _ = serde_urlencoded::from_str::<admin::TelemetryQuery>(text);
        let _ = serde_urlencoded::from_str::<admin::RemovePins>(text);
    }
});
