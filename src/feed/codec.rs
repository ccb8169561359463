//! The feed's wire format as a tokio-util codec.
//!
//! A frame is, all integers big-endian:
//!
//! ```text
//! u16 frame_len | u64 timestamp_ms | u16 ticker_len | ticker | f64 price | u32 size
//!               '------------------- frame_len bytes -----------------------'
//! ```
//!
//! The original client assumed one `recv(1024)` is one frame, which breaks as soon as TCP
//! coalesces or splits writes. [`TradeCodec`] is a real streaming decoder: it waits for
//! partial frames, yields many frames from one read, and turns every malformed input into
//! a typed [`FrameError`] instead of a panic or a silently wrong trade.
//!
//! # Error recovery
//!
//! The only thing that delimits frames is the length prefix, so what a caller can do
//! after an error depends on whether that prefix is believable:
//!
//! * **Recoverable** ([`FrameError::is_fatal`] is `false`): the prefix was in the range a
//!   frame can have, but the content was bad (ticker length disagreeing with the frame
//!   length, empty or non-ASCII ticker, price not finite or not positive). The decoder
//!   has consumed exactly that one frame; calling `decode` again continues with the
//!   next frame. Count it and carry on.
//! * **Fatal** (`is_fatal` is `true`): the prefix is 0 or outside the possible range, or
//!   the stream ended inside a frame, or the socket failed. There is no way to find the
//!   next frame boundary in a stream that has lost sync — any "resync" would be a guess
//!   that turns garbage into plausible-looking trades — so the caller must drop the
//!   connection (and reconnect). The decoder does not consume the bad prefix; calling it
//!   again returns the same error.
//!
//! `tokio_util::codec::FramedRead` ends its stream after the first `Err` from a decoder,
//! so a collector that wants to skip recoverable frames should wrap [`SkippingDecoder`],
//! which yields them as `Ok(Some(Err(..)))` items and keeps `Err` for fatal ones.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder};

use super::Trade;

/// Bytes of the `frame_len` prefix itself.
pub const LEN_PREFIX: usize = 2;
/// Longest ticker accepted on the wire: generous for any exchange symbol, and small
/// enough that a frame is bounded, which is what lets the decoder reject garbage early.
pub const MAX_TICKER_LEN: usize = 32;
/// Payload bytes besides the ticker: timestamp (8), ticker_len (2), price (8), size (4).
pub const FIXED_PAYLOAD_LEN: usize = 8 + 2 + 8 + 4;
/// Smallest `frame_len` that can hold the fixed fields (a frame with an empty ticker,
/// which is then rejected as [`FrameError::EmptyTicker`] but is still well delimited).
pub const MIN_FRAME_LEN: u16 = FIXED_PAYLOAD_LEN as u16;
/// Largest possible `frame_len` (a 32-byte ticker).
pub const MAX_FRAME_LEN: u16 = (FIXED_PAYLOAD_LEN + MAX_TICKER_LEN) as u16;
/// Largest frame on the wire including its prefix: 2 + 8 + 2 + 32 + 8 + 4 = 56 bytes.
pub const MAX_FRAME_SIZE: usize = LEN_PREFIX + MAX_FRAME_LEN as usize;

/// Why a frame (or a trade to be encoded) was rejected.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// A zero prefix: typically zero padding or a desynchronised stream. Fatal.
    #[error("frame length is zero")]
    ZeroLength,
    /// The prefix cannot even hold the fixed fields. Fatal.
    #[error("frame length {frame_len} is shorter than the minimum {MIN_FRAME_LEN}")]
    TooShort { frame_len: u16 },
    /// The prefix exceeds the largest possible frame. Fatal.
    #[error("frame length {frame_len} exceeds the maximum {MAX_FRAME_LEN}")]
    TooLong { frame_len: u16 },
    /// `ticker_len` does not account for exactly the bytes the frame holds: either the
    /// ticker would overrun the frame or bytes would be left over inside it.
    #[error("ticker length {ticker_len} is inconsistent with frame length {frame_len}")]
    TickerLenMismatch { frame_len: u16, ticker_len: u16 },
    #[error("ticker is empty")]
    EmptyTicker,
    #[error("ticker is {len} bytes long, more than the maximum {MAX_TICKER_LEN}")]
    TickerTooLong { len: usize },
    /// Only printable ASCII (0x21..=0x7E) is accepted: control bytes — NUL above all,
    /// which PostgreSQL text columns refuse — and spaces would poison storage and logs.
    /// `ticker` holds the bytes escaped, safe to log.
    #[error("ticker {ticker:?} is not printable ASCII")]
    TickerNotAscii { ticker: String },
    #[error("price {price} is not finite")]
    PriceNotFinite { price: f64 },
    #[error("price {price} is not positive")]
    PriceNotPositive { price: f64 },
    /// The stream ended inside a frame; the partial bytes were discarded. Fatal.
    #[error("stream ended inside a frame ({buffered} bytes of an incomplete frame)")]
    Truncated { buffered: usize },
    /// Reading from the transport failed. Fatal.
    #[error("transport error: {0}")]
    Io(#[from] std::io::Error),
}

