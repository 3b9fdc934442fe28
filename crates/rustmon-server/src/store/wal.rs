//! Write-ahead log: numbered files of checksummed records, fsynced before a batch is acknowledged.
//!
//! A record is `len: u32 LE | crc32: u32 LE | kind: u8 | payload`, where the CRC covers kind and
//! payload. Replay stops at the first short or corrupt record (a torn write from a crash: it
//! was never acknowledged) and truncates the file there.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Record kind: an OTLP `ExportTraceServiceRequest` in protobuf.
pub const KIND_TRACES: u8 = 1;

/// An open log file being appended to.
#[derive(Debug)]
pub struct Wal {
    dir: PathBuf,
    seq: u64,
    file: File,
    bytes: u64,
}

/// Name of WAL file `seq`.
pub fn wal_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("wal-{seq:010}.log"))
}

/// Sequence numbers of the WAL files in `dir`, ascending.
pub fn list(dir: &Path) -> std::io::Result<Vec<u64>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let name = e?.file_name();
        let name = name.to_string_lossy();
        if let Some(n) = name
            .strip_prefix("wal-")
            .and_then(|s| s.strip_suffix(".log"))
            .and_then(|s| s.parse().ok())
        {
            out.push(n);
        }
    }
    out.sort_unstable();
    Ok(out)
}

/// Encodes one record into `buf`.
pub fn encode_record(buf: &mut Vec<u8>, kind: u8, payload: &[u8]) {
    let mut h = crc32fast::Hasher::new();
    h.update(&[kind]);
    h.update(payload);
    buf.extend_from_slice(&(payload.len() as u32 + 1).to_le_bytes());
    buf.extend_from_slice(&h.finalize().to_le_bytes());
    buf.push(kind);
    buf.extend_from_slice(payload);
}

/// Reads every intact record of file `seq`, truncating a torn tail. Calls `f(kind, payload)`.
pub fn replay(dir: &Path, seq: u64, mut f: impl FnMut(u8, &[u8])) -> std::io::Result<usize> {
    let path = wal_path(dir, seq);
    let mut data = Vec::new();
    File::open(&path)?.read_to_end(&mut data)?;
    let mut pos = 0usize;
    let mut n = 0;
    while data.len() - pos >= 9 {
        let len = u32::from_le_bytes(data[pos..pos + 4].try_into().unwrap_or([0; 4])) as usize;
        let crc = u32::from_le_bytes(data[pos + 4..pos + 8].try_into().unwrap_or([0; 4]));
        if len == 0 || data.len() - pos - 8 < len {
            break;
        }
        let body = &data[pos + 8..pos + 8 + len];
        if crc32fast::hash(body) != crc {
            break;
        }
        f(body[0], &body[1..]);
        n += 1;
        pos += 8 + len;
    }
    if pos < data.len() {
        let file = OpenOptions::new().write(true).open(&path)?;
        file.set_len(pos as u64)?;
        file.sync_all()?;
    }
    Ok(n)
}

impl Wal {
    /// Creates (or appends to) WAL file `seq` in `dir`.
    pub fn open(dir: &Path, seq: u64) -> std::io::Result<Wal> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(wal_path(dir, seq))?;
        let bytes = file.metadata()?.len();
        sync_dir(dir)?;
        Ok(Wal {
            dir: dir.to_path_buf(),
            seq,
            file,
            bytes,
        })
    }

    /// Sequence number of the current file.
    pub fn seq(&self) -> u64 {
        self.seq
    }

    /// Bytes in the current file.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Appends already-encoded records and makes them durable (one fdatasync for the group).
    pub fn append_sync(&mut self, records: &[u8]) -> std::io::Result<()> {
        self.file.write_all(records)?;
        self.file.sync_data()?;
        self.bytes += records.len() as u64;
        Ok(())
    }

    /// Starts the next file; returns the sequence number of the one closed.
    pub fn rotate(&mut self) -> std::io::Result<u64> {
        let old = self.seq;
        *self = Wal::open(&self.dir, old + 1)?;
        Ok(old)
    }
}

/// Fsyncs a directory so that created, renamed or deleted entries are durable.
pub fn sync_dir(dir: &Path) -> std::io::Result<()> {
    File::open(dir)?.sync_all()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn torn_tail_is_dropped() {
        let dir = std::env::temp_dir().join(format!("rmwal-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut w = Wal::open(&dir, 1).unwrap();
        let mut b = Vec::new();
        encode_record(&mut b, KIND_TRACES, b"hello");
        encode_record(&mut b, KIND_TRACES, b"world");
        w.append_sync(&b).unwrap();
        w.append_sync(&b[..7]).unwrap();
        let mut got = Vec::new();
        replay(&dir, 1, |_, p| got.push(p.to_vec())).unwrap();
        assert_eq!(got, vec![b"hello".to_vec(), b"world".to_vec()]);
        assert_eq!(
            std::fs::metadata(wal_path(&dir, 1)).unwrap().len(),
            b.len() as u64
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
