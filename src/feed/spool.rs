//! The collector's on-disk spool: where received trades go while the database cannot
//! take them and memory is full, so that none is lost.
//!
//! A spool is a directory of append-only segment files, named by a growing number so
//! that name order is write order. A segment is `PHSPOOL1` followed by records:
//!
//! ```text
//! u32 len | i64 run_id | i64 seq | i64 received_ms | wire frame (u16 prefix + payload)
//!          '------------------------ len bytes ------------------------------'
//! ```
//!
//! big-endian, the trade in the feed's own wire format (so the codec validates it again
//! on the way back). Writes go to the OS after every appended chunk (a crash of the
//! process loses nothing written) and a segment is fsynced when it is closed (rotation,
//! shutdown). Segments are deleted only after every record in them has been committed
//! to the database; a crash in between replays the segment, and the receipt key
//! `(run_id, seq)` makes the second copy a no-op. A record cut short by a crash at the
//! very end of a segment is reported and dropped (it was never acknowledged anywhere).

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use bytes::BytesMut;
use tokio_util::codec::Decoder;

use super::codec::{TradeCodec, encode_frame};
use super::store::Receipt;

const MAGIC: &[u8; 8] = b"PHSPOOL1";
const EXTENSION: &str = "spool";
/// Longest record: the three i64s plus the largest frame.
const MAX_RECORD: usize = 24 + super::codec::MAX_FRAME_SIZE;

#[derive(Debug)]
struct Segment {
    path: PathBuf,
    bytes: u64,
}

/// The segment being appended to.
struct Current {
    segment: Segment,
    writer: BufWriter<File>,
}

/// A position in the oldest closed segment, for replay.
struct Cursor {
    reader: BufReader<File>,
    offset: u64,
}

/// A batch read back from the spool.
pub struct SpoolBatch {
    pub receipts: Vec<Receipt>,
    /// The segment this batch came from.
    pub segment: PathBuf,
    /// Whether this batch ends its segment (delete the file once it is committed).
    pub last_in_segment: bool,
    /// Records that could not be decoded (corrupt or truncated), by reason.
    pub corrupt: Vec<&'static str>,
}

pub struct Spool {
    dir: PathBuf,
    segment_bytes: u64,
    next_number: u64,
    closed: VecDeque<Segment>,
    /// Index in `closed` of the segment being read; the ones before it are fully read
    /// (their batches may still be in flight) and wait for [`Spool::remove`].
    read_pos: usize,
    current: Option<Current>,
    cursor: Option<Cursor>,
}

impl Spool {
    /// Opens (creating) the spool directory and finds segments left by earlier runs,
    /// which are replayed first.
    pub fn open(dir: &Path, segment_bytes: u64) -> io::Result<Spool> {
        fs::create_dir_all(dir)?;
        let mut found: Vec<(u64, Segment)> = Vec::new();
        for entry in fs::read_dir(dir)? {
            let entry = entry?;
            let path = entry.path();
            if path.extension().and_then(|e| e.to_str()) != Some(EXTENSION) {
                continue;
            }
            let Some(n) = path
                .file_stem()
                .and_then(|s| s.to_str())
                .and_then(|s| s.parse::<u64>().ok())
            else {
                continue;
            };
            let bytes = entry.metadata()?.len();
            found.push((n, Segment { path, bytes }));
        }
        found.sort_by_key(|(n, _)| *n);
        let next_number = found.last().map_or(0, |(n, _)| n + 1);
        Ok(Spool {
            dir: dir.to_path_buf(),
            segment_bytes,
            next_number,
            closed: found.into_iter().map(|(_, s)| s).collect(),
            read_pos: 0,
            current: None,
            cursor: None,
        })
    }

    /// Whether anything is spooled (closed segments or an open one).
    pub fn is_active(&self) -> bool {
        !self.closed.is_empty() || self.current.is_some()
    }

    /// Bytes on disk in all segments.
    pub fn bytes(&self) -> u64 {
        self.closed.iter().map(|s| s.bytes).sum::<u64>()
            + self.current.as_ref().map_or(0, |c| c.segment.bytes)
    }

    /// Whether a closed segment has records not read yet.
    pub fn has_unread(&self) -> bool {
        self.read_pos < self.closed.len()
    }