impl FrameError {
    /// Whether the stream is unusable after this error, so the connection must be dropped
    /// (see the module docs). After a non-fatal error the bad frame has been consumed.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            FrameError::ZeroLength
                | FrameError::TooShort { .. }
                | FrameError::TooLong { .. }
                | FrameError::Truncated { .. }
                | FrameError::Io(_)
        )
    }

    /// A short stable name for metric labels and structured logs.
    pub fn label(&self) -> &'static str {
        match self {
            FrameError::ZeroLength => "zero_length",
            FrameError::TooShort { .. } => "too_short",
            FrameError::TooLong { .. } => "too_long",
            FrameError::TickerLenMismatch { .. } => "ticker_len_mismatch",
            FrameError::EmptyTicker => "empty_ticker",
            FrameError::TickerTooLong { .. } => "ticker_too_long",
            FrameError::TickerNotAscii { .. } => "ticker_not_ascii",
            FrameError::PriceNotFinite { .. } => "price_not_finite",
            FrameError::PriceNotPositive { .. } => "price_not_positive",
            FrameError::Truncated { .. } => "truncated",
            FrameError::Io(_) => "io",
        }
    }
}

/// Accepts 1..=[`MAX_TICKER_LEN`] bytes of printable ASCII.
pub fn validate_ticker(ticker: &[u8]) -> Result<(), FrameError> {
    if ticker.is_empty() {
        return Err(FrameError::EmptyTicker);
    }
    if ticker.len() > MAX_TICKER_LEN {
        return Err(FrameError::TickerTooLong { len: ticker.len() });
    }
    if !ticker.iter().all(u8::is_ascii_graphic) {
        return Err(FrameError::TickerNotAscii {
            ticker: ticker.escape_ascii().to_string(),
        });
    }
    Ok(())
}

/// Accepts finite prices strictly above zero.
pub fn validate_price(price: f64) -> Result<(), FrameError> {
    if !price.is_finite() {
        return Err(FrameError::PriceNotFinite { price });
    }
    if price <= 0.0 {
        return Err(FrameError::PriceNotPositive { price });
    }
    Ok(())
}

/// Encodes one trade as a standalone frame, so a broadcaster can encode once and hand
/// the same bytes to every client.
pub fn encode_frame(trade: &Trade) -> Result<Bytes, FrameError> {
    let mut buf = BytesMut::with_capacity(LEN_PREFIX + FIXED_PAYLOAD_LEN + trade.ticker.len());
    TradeCodec.encode(trade, &mut buf)?;
    Ok(buf.freeze())
}

/// Decoder and encoder for the feed's frames. Stateless: all state is in the buffer, so
/// one value can be reused or cloned freely.
#[derive(Clone, Copy, Debug, Default)]
pub struct TradeCodec;

impl TradeCodec {
    pub fn new() -> Self {
        TradeCodec
    }
}

/// Parses one frame's payload (everything after the prefix). `payload.len()` is the
/// frame length, already checked to be within `MIN_FRAME_LEN..=MAX_FRAME_LEN`.
fn parse_payload(mut payload: &[u8]) -> Result<Trade, FrameError> {
    let frame_len = payload.len() as u16;
    let timestamp_ms = payload.get_u64();
    let ticker_len = payload.get_u16();
    // After the fixed fields, exactly ticker_len bytes must remain for the ticker.
    if usize::from(ticker_len) + FIXED_PAYLOAD_LEN != usize::from(frame_len) {
        return Err(FrameError::TickerLenMismatch {
            frame_len,
            ticker_len,
        });
    }
    let (ticker, mut rest) = payload.split_at(usize::from(ticker_len));
    validate_ticker(ticker)?;
    let price = rest.get_f64();
    validate_price(price)?;
    let size = rest.get_u32();
    // Printable ASCII was checked above, so this is valid UTF-8.
    let ticker = ticker.iter().map(|&b| char::from(b)).collect();
    Ok(Trade {
        timestamp_ms,
        ticker,
        price,
        size,
    })
}

