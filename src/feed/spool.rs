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
//!
//! A spool belongs to one database. `identity.json` in the spool directory names it
//! ([`SpoolLabel`]): written with the first segment, from the database's identity when
//! the collector has reached it (PostgreSQL: system identifier and database name;
//! SQLite: the random id stored in the file at migration, `pricehub_instance`), else from
//! the address the collector was configured with. A collector refuses to replay a spool
//! labelled for another database: at start when the address differs, at first contact
//! when the identity differs. A spool without a label (written before labels existed) is
//! adopted by the first database reached, with a warning. See docs/feed.md.

use std::collections::VecDeque;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use bytes::BytesMut;
use tokio_util::codec::Decoder;

use super::codec::{TradeCodec, encode_frame};
use super::store::Receipt;
use crate::db::Db;

const MAGIC: &[u8; 8] = b"PHSPOOL1";
const LABEL_FILE: &str = "identity.json";
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

/// The database a spool was written for (`identity.json`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SpoolLabel {
    /// `postgres` or `sqlite`.
    pub backend: String,
    /// Where the database was reached: `host:port/database`, or the SQLite file's path.
    pub target: String,
    /// PostgreSQL's system identifier (`pg_control_system()`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub system_identifier: Option<String>,
    /// PostgreSQL's database name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// SQLite: the id stored in the file at migration (`pricehub_instance`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_id: Option<String>,
}

impl SpoolLabel {
    /// Only the configured address: the collector had not reached the database yet.
    pub fn unverified(backend: &str, target: String) -> SpoolLabel {
        SpoolLabel {
            backend: backend.to_string(),
            target,
            system_identifier: None,
            database: None,
            database_id: None,
        }
    }

    /// What identifies the database itself, when known.
    fn identity(&self) -> Option<String> {
        match (&self.system_identifier, &self.database, &self.database_id) {
            (Some(sys), Some(db), _) => Some(format!("postgres:{sys}/{db}")),
            (_, _, Some(id)) => Some(format!("sqlite:{id}")),
            _ => None,
        }
    }

    /// For error messages: which database, named every way we know.
    pub fn describe(&self) -> String {
        match (&self.system_identifier, &self.database, &self.database_id) {
            (Some(sys), Some(db), _) => format!(
                "PostgreSQL database {db:?} of system {sys} at {}",
                self.target
            ),
            (_, _, Some(id)) => format!("SQLite database {} (id {id})", self.target),
            _ => format!("the {} database at {}", self.backend, self.target),
        }
    }
}

/// The label of `db` before it has been reached: its backend and configured address.
pub fn address_label(db: &Db) -> SpoolLabel {
    match db {
        Db::Postgres(p) => {
            let o = p.connect_options();
            let database = o.get_database().unwrap_or(o.get_username());
            SpoolLabel::unverified(
                "postgres",
                format!("{}:{}/{database}", o.get_host(), o.get_port()),
            )
        }
        Db::Sqlite(p) => {
            let file = p.connect_options().get_filename().to_path_buf();
            let file = std::path::absolute(&file).unwrap_or(file);
            SpoolLabel::unverified("sqlite", file.display().to_string())
        }
    }
}

/// The label of `db` from the database itself (PostgreSQL: system identifier and
/// database name; SQLite: the id its migration stored).
pub async fn database_label(db: &Db) -> Result<SpoolLabel, sqlx::Error> {
    let mut label = address_label(db);
    match db {
        Db::Postgres(p) => {
            let (sys, name): (String, String) = sqlx::query_as(
                "SELECT (SELECT system_identifier::text FROM pg_control_system()), current_database()",
            )
            .fetch_one(p)
            .await?;
            label.system_identifier = Some(sys);
            label.database = Some(name);
        }
        Db::Sqlite(p) => {
            let id: String = sqlx::query_scalar("SELECT id FROM pricehub_instance LIMIT 1")
                .fetch_one(p)
                .await?;
            label.database_id = Some(id);
        }
    }
    Ok(label)
}

/// Why a spool is not replayed into this collector's database.
pub fn foreign_spool(dir: &Path, spool: &SpoolLabel, ours: &SpoolLabel) -> String {
    format!(
        "the spool in {} was written for {}, but this collector writes to {}; it is not \
         replayed. Point a collector at the spool's database to replay it, or move the \
         spool aside (mv {} {}.moved) to start clean (docs/feed.md)",
        dir.display(),
        spool.describe(),
        ours.describe(),
        dir.display(),
        dir.display()
    )
}