    /// Appends receipts to the open segment (starting one if needed) and hands them to
    /// the OS; closes the segment when it reaches its size.
    pub fn append(&mut self, receipts: &[Receipt]) -> io::Result<()> {
        if receipts.is_empty() {
            return Ok(());
        }
        if self.current.is_none() {
            let path = self
                .dir
                .join(format!("{:020}.{EXTENSION}", self.next_number));
            self.next_number += 1;
            let file = OpenOptions::new()
                .create_new(true)
                .write(true)
                .open(&path)?;
            let mut writer = BufWriter::with_capacity(256 << 10, file);
            writer.write_all(MAGIC)?;
            self.current = Some(Current {
                segment: Segment {
                    path,
                    bytes: MAGIC.len() as u64,
                },
                writer,
            });
        }
        let current = self.current.as_mut().expect("just opened");
        for r in receipts {
            // Receipts are validated trades, so they always encode.
            let Ok(frame) = encode_frame(&r.trade) else {
                continue;
            };
            let len = (24 + frame.len()) as u32;
            current.writer.write_all(&len.to_be_bytes())?;
            current.writer.write_all(&r.run_id.to_be_bytes())?;
            current.writer.write_all(&r.seq.to_be_bytes())?;
            current.writer.write_all(&r.received_ms.to_be_bytes())?;
            current.writer.write_all(&frame)?;
            current.segment.bytes += 4 + u64::from(len);
        }
        current.writer.flush()?;
        if current.segment.bytes >= self.segment_bytes {
            self.rotate()?;
        }
        Ok(())
    }

    /// Closes the open segment (fsync) so that it can be replayed.
    pub fn rotate(&mut self) -> io::Result<()> {
        if let Some(current) = self.current.take() {
            let file = current.writer.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()?;
            drop(file);
            if let Ok(dir) = File::open(&self.dir) {
                let _ = dir.sync_all();
            }
            self.closed.push_back(current.segment);
        }
        Ok(())
    }

    /// Reads up to `max` records from the oldest closed segment not fully read; after the
    /// batch that reaches its end, reading moves on to the next segment.
    pub fn read_batch(&mut self, max: usize) -> io::Result<Option<SpoolBatch>> {
        let Some(segment) = self.closed.get(self.read_pos) else {
            return Ok(None);
        };
        let path = segment.path.clone();
        if self.cursor.is_none() {
            let mut file = File::open(&path)?;
            let mut magic = [0u8; 8];
            let ok = file.read_exact(&mut magic).is_ok() && &magic == MAGIC;
            if !ok {
                tracing::error!(segment = %path.display(), "spool segment has no valid header; skipping it");
                self.read_pos += 1;
                return Ok(Some(SpoolBatch {
                    receipts: Vec::new(),
                    segment: path,
                    last_in_segment: true,
                    corrupt: vec!["spool_bad_header"],
                }));
            }
            file.seek(SeekFrom::Start(MAGIC.len() as u64))?;
            self.cursor = Some(Cursor {
                reader: BufReader::with_capacity(256 << 10, file),
                offset: MAGIC.len() as u64,
            });
        }
        let cursor = self.cursor.as_mut().expect("just opened");
        let mut receipts = Vec::with_capacity(max.min(65_536));
        let mut corrupt = Vec::new();
        let mut last = false;
        let mut record = [0u8; MAX_RECORD];
        while receipts.len() < max {
            let mut len = [0u8; 4];
            match read_full(&mut cursor.reader, &mut len)? {
                0 => {
                    last = true;
                    break;
                }
                4 => {}
                _ => {
                    corrupt.push("spool_truncated");
                    last = true;
                    break;
                }
            }
            let len = u32::from_be_bytes(len) as usize;
            if !(24 + 2..=MAX_RECORD).contains(&len) {
                // A length we never write: the rest of the segment cannot be delimited.
                corrupt.push("spool_bad_length");
                last = true;
                break;
            }
            if read_full(&mut cursor.reader, &mut record[..len])? < len {
                corrupt.push("spool_truncated");
                last = true;
                break;
            }
            cursor.offset += 4 + len as u64;
            let rec = &record[..len];
            let i = |k: usize| i64::from_be_bytes(rec[k..k + 8].try_into().expect("8 bytes"));
            let mut frame = BytesMut::from(&rec[24..]);
            match TradeCodec.decode(&mut frame) {
                Ok(Some(trade)) if frame.is_empty() => receipts.push(Receipt {
                    run_id: i(0),
                    seq: i(8),
                    received_ms: i(16),
                    trade,
                }),
                _ => corrupt.push("spool_bad_record"),
            }
        }
        if !last {
            // Peek: is there anything after this batch?
            last = cursor.reader.fill_buf_empty()?;
        }
        if last {
            self.read_pos += 1;
            self.cursor = None;
        }
        Ok(Some(SpoolBatch {
            receipts,
            segment: path,
            last_in_segment: last,
            corrupt,
        }))
    }

    /// Forgets the position in the segment being read, so it is read again from its
    /// start.
    pub fn rewind(&mut self) {
        self.cursor = None;
    }