impl Decoder for TradeCodec {
    type Item = Trade;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Trade>, FrameError> {
        if src.len() < LEN_PREFIX {
            src.reserve(MAX_FRAME_SIZE);
            return Ok(None);
        }
        let frame_len = u16::from_be_bytes([src[0], src[1]]);
        // Checked before waiting for the body, so garbage is reported at once rather than
        // after buffering up to 64 KiB of it.
        match frame_len {
            0 => return Err(FrameError::ZeroLength),
            n if n < MIN_FRAME_LEN => return Err(FrameError::TooShort { frame_len }),
            n if n > MAX_FRAME_LEN => return Err(FrameError::TooLong { frame_len }),
            _ => {}
        }
        let total = LEN_PREFIX + usize::from(frame_len);
        if src.len() < total {
            src.reserve(total - src.len());
            return Ok(None);
        }
        // Consume the frame before validating it: a bad but well-delimited frame must not
        // block the ones after it.
        let result = parse_payload(&src[LEN_PREFIX..total]);
        src.advance(total);
        result.map(Some)
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Trade>, FrameError> {
        match self.decode(buf)? {
            Some(trade) => Ok(Some(trade)),
            None if buf.is_empty() => Ok(None),
            None => {
                // A half frame at EOF is a lost trade; say so instead of dropping it
                // silently. Clearing makes a repeated call report a clean end.
                let buffered = buf.len();
                buf.clear();
                Err(FrameError::Truncated { buffered })
            }
        }
    }
}

impl Encoder<&Trade> for TradeCodec {
    type Error = FrameError;

    /// Refuses trades the decoder would reject, so the provider cannot emit a bad frame.
    fn encode(&mut self, trade: &Trade, dst: &mut BytesMut) -> Result<(), FrameError> {
        let ticker = trade.ticker.as_bytes();
        validate_ticker(ticker)?;
        validate_price(trade.price)?;
        let frame_len = FIXED_PAYLOAD_LEN + ticker.len();
        dst.reserve(LEN_PREFIX + frame_len);
        // Both fit: validate_ticker bounds the frame by MAX_FRAME_LEN.
        dst.put_u16(frame_len as u16);
        dst.put_u64(trade.timestamp_ms);
        dst.put_u16(ticker.len() as u16);
        dst.put_slice(ticker);
        dst.put_f64(trade.price);
        dst.put_u32(trade.size);
        Ok(())
    }
}

impl Encoder<Trade> for TradeCodec {
    type Error = FrameError;

    fn encode(&mut self, trade: Trade, dst: &mut BytesMut) -> Result<(), FrameError> {
        self.encode(&trade, dst)
    }
}

/// A [`TradeCodec`] for `FramedRead` that reports recoverable frame errors as items, so
/// the stream keeps going past them; only fatal errors (see [`FrameError::is_fatal`])
/// are returned as `Err` and end the stream.
#[derive(Clone, Copy, Debug, Default)]
pub struct SkippingDecoder {
    inner: TradeCodec,
}

impl SkippingDecoder {
    pub fn new() -> Self {
        SkippingDecoder::default()
    }

    fn sort(
        result: Result<Option<Trade>, FrameError>,
    ) -> Result<Option<Result<Trade, FrameError>>, FrameError> {
        match result {
            Ok(item) => Ok(item.map(Ok)),
            Err(e) if e.is_fatal() => Err(e),
            Err(e) => Ok(Some(Err(e))),
        }
    }
}

impl Decoder for SkippingDecoder {
    type Item = Result<Trade, FrameError>;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<Self::Item>, FrameError> {
        Self::sort(self.inner.decode(src))
    }

