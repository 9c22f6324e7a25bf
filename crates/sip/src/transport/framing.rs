//! Stream framing (RFC 3261 §18.3): on a byte stream each message ends where
//! its Content-Length says; CRLFs between messages are keep-alives, and a
//! double CRLF is an RFC 5626 §3.5.1 ping that wants a single-CRLF pong.

use thiserror::Error;

use crate::parse::{parse_u32, ParseError};

/// The largest message head (start line and headers) accepted on a stream.
pub const MAX_HEAD: usize = 64 * 1024;
/// The largest body accepted on a stream.
pub const MAX_BODY: usize = 1024 * 1024;

/// What the front of the stream buffer holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Frame {
    /// More octets are needed before anything can be decided.
    NeedMore,
    /// A single CRLF keep-alive: drop 2 octets, no answer.
    KeepAlive,
    /// A double-CRLF ping: drop 4 octets, answer with one CRLF.
    Ping,
    /// A whole message of this many octets.
    Message(usize),
}

/// The stream cannot be framed any further: the connection must close.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FrameError {
    #[error("message head larger than {MAX_HEAD} octets")]
    HeadTooLarge,
    #[error("body of {0} octets larger than {MAX_BODY}")]
    BodyTooLarge(usize),
    /// The head is complete (`head_len` octets) but has no Content-Length.
    #[error("missing Content-Length on a stream")]
    MissingContentLength { head_len: usize },
    /// The head is complete (`head_len` octets) but its Content-Length is unusable.
    #[error("bad Content-Length")]
    BadContentLength { head_len: usize },
}

impl FrameError {
    /// The length of the complete head when the error concerns one, so the
    /// head can be reported as a malformed message.
    pub fn head_len(&self) -> Option<usize> {
        match self {
            FrameError::MissingContentLength { head_len }
            | FrameError::BadContentLength { head_len } => Some(*head_len),
            _ => None,
        }
    }

    /// The parse error to report with the head.
    pub fn parse_error(&self) -> ParseError {
        match self {
            FrameError::MissingContentLength { .. } => ParseError::Missing("Content-Length"),
            _ => ParseError::ContentLength,
        }
    }
}

/// Finds frames in a growing buffer. It remembers how far the search for the
/// end of the head got, so a message arriving in many small reads is scanned
/// once, not once per read.
#[derive(Debug, Default)]
pub struct Framer {
    scanned: usize,
}

impl Framer {
    pub fn new() -> Framer {
        Framer::default()
    }

    /// Looks at the front of `buf`. After a frame other than `NeedMore` the
    /// caller removes its octets from the front of the buffer.
    pub fn next_frame(&mut self, buf: &[u8]) -> Result<Frame, FrameError> {
        let frame = self.next_frame_inner(buf);
        if !matches!(frame, Ok(Frame::NeedMore)) {
            self.scanned = 0;
        }
        frame
    }

    fn next_frame_inner(&mut self, buf: &[u8]) -> Result<Frame, FrameError> {
        if buf.first() == Some(&b'\r') {
            // Between messages: a keep-alive CRLF or the start of a ping.
            match buf {
                [b'\r'] | [b'\r', b'\n'] | [b'\r', b'\n', b'\r'] => return Ok(Frame::NeedMore),
                [b'\r', b'\n', b'\r', b'\n', ..] => return Ok(Frame::Ping),
                [b'\r', b'\n', ..] => return Ok(Frame::KeepAlive),
                _ => {}
            }
        }
        let limit = buf.len().min(MAX_HEAD + 4);
        // Resume a little before where the last search stopped: the end
        // marker may straddle two reads.
        let from = self.scanned.saturating_sub(3);
        let Some(head_end) = find_crlf2(&buf[from..limit]).map(|i| i + from) else {
            if buf.len() > MAX_HEAD + 4 {
                return Err(FrameError::HeadTooLarge);
            }
            self.scanned = limit;
            return Ok(Frame::NeedMore);
        };
        let head_len = head_end + 4;
        let body_len = content_length(&buf[..head_end + 2], head_len)?;
        if body_len > MAX_BODY {
            return Err(FrameError::BodyTooLarge(body_len));
        }
        let total = head_len + body_len;
        self.scanned = head_end;
        Ok(if buf.len() >= total {
            Frame::Message(total)
        } else {
            Frame::NeedMore
        })
    }
}

fn find_crlf2(hay: &[u8]) -> Option<usize> {
    memchr::memmem::find(hay, b"\r\n\r\n")
}

/// The Content-Length of a head (start line and header lines, each ending in
/// CRLF). Folded lines (RFC 3261 §7.3.1) are followed.
fn content_length(head: &[u8], head_len: usize) -> Result<usize, FrameError> {
    let bad = || FrameError::BadContentLength { head_len };
    let mut found: Option<usize> = None;
    let mut lines = LogicalLines { rest: head };
    // Skip the start line.
    lines.next();
    for line in lines {
        let Some(colon) = line.iter().position(|&c| c == b':') else {
            continue;
        };
        let name = trim(&line[..colon]);
        if !(name.eq_ignore_ascii_case(b"content-length") || name.eq_ignore_ascii_case(b"l")) {
            continue;
        }
        let value = parse_u32(&line[colon + 1..]).ok_or_else(bad)? as usize;
        match found {
            // Two different lengths make the stream ambiguous.
            Some(prev) if prev != value => return Err(bad()),
            _ => found = Some(value),
        }
    }
    found.ok_or(FrameError::MissingContentLength { head_len })
}

fn trim(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &b[start..end]
}

