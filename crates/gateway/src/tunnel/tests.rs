use super::*;

const AUTHORIZE: &str =
    r#"42["authorize",{"client":"web","history":48,"secret":"follower-secret","token":"x"}]"#;
/// What the upstream gets for it: no client credential, the site's secret (none here).
const AUTHORIZED: &str = r#"42["authorize",{"client":"web","history":48}]"#;
const ADD_ENTRY: &str =
    r#"42["dbAdd",{"collection":"entries","data":{"type":"sgv","sgv":120,"date":1767225600000}}]"#;
const ADD_BOLUS: &str = r#"42["dbAdd",{"collection":"treatments","data":{"eventType":"Correction Bolus","insulin":5}}]"#;
const ACK: &str = r#"42/alarm,["ack",2,"default",900000]"#;
const ACK_WITH_ID: &str = r#"42/alarm,17["ack",1,"default",900000]"#;

fn v4(packets: &[&str]) -> String {
    packets.join("\x1e")
}

fn run(body: &str, engine: Engine, scopes: &[&str]) -> Filtered {
    filter(
        body.as_bytes(),
        engine,
        |scope| scopes.contains(&scope),
        None,
    )
    .unwrap()
}

#[test]
fn a_follower_keeps_its_reads_and_loses_writes_and_acks() {
    let body = v4(&[
        "2",
        "40",
        "40/alarm,",
        AUTHORIZE,
        ADD_ENTRY,
        ADD_BOLUS,
        ACK,
        ACK_WITH_ID,
    ]);
    let kept = run(&body, Engine::V4, &["nightscout:read"]);
    assert_eq!(kept.body, v4(&["2", "40", "40/alarm,", AUTHORIZED]));
    assert_eq!(kept.dropped, 4);
}

#[test]
fn a_subject_with_the_class_keeps_its_events_but_never_a_therapy_write() {
    let body = v4(&[ADD_ENTRY, ADD_BOLUS, ACK]);
    let kept = run(
        &body,
        Engine::V4,
        &[
            "nightscout:data-write",
            "nightscout:alarm-ack",
            "nightscout:therapy-write",
        ],
    );
    assert_eq!(kept.body, v4(&[ADD_ENTRY, ACK]));
    assert_eq!(kept.dropped, 1);
}

#[test]
fn what_cannot_be_read_is_dropped() {
    for packet in [
        "42not json",
        r#"42{"event":"dbAdd"}"#,
        "42[]",
        "42[17]",
        r#"42/alarm["ack"]"#,
        r#"451-["dbAdd",{"_placeholder":true,"num":0}]"#,
        "b4AQID",
        "4",
        r#"42["dbAdd",{"data":{}}]"#,
        r#"42["dbRemove",{"collection":"settings","_id":"x"}]"#,
        // Events no Nightscout client sends are not guessed at.
        r#"42["adminDrop",{}]"#,
        // A credential-carrying event whose options are not an object.
        r#"42["authorize","follower-secret"]"#,
        r#"42["dbadd",{"collection":"entries"}]"#,
    ] {
        let kept = run(
            &v4(&[AUTHORIZE, packet]),
            Engine::V4,
            &["nightscout:data-write"],
        );
        assert_eq!(kept.body, AUTHORIZED, "{packet}");
        assert_eq!(kept.dropped, 1, "{packet}");
    }
}

#[test]
fn nothing_left_is_a_noop() {
    let kept = run(ADD_BOLUS, Engine::V4, &[]);
    assert_eq!((kept.body.as_str(), kept.dropped), ("6", 1));
    let kept = run(&format!("{}:{ADD_BOLUS}", ADD_BOLUS.len()), Engine::V3, &[]);
    assert_eq!((kept.body.as_str(), kept.dropped), ("1:6", 1));
}

#[test]
fn engine_io_3_framing_counts_utf16_units_as_javascript_does() {
    // "😀" is one char, two UTF-16 units, four bytes.
    let note = r#"42["loadRetro",{"client":"😀"}]"#;
    let framed = |packet: &str| format!("{}:{packet}", packet.encode_utf16().count());
    let body = [framed("2"), framed(note), framed(ADD_ENTRY), framed(ACK)].concat();
    let kept = run(&body, Engine::V3, &["nightscout:read"]);
    assert_eq!(kept.body, [framed("2"), framed(note)].concat());
    assert_eq!(kept.dropped, 2);
    for bad in ["5:abc", "x:2", ":2", "2", "0:", "3:abc3:", "99999999:2"] {
        assert_eq!(
            filter(bad.as_bytes(), Engine::V3, |_| true, None).unwrap_err(),
            TunnelError::Framing,
            "{bad}"
        );
    }
}

#[test]
fn bounds_hold() {
    let many = vec!["2"; MAX_PACKETS + 1].join("\x1e");
    assert_eq!(
        filter(many.as_bytes(), Engine::V4, |_| true, None).unwrap_err(),
        TunnelError::TooManyPackets
    );
    let many = "1:2".repeat(MAX_PACKETS + 1);
    assert_eq!(
        filter(many.as_bytes(), Engine::V3, |_| true, None).unwrap_err(),
        TunnelError::TooManyPackets
    );
    let large = vec![b'2'; MAX_PAYLOAD + 1];
    assert_eq!(
        filter(&large, Engine::V4, |_| true, None).unwrap_err(),
        TunnelError::TooLarge
    );
    assert_eq!(
        filter(&[0xff, 0xfe], Engine::V4, |_| true, None).unwrap_err(),
        TunnelError::NotText
    );
}