    fn decode_eof(&mut self, buf: &mut BytesMut) -> Result<Option<Self::Item>, FrameError> {
        Self::sort(self.inner.decode_eof(buf))
    }
}

#[cfg(test)]
mod tests {
    use futures_util::StreamExt;
    use proptest::prelude::*;
    use tokio_util::codec::FramedRead;

    use super::*;

    fn trade(ticker: &str, price: f64) -> Trade {
        Trade {
            timestamp_ms: 1_795_412_588_265,
            ticker: ticker.to_string(),
            price,
            size: 700,
        }
    }

    /// Builds a frame by hand, bypassing the encoder's validation.
    fn raw_frame(frame_len: u16, ticker_len: u16, ticker: &[u8], price: f64) -> Vec<u8> {
        let mut v = Vec::new();
        v.extend_from_slice(&frame_len.to_be_bytes());
        v.extend_from_slice(&1_700_000_000_000u64.to_be_bytes());
        v.extend_from_slice(&ticker_len.to_be_bytes());
        v.extend_from_slice(ticker);
        v.extend_from_slice(&price.to_be_bytes());
        v.extend_from_slice(&100u32.to_be_bytes());
        v
    }

    fn well_formed(ticker: &[u8], price: f64) -> Vec<u8> {
        let len = (FIXED_PAYLOAD_LEN + ticker.len()) as u16;
        raw_frame(len, ticker.len() as u16, ticker, price)
    }

    fn encode_all(trades: &[Trade]) -> BytesMut {
        let mut buf = BytesMut::new();
        for t in trades {
            TradeCodec.encode(t, &mut buf).expect("valid trade");
        }
        buf
    }

    /// Decodes everything in `bytes`, collecting trades and recoverable errors, and
    /// stopping at the first fatal one (returned last).
    fn decode_all(bytes: &[u8]) -> (Vec<Trade>, Vec<FrameError>, Option<FrameError>) {
        let mut buf = BytesMut::from(bytes);
        let (mut trades, mut errors) = (Vec::new(), Vec::new());
        loop {
            match TradeCodec.decode_eof(&mut buf) {
                Ok(Some(t)) => trades.push(t),
                Ok(None) => return (trades, errors, None),
                Err(e) if e.is_fatal() => return (trades, errors, Some(e)),
                Err(e) => errors.push(e),
            }
        }
    }

    fn decode_one(bytes: &[u8]) -> Result<Option<Trade>, FrameError> {
        TradeCodec.decode(&mut BytesMut::from(bytes))
    }

    fn capture() -> Option<(Vec<u8>, Vec<Trade>)> {
        let dir = crate::testing::data_dir()?;
        let bin = std::fs::read(dir.join("feed-capture.bin")).expect("read feed-capture.bin");
        let json = std::fs::read(dir.join("feed-capture.json")).expect("read feed-capture.json");
        let trades = serde_json::from_slice(&json).expect("parse feed-capture.json");
        Some((bin, trades))
    }

    #[test]
    fn capture_decodes_to_the_reference_trades() {
        let Some((bin, expected)) = capture() else {
            return;
        };
        let (trades, errors, fatal) = decode_all(&bin);
        assert!(errors.is_empty(), "{errors:?}");
        assert!(fatal.is_none(), "{fatal:?}");
        assert_eq!(trades.len(), 30);
        for (got, want) in trades.iter().zip(&expected) {
            assert_eq!(got, want);
            assert_eq!(got.price.to_bits(), want.price.to_bits());
        }
        assert_eq!(trades.len(), expected.len());
    }

    #[test]
    fn capture_reencodes_byte_identically() {
        let Some((bin, expected)) = capture() else {
            return;
        };
        assert_eq!(&encode_all(&expected)[..], &bin[..]);
        let framed: Vec<u8> = expected
            .iter()
            .flat_map(|t| encode_frame(t).expect("valid trade"))
            .collect();
        assert_eq!(framed, bin);
    }

    #[test]
    fn four_letter_ticker_makes_a_28_byte_frame() {
        let bytes = encode_frame(&trade("AAPL", 107.9)).unwrap();
        assert_eq!(bytes.len(), 28);
        assert_eq!(&bytes[..2], &26u16.to_be_bytes());
        assert_eq!(&bytes[10..12], &4u16.to_be_bytes());
        assert_eq!(&bytes[12..16], b"AAPL");
    }

