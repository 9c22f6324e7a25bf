//! `Message::wire_len` must equal the serialized length, for every message
//! the parser accepts and for messages built by hand.

use bytes::Bytes;
use sip::{parse_message, HeaderName, Message, Method, Uri};

#[test]
fn wire_len_is_the_serialized_length() {
    let dir = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/testdata/rfc4475"
    );
    let mut checked = 0;
    for entry in std::fs::read_dir(dir).expect("rfc4475 folder") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("dat") {
            continue;
        }
        let raw = Bytes::from(std::fs::read(&path).expect("read"));
        if let Ok(msg) = parse_message(&raw) {
            assert_eq!(msg.wire_len(), msg.to_bytes().len(), "{}", path.display());
            checked += 1;
        }
    }
    assert!(checked >= 13, "only {checked} messages parsed");

    let mut uri = Uri::sip(Some("1002"), "pbx.example.com", Some(5060));
    uri.params.set("transport", Some("tcp"));
    uri.params.set("lr", None);
    let mut req = Message::request(Method::Invite, uri);
    req.push(
        HeaderName::Via,
        "SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK1",
    );
    req.push(HeaderName::CallId, "abc@host");
    req.set_body("application/sdp", "v=0\r\n".repeat(300));
    assert_eq!(req.wire_len(), req.to_bytes().len());
    let resp = Message::response_to(&req, 200, Some("t1"));
    assert_eq!(resp.wire_len(), resp.to_bytes().len());
}