/// Header lines with their continuation lines attached (CRLFs kept inside).
struct LogicalLines<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for LogicalLines<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.rest.is_empty() {
            return None;
        }
        let mut end = 0;
        loop {
            match self.rest[end..].windows(2).position(|w| w == b"\r\n") {
                Some(p) => {
                    end += p + 2;
                    if !matches!(self.rest.get(end), Some(b' ' | b'\t')) {
                        break;
                    }
                }
                None => {
                    end = self.rest.len();
                    break;
                }
            }
        }
        let (line, rest) = self.rest.split_at(end);
        self.rest = rest;
        Some(line)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(buf: &[u8]) -> Result<Frame, FrameError> {
        Framer::new().next_frame(buf)
    }

    const MSG: &[u8] =
        b"OPTIONS sip:a@b SIP/2.0\r\nVia: SIP/2.0/TCP h;branch=z9hG4bK1\r\nl: 4\r\n\r\nbody";

    #[test]
    fn whole_message() {
        assert_eq!(frame(MSG), Ok(Frame::Message(MSG.len())));
    }

    #[test]
    fn message_followed_by_more() {
        let mut buf = MSG.to_vec();
        buf.extend_from_slice(b"OPTIONS");
        assert_eq!(frame(&buf), Ok(Frame::Message(MSG.len())));
    }

    #[test]
    fn every_prefix_needs_more() {
        let mut f = Framer::new();
        for n in 0..MSG.len() {
            assert_eq!(f.next_frame(&MSG[..n]), Ok(Frame::NeedMore), "prefix {n}");
        }
        assert_eq!(f.next_frame(MSG), Ok(Frame::Message(MSG.len())));
    }

    #[test]
    fn keep_alive_and_ping() {
        assert_eq!(frame(b"\r"), Ok(Frame::NeedMore));
        assert_eq!(frame(b"\r\n"), Ok(Frame::NeedMore));
        assert_eq!(frame(b"\r\n\r"), Ok(Frame::NeedMore));
        assert_eq!(frame(b"\r\n\r\n"), Ok(Frame::Ping));
        assert_eq!(frame(b"\r\nOPTIONS"), Ok(Frame::KeepAlive));
    }

    #[test]
    fn missing_content_length() {
        let m = b"OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n\r\n";
        assert_eq!(
            frame(m),
            Err(FrameError::MissingContentLength { head_len: m.len() })
        );
    }

    #[test]
    fn conflicting_content_lengths() {
        let m = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: 1\r\nl: 2\r\n\r\nab";
        assert!(matches!(frame(m), Err(FrameError::BadContentLength { .. })));
        let m = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length: x\r\n\r\n";
        assert!(matches!(frame(m), Err(FrameError::BadContentLength { .. })));
    }

    #[test]
    fn folded_content_length() {
        let m = b"OPTIONS sip:a@b SIP/2.0\r\nContent-Length:\r\n  2\r\nVia: x\r\n\r\nab";
        assert_eq!(frame(m), Ok(Frame::Message(m.len())));
    }

    #[test]
    fn limits() {
        let mut big = b"OPTIONS sip:a@b SIP/2.0\r\nX: ".to_vec();
        big.resize(MAX_HEAD + 5, b'a');
        assert_eq!(frame(&big), Err(FrameError::HeadTooLarge));
        let m = format!(
            "OPTIONS sip:a@b SIP/2.0\r\nContent-Length: {}\r\n\r\n",
            MAX_BODY + 1
        );
        assert_eq!(
            frame(m.as_bytes()),
            Err(FrameError::BodyTooLarge(MAX_BODY + 1))
        );
    }

    #[test]
    fn head_end_straddling_reads() {
        let mut f = Framer::new();
        let cut = MSG.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 2;
        assert_eq!(f.next_frame(&MSG[..cut]), Ok(Frame::NeedMore));
        assert_eq!(f.next_frame(MSG), Ok(Frame::Message(MSG.len())));
    }

    fn message(n: usize, compact: bool) -> Vec<u8> {
        let name = if compact { "l" } else { "Content-Length" };
        let mut m =
            format!("MESSAGE sip:a@b SIP/2.0\r\nCall-ID: {n}\r\n{name}: {n}\r\n\r\n").into_bytes();
        m.resize(m.len() + n, b'x');
        m
    }

    proptest::proptest! {
        /// However the stream is cut into reads, the same frames come out.
        #[test]
        fn any_split_gives_the_same_frames(
            items in proptest::collection::vec((proptest::bool::ANY, proptest::bool::ANY, 0usize..300, proptest::bool::ANY), 1..8),
            cuts in proptest::collection::vec(1usize..64, 1..200),
        ) {
            let mut stream = Vec::new();
            let mut expected = Vec::new();
            for &(ping, keep_alive, body, compact) in &items {
                if ping {
                    stream.extend_from_slice(b"\r\n\r\n");
                    expected.push(b"\r\n\r\n".to_vec());
                }
                if keep_alive {
                    stream.extend_from_slice(b"\r\n");
                    expected.push(b"\r\n".to_vec());
                }
                let m = message(body, compact);
                stream.extend_from_slice(&m);
                expected.push(m);
            }

            let mut framer = Framer::new();
            let mut buf: Vec<u8> = Vec::new();
            let mut got = Vec::new();
            let mut pos = 0;
            let mut cut = cuts.iter().cycle();
            while pos < stream.len() {
                let end = (pos + cut.next().copied().unwrap_or(1)).min(stream.len());
                buf.extend_from_slice(&stream[pos..end]);
                pos = end;
                loop {
                    let n = match framer.next_frame(&buf).unwrap() {
                        Frame::NeedMore => break,
                        Frame::KeepAlive => 2,
                        Frame::Ping => 4,
                        Frame::Message(n) => n,
                    };
                    got.push(buf.drain(..n).collect::<Vec<u8>>());
                }
            }
            proptest::prop_assert!(buf.is_empty());
            proptest::prop_assert_eq!(got, expected);
        }
    }
}