    #[test]
    fn partial_frames_wait_and_many_frames_per_buffer_all_come_out() {
        let trades = vec![
            trade("AAPL", 1.5),
            trade("BTCUSD", 43_000.01),
            trade("X", 0.1),
        ];
        let bytes = encode_all(&trades);
        let mut buf = BytesMut::new();
        let mut out = Vec::new();
        for &b in bytes.iter() {
            buf.put_u8(b);
            while let Some(t) = TradeCodec.decode(&mut buf).unwrap() {
                out.push(t);
            }
        }
        assert_eq!(out, trades);
        assert!(buf.is_empty());

        let mut buf = bytes.clone();
        buf.extend_from_slice(&bytes[..5]);
        let mut out = Vec::new();
        while let Some(t) = TradeCodec.decode(&mut buf).unwrap() {
            out.push(t);
        }
        assert_eq!(out, trades);
        assert_eq!(buf.len(), 5, "the partial frame stays buffered");
    }

    #[test]
    fn insane_length_prefixes_are_fatal_and_not_consumed() {
        for (prefix, label) in [
            (0u16, "zero_length"),
            (1, "too_short"),
            (MIN_FRAME_LEN - 1, "too_short"),
            (MAX_FRAME_LEN + 1, "too_long"),
            (u16::MAX, "too_long"),
        ] {
            let mut buf = BytesMut::from(&prefix.to_be_bytes()[..]);
            let err = TradeCodec.decode(&mut buf).unwrap_err();
            assert_eq!(err.label(), label, "prefix {prefix}");
            assert!(err.is_fatal());
            assert_eq!(buf.len(), 2, "prefix {prefix} left in place");
            // Reported again, not skipped: the caller has to drop the connection.
            assert_eq!(TradeCodec.decode(&mut buf).unwrap_err().label(), label);
        }
    }

    #[test]
    fn ticker_length_inconsistent_with_the_frame() {
        // Ticker overruns the frame: claims 5 bytes in a frame sized for 4.
        let bytes = raw_frame(26, 5, b"AAPL", 100.0);
        assert!(matches!(
            decode_one(&bytes),
            Err(FrameError::TickerLenMismatch {
                frame_len: 26,
                ticker_len: 5
            })
        ));
        // Trailing bytes inside the frame: 3-byte ticker in a frame sized for 4.
        let bytes = raw_frame(26, 3, b"AAPL", 100.0);
        assert!(matches!(
            decode_one(&bytes),
            Err(FrameError::TickerLenMismatch { ticker_len: 3, .. })
        ));
        // Absurd ticker length in a sane frame.
        let bytes = raw_frame(26, u16::MAX, b"AAPL", 100.0);
        let err = decode_one(&bytes).unwrap_err();
        assert_eq!(err.label(), "ticker_len_mismatch");
        assert!(!err.is_fatal());
    }

    #[test]
    fn bad_tickers() {
        let err = decode_one(&well_formed(b"", 100.0)).unwrap_err();
        assert!(matches!(err, FrameError::EmptyTicker));
        for bad in [&b"AA\xC3\x84"[..], b"A\0PL", b"A PL", b"AAP\n", b"\x7f"] {
            let err = decode_one(&well_formed(bad, 100.0)).unwrap_err();
            assert!(
                matches!(err, FrameError::TickerNotAscii { .. }),
                "{bad:?}: {err}"
            );
            assert!(!err.is_fatal());
        }
        // A 33-byte ticker cannot be framed within MAX_FRAME_LEN, so on the wire it is a
        // too-long frame; the encoder refuses to produce it in the first place.
        let long = "A".repeat(MAX_TICKER_LEN + 1);
        assert!(
            decode_one(&well_formed(long.as_bytes(), 1.0))
                .unwrap_err()
                .is_fatal()
        );
        assert!(matches!(
            encode_frame(&trade(&long, 1.0)),
            Err(FrameError::TickerTooLong { len: 33 })
        ));
        let max = "Z".repeat(MAX_TICKER_LEN);
        let bytes = encode_frame(&trade(&max, 1.0)).unwrap();
        assert_eq!(bytes.len(), MAX_FRAME_SIZE);
        assert_eq!(decode_one(&bytes).unwrap().unwrap().ticker, max);
        assert!(matches!(
            encode_frame(&trade("ÄPL", 1.0)),
            Err(FrameError::TickerNotAscii { .. })
        ));
    }