#[test]
fn the_engine_comes_from_the_query() {
    assert_eq!(
        Engine::from_query(Some("EIO=4&transport=polling&t=x")),
        Some(Engine::V4)
    );
    assert_eq!(
        Engine::from_query(Some("transport=polling&EIO=3")),
        Some(Engine::V3)
    );
    assert_eq!(Engine::from_query(Some("EIO=5")), None);
    assert_eq!(Engine::from_query(None), None);
}

#[test]
fn in_band_credentials_become_the_sites_own() {
    let site = "0123456789abcdef0123456789abcdef01234567";
    let body = v4(&[
        AUTHORIZE,
        r#"42/alarm,3["subscribe",{"accessToken":"follower-secret","jwtToken":"eyJ"}]"#,
        r#"42/storage,["subscribe",{"accessToken":"follower-secret","collections":["entries"]}]"#,
    ]);
    let reader = |scope: &str| scope == READ_SCOPE;
    let kept = filter(body.as_bytes(), Engine::V4, reader, Some(site)).unwrap();
    assert_eq!(
        kept.body,
        v4(&[
            &format!(r#"42["authorize",{{"client":"web","history":48,"secret":"{site}"}}]"#),
            &format!(r#"42/alarm,3["subscribe",{{"secret":"{site}"}}]"#),
            &format!(r#"42/storage,["subscribe",{{"collections":["entries"],"secret":"{site}"}}]"#),
        ])
    );
    assert!(!kept.body.contains("follower-secret") && !kept.body.contains("eyJ"));
    assert_eq!(kept.dropped, 0);
}

#[test]
fn the_sites_secret_goes_in_band_only_for_a_subject_that_may_read() {
    let site = "0123456789abcdef0123456789abcdef01234567";
    let kept = filter(
        AUTHORIZE.as_bytes(),
        Engine::V4,
        |s| s == "nightscout:tunnel",
        Some(site),
    )
    .unwrap();
    assert_eq!(kept.body, AUTHORIZED);
}

/// Packets the upstream could read as something else, or whose handler would throw (and stop
/// Nightscout): each dropped, whatever the subject holds.
#[test]
fn framing_tricks_and_handler_crashers_are_dropped() {
    let bolus = r#"42["dbAdd",{"collection":"treatments","data":{"eventType":"Correction Bolus","insulin":10}}]"#;
    let entry = r#"42["dbAdd",{"collection":"entries","data":{"sgv":99}}]"#;
    // An Engine.IO 3 frame inside an Engine.IO 4 body (engine.io 3 ignores `EIO` after the
    // handshake), and a JSONP body (`d=`) behind a noop.
    let framed = format!("{}:{bolus}", bolus.encode_utf16().count());
    let jsonp = format!("6&d={}", framed.replace(':', "%3A"));
    let cases = [
        framed.as_str(),
        jsonp.as_str(),
        "7",
        "2x",
        "40x",
        "40/al arm,",
        r#"40/alarm,["x"]"#,
        "43[]",
        r#"42["nsping"]"#,
        r#"42["nsping",{"mills":"soon"}]"#,
        r#"42["loadRetro",{},1]"#,
        r#"42["authorize",{},1]"#,
        r#"42["authorize"]"#,
        r#"42["dbAdd",{"collection":"entries"}]"#,
        r#"42["dbAdd",{"collection":"entries","data":7}]"#,
        r#"42["dbRemove",{"collection":"entries","_id":"zz"}]"#,
        r#"42["dbUpdate",{"collection":"entries","_id":"0123456789abcdef01234567"}]"#,
        r#"42["ack",2,"default"]"#,
        r#"42["ack","2","default",900000]"#,
    ];
    let everything = |_: &str| true;
    for packet in cases {
        let body = v4(&[entry, packet]);
        let kept = filter(body.as_bytes(), Engine::V4, everything, None).unwrap();
        assert_eq!((kept.body.as_str(), kept.dropped), (entry, 1), "{packet}");
    }
}

#[test]
fn connects_go_on_without_payload_and_client_acks_as_they_are() {
    let kept = |packet: &str| {
        filter(packet.as_bytes(), Engine::V4, |_| false, None)
            .unwrap()
            .body
    };
    for (sent, forwarded) in [
        ("40", "40"),
        ("40/alarm,", "40/alarm,"),
        ("40/alarm", "40/alarm"),
        (r#"40{"token":"follower-secret"}"#, "40"),
        (r#"40/storage,{"token":"follower-secret"}"#, "40/storage,"),
        ("41/alarm,", "41/alarm,"),
        (r#"431["ok"]"#, r#"431["ok"]"#),
        (r#"43/alarm,12[{}]"#, r#"43/alarm,12[{}]"#),
        ("2probe", "2probe"),
        ("5", "5"),
    ] {
        assert_eq!(kept(sent), forwarded, "{sent}");
    }
}