pub struct Spool {
    dir: PathBuf,
    /// The label read at open (`None`: no `identity.json`).
    label: Option<SpoolLabel>,
    /// What a segment created now is labelled with: the configured address until the
    /// database's identity is known.
    ours: SpoolLabel,
    /// The spool has been checked against (or labelled for) this collector's database.
    checked: bool,
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
    pub fn open(dir: &Path, segment_bytes: u64, ours: SpoolLabel) -> io::Result<Spool> {
        fs::create_dir_all(dir)?;
        let label = match fs::read(dir.join(LABEL_FILE)) {
            Ok(bytes) => Some(serde_json::from_slice(&bytes).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{} is not a spool label: {e}",
                        dir.join(LABEL_FILE).display()
                    ),
                )
            })?),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => return Err(e),
        };
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
        let checked = found.is_empty();
        Ok(Spool {
            dir: dir.to_path_buf(),
            label,
            ours,
            checked,
            segment_bytes,
            next_number,
            closed: found.into_iter().map(|(_, s)| s).collect(),
            read_pos: 0,
            current: None,
            cursor: None,
        })
    }

    /// The check at start, before the database is reached: a spool labelled for another
    /// address is refused (its trades would otherwise mix with this run's).
    pub fn check_address(&self) -> Result<(), String> {
        match &self.label {
            Some(label) if !self.checked && label.target != self.ours.target => {
                Err(foreign_spool(&self.dir, label, &self.ours))
            }
            _ => Ok(()),
        }
    }

    /// Whether the database's identity is known (given to [`Spool::check_identity`]).
    pub fn knows_database(&self) -> bool {
        self.ours.identity().is_some()
    }

    /// Whether the spool may be replayed (checked against this collector's database).
    pub fn is_checked(&self) -> bool {
        self.checked
    }

    /// The check at first contact with the database, whose identity is `db`: a spool
    /// labelled for another database is refused; one with only an address, or no label
    /// at all (written before labels existed, adopted with a warning), is labelled for
    /// this database. New segments are labelled with `db` from now on.
    pub fn check_identity(&mut self, db: &SpoolLabel) -> Result<(), String> {
        self.ours = db.clone();
        if self.checked {
            return if self.label.as_ref() == Some(db)
                || (self.closed.is_empty() && self.current.is_none())
            {
                Ok(())
            } else {
                self.write_label()
                    .map_err(|e| format!("cannot label the spool: {e}"))
            };
        }
        match &self.label {
            Some(label) => match label.identity() {
                Some(theirs) if Some(&theirs) != db.identity().as_ref() => {
                    return Err(foreign_spool(&self.dir, label, db));
                }
                Some(_) => {}
                None if label.target != db.target => {
                    return Err(foreign_spool(&self.dir, label, db));
                }
                None => {}
            },
            None => tracing::warn!(
                dir = %self.dir.display(),
                database = %db.describe(),
                bytes = self.bytes(),
                "spool without a database label (written by an older collector); it is adopted and replayed into this database"
            ),
        }
        self.checked = true;
        self.write_label()
            .map_err(|e| format!("cannot label the spool: {e}"))
    }

    /// Writes `identity.json` for this collector's database (atomically).
    fn write_label(&mut self) -> io::Result<()> {
        if self.label.as_ref() == Some(&self.ours) {
            return Ok(());
        }
        let tmp = self.dir.join(format!("{LABEL_FILE}.tmp"));
        {
            let mut f = File::create(&tmp)?;
            f.write_all(&serde_json::to_vec_pretty(&self.ours).expect("a label serializes"))?;
            f.sync_all()?;
        }
        fs::rename(&tmp, self.dir.join(LABEL_FILE))?;
        if let Ok(dir) = File::open(&self.dir) {
            let _ = dir.sync_all();
        }
        self.label = Some(self.ours.clone());
        Ok(())
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
            if self.checked {
                // A spool of this run's trades: labelled for this collector's database.
                self.write_label()?;
            }
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
            if self.closed.is_empty() && self.current.is_none() {
                // An empty spool belongs to no database; the next segment labels it anew.
                match fs::remove_file(self.dir.join(LABEL_FILE)) {
                    Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
                    _ => self.label = None,
                }
            }
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

    /// The segment files (the directory also holds the label).
    fn segment_files(dir: &Path) -> Vec<PathBuf> {
        fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == EXTENSION))
            .collect()
    }

    fn test_label() -> SpoolLabel {
        SpoolLabel::unverified("sqlite", "/test.db".into())
    }

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
            let mut spool = Spool::open(dir.path(), 4_096, test_label()).unwrap();
            for chunk in all.chunks(37) {
                spool.append(chunk).unwrap();
            }
            assert!(spool.is_active());
            assert!(spool.bytes() > 4_096);
            // Dropped without rotating the last segment: what a crash leaves behind.
        }
        let mut spool = Spool::open(dir.path(), 4_096, test_label()).unwrap();
        assert!(spool.has_unread());
        let back = drain(&mut spool, 100);
        assert_eq!(back, all);
        assert!(!spool.is_active());
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    #[test]
    fn segments_can_be_read_ahead_and_removed_in_any_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path(), 1 << 20, test_label()).unwrap();
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
        assert_eq!(segment_files(dir.path()).len(), 1);
    }

    #[test]
    fn rewind_rereads_a_segment() {
        let dir = tempfile::tempdir().unwrap();
        let mut spool = Spool::open(dir.path(), 1 << 20, test_label()).unwrap();
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
        let mut spool = Spool::open(dir.path(), 1 << 20, test_label()).unwrap();
        spool.append(&receipts(0, 5)).unwrap();
        spool.rotate().unwrap();
        let path = segment_files(dir.path()).remove(0);
        let len = fs::metadata(&path).unwrap().len();
        OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(len - 3)
            .unwrap();
        let mut spool = Spool::open(dir.path(), 1 << 20, test_label()).unwrap();
        let b = spool.read_batch(100).unwrap().unwrap();
        assert_eq!(b.receipts.len(), 4);
        assert_eq!(b.corrupt, ["spool_truncated"]);
        assert!(b.last_in_segment);
    }

    fn pg(target: &str, sys: &str, db: &str) -> SpoolLabel {
        SpoolLabel {
            system_identifier: Some(sys.into()),
            database: Some(db.into()),
            ..SpoolLabel::unverified("postgres", target.into())
        }
    }

    /// A spool with one segment, written by a collector that knew `db` (or only its
    /// address).
    fn spool_for(dir: &Path, label: SpoolLabel, known: Option<&SpoolLabel>) {
        let mut spool = Spool::open(dir, 1 << 20, label).unwrap();
        if let Some(k) = known {
            spool.check_identity(k).unwrap();
        }
        spool.append(&receipts(0, 3)).unwrap();
        spool.rotate().unwrap();
    }

    #[test]
    fn a_spool_is_refused_by_another_database() {
        let a = pg("h:5432/a", "7001", "a");
        let dir = tempfile::tempdir().unwrap();
        spool_for(
            dir.path(),
            SpoolLabel::unverified("postgres", "h:5432/a".into()),
            Some(&a),
        );
        // Another address: refused at start, naming both.
        let other = Spool::open(
            dir.path(),
            1 << 20,
            SpoolLabel::unverified("postgres", "h:5432/b".into()),
        )
        .unwrap();
        let err = other.check_address().unwrap_err();
        assert!(
            err.contains("\"a\" of system 7001") && err.contains("h:5432/b"),
            "{err}"
        );
        // Same address, another database (recreated cluster): refused at first contact.
        let mut same = Spool::open(
            dir.path(),
            1 << 20,
            SpoolLabel::unverified("postgres", "h:5432/a".into()),
        )
        .unwrap();
        same.check_address().unwrap();
        assert!(same.check_identity(&pg("h:5432/a", "7002", "a")).is_err());
        assert!(!same.is_checked());
        // Its own database: replayed.
        let mut own = Spool::open(
            dir.path(),
            1 << 20,
            SpoolLabel::unverified("postgres", "h:5432/a".into()),
        )
        .unwrap();
        own.check_identity(&a).unwrap();
        assert!(own.is_checked() && own.has_unread());
    }

    #[test]
    fn an_address_label_is_upgraded_and_an_unlabelled_spool_adopted() {
        let a = pg("h:5432/a", "7001", "a");
        // Written before the database was ever reached: only the address.
        let dir = tempfile::tempdir().unwrap();
        spool_for(
            dir.path(),
            SpoolLabel::unverified("postgres", "h:5432/a".into()),
            None,
        );
        let mut s = Spool::open(
            dir.path(),
            1 << 20,
            SpoolLabel::unverified("postgres", "h:5432/a".into()),
        )
        .unwrap();
        s.check_address().unwrap();
        s.check_identity(&a).unwrap();
        let label: SpoolLabel =
            serde_json::from_slice(&fs::read(dir.path().join(LABEL_FILE)).unwrap()).unwrap();
        assert_eq!(label, a);
        // No label at all (an older collector): adopted, then labelled.
        let dir = tempfile::tempdir().unwrap();
        spool_for(
            dir.path(),
            SpoolLabel::unverified("postgres", "h:5432/a".into()),
            None,
        );
        fs::remove_file(dir.path().join(LABEL_FILE)).unwrap();
        let mut s = Spool::open(
            dir.path(),
            1 << 20,
            SpoolLabel::unverified("postgres", "h:5432/z".into()),
        )
        .unwrap();
        s.check_address().unwrap();
        s.check_identity(&a).unwrap();
        assert!(s.is_checked());
        assert!(dir.path().join(LABEL_FILE).exists());
        // An empty spool belongs to nobody: any database may use the directory.
        let dir = tempfile::tempdir().unwrap();
        let mut s = Spool::open(
            dir.path(),
            1 << 20,
            SpoolLabel::unverified("postgres", "h:5432/b".into()),
        )
        .unwrap();
        s.check_address().unwrap();
        s.check_identity(&pg("h:5432/b", "9", "b")).unwrap();
    }
}