    #[test]
    fn bad_prices() {
        for price in [f64::NAN, f64::INFINITY, f64::NEG_INFINITY] {
            let err = decode_one(&well_formed(b"AAPL", price)).unwrap_err();
            assert!(matches!(err, FrameError::PriceNotFinite { .. }), "{price}");
            assert!(encode_frame(&trade("AAPL", price)).is_err());
        }
        for price in [0.0, -0.0, -1.0, f64::MIN] {
            let err = decode_one(&well_formed(b"AAPL", price)).unwrap_err();
            assert!(
                matches!(err, FrameError::PriceNotPositive { .. }),
                "{price}"
            );
            assert!(!err.is_fatal());
            assert!(encode_frame(&trade("AAPL", price)).is_err());
        }
        let tiny = f64::from_bits(1); // smallest subnormal: odd, but positive and finite
        assert_eq!(
            decode_one(&well_formed(b"AAPL", tiny))
                .unwrap()
                .unwrap()
                .price,
            tiny
        );
    }

    #[test]
    fn decoding_continues_after_a_bad_but_well_delimited_frame() {
        let mut bytes = encode_frame(&trade("AAPL", 1.0)).unwrap().to_vec();
        bytes.extend(well_formed(b"MSFT", f64::NAN));
        bytes.extend(raw_frame(26, 9, b"GOOG", 2.0));
        bytes.extend(well_formed(b"B\0D", 2.0));
        bytes.extend(encode_frame(&trade("SPY", 3.0)).unwrap());
        let (trades, errors, fatal) = decode_all(&bytes);
        let tickers: Vec<_> = trades.iter().map(|t| t.ticker.as_str()).collect();
        assert_eq!(tickers, ["AAPL", "SPY"]);
        let labels: Vec<_> = errors.iter().map(FrameError::label).collect();
        assert_eq!(
            labels,
            [
                "price_not_finite",
                "ticker_len_mismatch",
                "ticker_not_ascii"
            ]
        );
        assert!(fatal.is_none());
    }

    #[test]
    fn garbage_is_a_fatal_error_not_a_trade() {
        let (trades, errors, fatal) = decode_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n");
        assert!(trades.is_empty() && errors.is_empty());
        assert!(matches!(fatal, Some(FrameError::TooLong { .. })));

        let (trades, _, fatal) = decode_all(&[0u8; 64]);
        assert!(trades.is_empty());
        assert!(matches!(fatal, Some(FrameError::ZeroLength)));

        // A valid frame followed by garbage: the trade is kept, then the stream is dead.
        let mut bytes = encode_frame(&trade("AAPL", 1.0)).unwrap().to_vec();
        bytes.extend_from_slice(&[0xff; 40]);
        let (trades, _, fatal) = decode_all(&bytes);
        assert_eq!(trades.len(), 1);
        assert!(fatal.unwrap().is_fatal());
    }

    #[test]
    fn truncated_frame_at_eof_is_reported() {
        let bytes = encode_frame(&trade("AAPL", 1.0)).unwrap();
        for cut in 1..bytes.len() {
            let mut buf = BytesMut::from(&bytes[..cut]);
            assert!(TradeCodec.decode(&mut buf).unwrap().is_none());
            match TradeCodec.decode_eof(&mut buf) {
                Err(FrameError::Truncated { buffered }) => assert_eq!(buffered, cut),
                other => panic!("cut at {cut}: {other:?}"),
            }
            assert!(buf.is_empty());
            assert!(TradeCodec.decode_eof(&mut buf).unwrap().is_none());
        }
        // A clean end is not an error.
        assert!(
            TradeCodec
                .decode_eof(&mut BytesMut::new())
                .unwrap()
                .is_none()
        );
    }