    /// Deletes a closed segment once all of its records were committed.
    pub fn remove(&mut self, path: &Path) -> io::Result<()> {
        if let Some(i) = self.closed.iter().position(|s| s.path == path) {
            self.closed.remove(i);
            if i < self.read_pos {
                self.read_pos -= 1;
            } else if i == self.read_pos {
                self.cursor = None;
            }
            fs::remove_file(path)?;
        }
        Ok(())
    }
}

trait FillBufEmpty {
    fn fill_buf_empty(&mut self) -> io::Result<bool>;
}

impl FillBufEmpty for BufReader<File> {
    fn fill_buf_empty(&mut self) -> io::Result<bool> {
        use std::io::BufRead;
        Ok(self.fill_buf()?.is_empty())
    }
}

/// Reads until `buf` is full or EOF; returns the bytes read.
fn read_full(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..]) {
            Ok(0) => break,
            Ok(k) => n += k,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::feed::Trade;

    fn receipts(from: i64, n: i64) -> Vec<Receipt> {
        (from..from + n)
            .map(|seq| Receipt {
                run_id: 42,
                seq,
                received_ms: 1_000 + seq,
                trade: Trade {
                    timestamp_ms: 1_700_000_000_000 + seq as u64,
                    ticker: "BTCUSD".into(),
                    price: 43_000.0 + seq as f64 / 100.0,
                    size: 100,
                },
            })
            .collect()
    }

    fn drain(spool: &mut Spool, max: usize) -> Vec<Receipt> {
        let mut out = Vec::new();
        while let Some(b) = spool.read_batch(max).unwrap() {
            assert!(b.corrupt.is_empty(), "{:?}", b.corrupt);
            out.extend(b.receipts);
            if b.last_in_segment {
                spool.remove(&b.segment).unwrap();
            }
        }
        out
    }

    #[test]
    fn round_trips_in_order_across_segments_and_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let all = receipts(0, 1_000);
        {
            let mut spool = Spool::open(dir.path(), 4_096).unwrap();
            for chunk in all.chunks(37) {
                spool.append(chunk).unwrap();
            }
            assert!(spool.is_active());
            assert!(spool.bytes() > 4_096);
            // Dropped without rotating the last segment: what a crash leaves behind.
        }
        let mut spool = Spool::open(dir.path(), 4_096).unwrap();
        assert!(spool.has_unread());
        let back = drain(&mut spool, 100);
        assert_eq!(back, all);
        assert!(!spool.is_active());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn segments_can_be_read_ahead_and_removed_in_any_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
        spool.append(&receipts(0, 5)).unwrap();
        spool.rotate().unwrap();
        spool.append(&receipts(5, 5)).unwrap();
        spool.rotate().unwrap();
        let a = spool.read_batch(100).unwrap().unwrap();
        let b = spool.read_batch(100).unwrap().unwrap();
        assert!(a.last_in_segment && b.last_in_segment);
        assert_ne!(a.segment, b.segment);
        assert_eq!(b.receipts[0].seq, 5);
        assert!(spool.read_batch(100).unwrap().is_none());
        assert!(!spool.has_unread() && spool.is_active());
        spool.remove(&b.segment).unwrap();
        spool.append(&receipts(10, 1)).unwrap();
        spool.rotate().unwrap();
        assert_eq!(spool.read_batch(100).unwrap().unwrap().receipts[0].seq, 10);
        spool.remove(&a.segment).unwrap();
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn rewind_rereads_a_segment() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
        spool.append(&receipts(0, 10)).unwrap();
        spool.rotate().unwrap();
        let a = spool.read_batch(4).unwrap().unwrap();
        assert!(!a.last_in_segment);
        spool.rewind();
        let b = spool.read_batch(100).unwrap().unwrap();
        assert_eq!(b.receipts.len(), 10);
        assert_eq!(a.receipts[..], b.receipts[..4]);
        assert!(b.last_in_segment);
    }

    #[test]
    fn a_record_cut_short_by_a_crash_is_reported_not_fatal() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
        spool.append(&receipts(0, 5)).unwrap();
        spool.rotate().unwrap();
        let path = fs::read_dir(dir.path())
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path();
        let len = fs::metadata(&path).unwrap().len();
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len - 3)
            .unwrap();
        let mut spool = Spool::open(dir.path(), 1 << 20).unwrap();
        let b = spool.read_batch(100).unwrap().unwrap();
        assert_eq!(b.receipts.len(), 4);
        assert_eq!(b.corrupt, ["spool_truncated"]);
        assert!(b.last_in_segment);
    }
}
