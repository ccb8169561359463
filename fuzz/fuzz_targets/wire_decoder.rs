//! The feed's streaming decoder on arbitrary bytes, split into arbitrary reads: it never
//! panics, never loops, every decoded trade re-encodes to the bytes it came from, and the
//! split does not change what is decoded.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use pricehub::feed::codec::{FrameError, TradeCodec};
use tokio_util::codec::{Decoder, Encoder};

/// Decodes `chunks` fed one after the other, as the collector's reads would arrive.
fn decode_all(chunks: &[&[u8]]) -> (Vec<pricehub::feed::Trade>, Vec<&'static str>) {
    let mut codec = TradeCodec::new();
    let mut buf = BytesMut::new();
    let (mut trades, mut errors) = (Vec::new(), Vec::new());
    'outer: for (i, chunk) in chunks.iter().enumerate() {
        buf.extend_from_slice(chunk);
        let last = i + 1 == chunks.len();
        loop {
            let before = buf.len();
            let r = if last {
                codec.decode_eof(&mut buf)
            } else {
                codec.decode(&mut buf)
            };
            match r {
                Ok(Some(t)) => {
                    assert!(buf.len() < before, "a decoded frame consumed nothing");
                    trades.push(t);
                }
                Ok(None) => break,
                Err(e) => {
                    errors.push(e.label());
                    if e.is_fatal() {
                        break 'outer;
                    }
                    assert!(buf.len() < before, "a bad frame was not consumed: {e}");
                }
            }
        }
    }
    (trades, errors)
}

fuzz_target!(|data: &[u8]| {
    // The first byte picks where the stream is split in two.
    let (split, stream) = match data.split_first() {
        Some((s, rest)) => (usize::from(*s) % (rest.len() + 1), rest),
        None => return,
    };
    let (whole, whole_errors) = decode_all(&[stream]);
    let (parts, parts_errors) = decode_all(&[&stream[..split], &stream[split..]]);
    assert_eq!(whole, parts, "the read split changed the trades");
    assert_eq!(
        whole_errors, parts_errors,
        "the read split changed the errors"
    );
    for t in &whole {
        let mut out = BytesMut::new();
        let encoded: Result<(), FrameError> = TradeCodec::new().encode(t, &mut out);
        encoded.expect("a decoded trade re-encodes");
        let mut again = out.clone();
        let back = TradeCodec::new().decode(&mut again).unwrap().unwrap();
        assert_eq!(&back, t);
        assert!(
            stream.windows(out.len()).any(|w| w == &out[..]),
            "re-encoding differs"
        );
    }
});