    #[tokio::test]
    async fn framed_read_with_skipping_decoder_counts_and_continues() {
        let mut bytes = encode_frame(&trade("AAPL", 1.0)).unwrap().to_vec();
        bytes.extend(well_formed(b"MSFT", -1.0));
        bytes.extend(encode_frame(&trade("SPY", 3.0)).unwrap());
        bytes.extend_from_slice(&[0, 26, 0, 0]); // truncated at EOF
        let items: Vec<_> = FramedRead::new(&bytes[..], SkippingDecoder::new())
            .collect()
            .await;
        assert_eq!(items.len(), 4, "{items:?}");
        assert_eq!(items[0].as_ref().unwrap().as_ref().unwrap().ticker, "AAPL");
        assert!(matches!(
            items[1],
            Ok(Err(FrameError::PriceNotPositive { .. }))
        ));
        assert_eq!(items[2].as_ref().unwrap().as_ref().unwrap().ticker, "SPY");
        assert!(matches!(
            items[3],
            Err(FrameError::Truncated { buffered: 4 })
        ));
    }

    fn valid_trade() -> impl Strategy<Value = Trade> {
        use proptest::num::f64::{NORMAL, POSITIVE, SUBNORMAL};
        (
            any::<u64>(),
            "[!-~]{1,32}",
            POSITIVE | NORMAL | SUBNORMAL,
            any::<u32>(),
        )
            .prop_map(|(timestamp_ms, ticker, price, size)| Trade {
                timestamp_ms,
                ticker,
                price,
                size,
            })
    }

    /// A frame that is well delimited but must be rejected.
    fn bad_frame() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            Just(well_formed(b"", 1.0)),
            Just(well_formed(b"AAPL", f64::NAN)),
            Just(well_formed(b"AAPL", 0.0)),
            Just(well_formed(b"AA\x01L", 1.0)),
            (0u16..=u16::MAX)
                .prop_filter("inconsistent", |&n| n != 4)
                .prop_map(|n| raw_frame(26, n, b"AAPL", 1.0)),
        ]
    }

    proptest! {
        #[test]
        fn arbitrary_chunking_yields_the_same_trades(
            trades in prop::collection::vec(valid_trade(), 0..40),
            cuts in prop::collection::vec(any::<prop::sample::Index>(), 0..30),
        ) {
            let bytes = encode_all(&trades);
            let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(bytes.len() + 1)).collect();
            cuts.push(0);
            cuts.push(bytes.len());
            cuts.sort_unstable();
            let mut buf = BytesMut::new();
            let mut out = Vec::new();
            for pair in cuts.windows(2) {
                buf.extend_from_slice(&bytes[pair[0]..pair[1]]);
                while let Some(t) = TradeCodec.decode(&mut buf).unwrap() {
                    out.push(t);
                }
            }
            prop_assert!(TradeCodec.decode_eof(&mut buf).unwrap().is_none());
            prop_assert_eq!(out.len(), trades.len());
            for (got, want) in out.iter().zip(&trades) {
                prop_assert_eq!(got.price.to_bits(), want.price.to_bits());
                prop_assert_eq!(got, want);
            }
        }

        #[test]
        fn bad_frames_are_skipped_without_losing_good_ones(
            items in prop::collection::vec(prop_oneof![
                valid_trade().prop_map(Ok),
                bad_frame().prop_map(Err),
            ], 0..40),
        ) {
            let mut bytes = Vec::new();
            for item in &items {
                match item {
                    Ok(t) => bytes.extend(encode_frame(t).unwrap()),
                    Err(frame) => bytes.extend(frame),
                }
            }
            let (trades, errors, fatal) = decode_all(&bytes);
            prop_assert!(fatal.is_none());
            let want: Vec<_> = items.iter().filter_map(|i| i.as_ref().ok()).cloned().collect();
            prop_assert_eq!(trades, want);
            prop_assert_eq!(errors.len(), items.iter().filter(|i| i.is_err()).count());
        }

        #[test]
        fn arbitrary_bytes_never_panic_and_always_terminate(
            bytes in prop::collection::vec(any::<u8>(), 0..512),
        ) {
            let mut buf = BytesMut::from(&bytes[..]);
            // Each recoverable error consumes at least MIN_FRAME_LEN bytes, so this bound
            // is never reached unless the decoder stops making progress.
            for _ in 0..=bytes.len() {
                let before = buf.len();
                match TradeCodec.decode_eof(&mut buf) {
                    Ok(Some(t)) => prop_assert!(t.validate().is_ok()),
                    Ok(None) => return Ok(()),
                    Err(e) if e.is_fatal() => return Ok(()),
                    Err(_) => {}
                }
                prop_assert!(buf.len() < before);
            }
            prop_assert!(false, "decoder stopped making progress");
        }
    }
}
