//! SDP: parse, serialize, reparse; nothing may panic and the second parse
//! must accept what we wrote and agree with the first.

use bytes::Bytes;
use sip::sdp::Sdp;

pub fn sdp_parse(data: &[u8]) {
    let buf = Bytes::copy_from_slice(data);
    let Ok(sdp) = Sdp::parse(&buf) else {
        return;
    };
    let out = sdp.to_bytes();
    let again = match Sdp::parse(&out) {
        Ok(s) => s,
        Err(e) => panic!("our own SDP does not reparse: {e:?}\n{out:?}"),
    };
    assert_eq!(again.to_bytes(), out, "SDP serialization is not stable");
}
