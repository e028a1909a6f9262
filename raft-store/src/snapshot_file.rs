//! The snapshot file: the state's rows in key order, with its meta and a
//! checksum, written once, fsynced and renamed into place.
//!
//! ```text
//! magic    b"SBSNAP\0" then the file format version (1 byte)
//! meta     u32 BE length, then the wire-encoded `SnapshotMetaRecord`
//! rows     repeated: u32 BE key length, key, u32 BE value length, value
//! trailer  u32 BE 0xFFFF_FFFF, u64 BE row count, u32 BE CRC-32 of all bytes before it
//! ```

use std::fs;
use std::fs::File;
use std::io::BufReader;
use std::io::BufWriter;
use std::io::Read;
use std::io::Write;
use std::path::Path;
use std::path::PathBuf;

use crate::error::Error;
use crate::snapshot_meta::SnapshotMetaRecord as SnapshotMeta;
use crate::wire;

const MAGIC: &[u8; 7] = b"SBSNAP\0";
/// The snapshot file format this build writes and reads.
pub const SNAPSHOT_FILE_VERSION: u8 = 1;
const END_OF_ROWS: u32 = u32::MAX;
/// Largest key or value a snapshot row may hold; rows are small records, so a
/// larger length means a corrupt file, not a large row.
const ROW_PART_BYTES_MAX: u32 = 16 * 1024 * 1024;
/// Largest encoded meta (membership of many sites).
const META_BYTES_MAX: u32 = 1024 * 1024;

/// A snapshot on disk, open for reading. The open handle keeps the data
/// readable even if a newer snapshot replaces the file meanwhile.
#[derive(Debug)]
pub struct SnapshotFile {
    /// Where it is.
    pub path: PathBuf,
    /// It, open.
    pub file: File,
    /// Its length in bytes.
    pub len: u64,
}

impl SnapshotFile {
    /// Opens a snapshot file.
    pub fn open(path: &Path) -> Result<Self, Error> {
        let file = File::open(path)
            .map_err(|e| Error::io(format!("opening snapshot {}", path.display()), e))?;
        let len = file
            .metadata()
            .map_err(|e| Error::io("reading snapshot size", e))?
            .len();
        Ok(SnapshotFile {
            path: path.to_owned(),
            file,
            len,
        })
    }

    /// Another handle on the same file, read from its start.
    pub fn reopen(&self) -> Result<Self, Error> {
        let file = self
            .file
            .try_clone()
            .map_err(|e| Error::io("duplicating snapshot handle", e))?;
        Ok(SnapshotFile {
            path: self.path.clone(),
            file,
            len: self.len,
        })
    }
}

struct CrcWriter<W: Write> {
    inner: W,
    hasher: crc32fast::Hasher,
}

impl<W: Write> Write for CrcWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let written = self.inner.write(buf)?;
        self.hasher.update(&buf[..written]);
        Ok(written)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Writes a snapshot to `path` through a temporary file: written, fsynced,
/// renamed, and the directory fsynced, so a crash leaves the old file or the
/// new one, never half of one. Returns the row count.
pub fn write_snapshot(
    path: &Path,
    meta: &SnapshotMeta,
    rows: impl Iterator<Item = (Vec<u8>, Vec<u8>)>,
) -> Result<u64, Error> {
    let temporary = path.with_extension("tmp");
    // The message is made only on failure: this runs four times a row, and
    // formatting it eagerly was half the cost of building a snapshot.
    let io = |context: &'static str| {
        let temporary = &temporary;
        move |e| Error::io(format!("{context} {}", temporary.display()), e)
    };
    let file = File::create(&temporary).map_err(io("creating snapshot"))?;
    let mut out = CrcWriter {
        inner: BufWriter::with_capacity(1 << 20, file),
        hasher: crc32fast::Hasher::new(),
    };
    out.write_all(MAGIC).map_err(io("writing"))?;
    out.write_all(&[SNAPSHOT_FILE_VERSION])
        .map_err(io("writing"))?;
    let meta = wire::encode(meta);
    out.write_all(&(meta.len() as u32).to_be_bytes())
        .map_err(io("writing"))?;
    out.write_all(&meta).map_err(io("writing"))?;
    let mut count = 0u64;
    for (key, value) in rows {
        assert!(
            key.len() < ROW_PART_BYTES_MAX as usize && value.len() < ROW_PART_BYTES_MAX as usize,
            "rows are small"
        );
        out.write_all(&(key.len() as u32).to_be_bytes())
            .map_err(io("writing"))?;
        out.write_all(&key).map_err(io("writing"))?;
        out.write_all(&(value.len() as u32).to_be_bytes())
            .map_err(io("writing"))?;
        out.write_all(&value).map_err(io("writing"))?;
        count += 1;
    }
    out.write_all(&END_OF_ROWS.to_be_bytes())
        .map_err(io("writing"))?;
    out.write_all(&count.to_be_bytes()).map_err(io("writing"))?;
    let crc = out.hasher.clone().finalize();
    let mut inner = out.inner;
    inner.write_all(&crc.to_be_bytes()).map_err(io("writing"))?;
    let file = inner
        .into_inner()
        .map_err(|e| Error::io("flushing snapshot", e.into_error()))?;
    // Synced: once the log before this snapshot is purged, a new site can only
    // be brought up from it.
    file.sync_all().map_err(io("syncing"))?;
    drop(file);
    fs::rename(&temporary, path).map_err(io("renaming"))?;
    sync_dir(path.parent().unwrap_or(Path::new(".")))?;
    Ok(count)
}

/// Fsyncs a directory so a rename or create in it is durable.
pub fn sync_dir(dir: &Path) -> Result<(), Error> {
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| Error::io(format!("syncing directory {}", dir.display()), e))
}

/// Creates `dir` and whatever parents it lacks, and fsyncs the parent of
/// each directory it made: a directory's entry lives in its parent, so
/// without that a crash can take the new directory, and every file synced
/// inside it, away.
pub fn create_dir_synced(dir: &Path) -> Result<(), Error> {
    let missing: Vec<&Path> = dir.ancestors().take_while(|d| !d.exists()).collect();
    fs::create_dir_all(dir).map_err(|e| Error::io(format!("creating {}", dir.display()), e))?;
    for made in missing.iter().rev() {
        sync_dir(made.parent().unwrap_or(Path::new(".")))?;
    }
    Ok(())
}

struct CrcReader<R: Read> {
    inner: R,
    hasher: crc32fast::Hasher,
}

impl<R: Read> CrcReader<R> {
    fn exact(&mut self, buf: &mut [u8]) -> Result<(), Error> {
        self.inner.read_exact(buf).map_err(|e| Error::Corrupt {
            what: "snapshot",
            reason: format!("truncated: {e}"),
        })?;
        self.hasher.update(buf);
        Ok(())
    }
    fn u32(&mut self) -> Result<u32, Error> {
        let mut bytes = [0u8; 4];
        self.exact(&mut bytes)?;
        Ok(u32::from_be_bytes(bytes))
    }
    fn bytes(&mut self, len: u32) -> Result<Vec<u8>, Error> {
        let mut bytes = vec![0u8; len as usize];
        self.exact(&mut bytes)?;
        Ok(bytes)
    }
}

/// Reads just the meta of a snapshot file.
pub fn read_meta(file: &SnapshotFile) -> Result<SnapshotMeta, Error> {
    let handle = file
        .file
        .try_clone()
        .map_err(|e| Error::io("duplicating snapshot handle", e))?;
    let mut reader = CrcReader {
        inner: BufReader::new(ReadAt {
            file: handle,
            offset: 0,
        }),
        hasher: crc32fast::Hasher::new(),
    };
    read_header(&mut reader)
}

fn read_header<R: Read>(reader: &mut CrcReader<R>) -> Result<SnapshotMeta, Error> {
    let corrupt = |reason: String| Error::Corrupt {
        what: "snapshot",
        reason,
    };
    let mut magic = [0u8; 8];
    reader.exact(&mut magic)?;
    if &magic[..7] != MAGIC {
        return Err(corrupt("not a switchboard snapshot".into()));
    }
    if magic[7] != SNAPSHOT_FILE_VERSION {
        return Err(Error::UnknownVersion {
            what: "snapshot file",
            found: magic[7],
            supported: SNAPSHOT_FILE_VERSION,
        });
    }
    let meta_len = reader.u32()?;
    if meta_len > META_BYTES_MAX {
        return Err(corrupt(format!("meta of {meta_len} bytes")));
    }
    let meta = reader.bytes(meta_len)?;
    wire::decode("snapshot meta", &meta)
}

/// A row of the state: encoded key and value.
pub type Row = (Vec<u8>, Vec<u8>);

/// Reads a whole snapshot file, checking its checksum: the meta and every row.
pub fn read_snapshot(file: &SnapshotFile) -> Result<(SnapshotMeta, Vec<Row>), Error> {
    let handle = file
        .file
        .try_clone()
        .map_err(|e| Error::io("duplicating snapshot handle", e))?;
    let mut reader = CrcReader {
        inner: BufReader::with_capacity(
            1 << 20,
            ReadAt {
                file: handle,
                offset: 0,
            },
        ),
        hasher: crc32fast::Hasher::new(),
    };
    let corrupt = |reason: String| Error::Corrupt {
        what: "snapshot",
        reason,
    };
    let meta = read_header(&mut reader)?;
    let mut rows = Vec::new();
    loop {
        let key_len = reader.u32()?;
        if key_len == END_OF_ROWS {
            break;
        }
        if key_len > ROW_PART_BYTES_MAX {
            return Err(corrupt(format!("key of {key_len} bytes")));
        }
        let key = reader.bytes(key_len)?;
        let value_len = reader.u32()?;
        if value_len > ROW_PART_BYTES_MAX {
            return Err(corrupt(format!("value of {value_len} bytes")));
        }
        let value = reader.bytes(value_len)?;
        rows.push((key, value));
    }
    let mut count = [0u8; 8];
    reader.exact(&mut count)?;
    if u64::from_be_bytes(count) != rows.len() as u64 {
        return Err(corrupt("row count does not match".into()));
    }
    let computed = reader.hasher.clone().finalize();
    let mut stored = [0u8; 4];
    reader
        .inner
        .read_exact(&mut stored)
        .map_err(|e| corrupt(format!("truncated checksum: {e}")))?;
    if u32::from_be_bytes(stored) != computed {
        return Err(corrupt("checksum mismatch".into()));
    }
    let mut extra = [0u8; 1];
    if reader
        .inner
        .read(&mut extra)
        .map_err(|e| Error::io("reading snapshot", e))?
        != 0
    {
        return Err(corrupt("bytes after the checksum".into()));
    }
    Ok((meta, rows))
}

/// Reads a file from an offset through a shared handle without moving the
/// handle's own cursor (`pread`).
struct ReadAt {
    file: File,
    offset: u64,
}

impl Read for ReadAt {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let read = self.file.read_at(buf, self.offset)?;
        self.offset += read as u64;
        Ok(read)
    }
}

/// Reads `len` bytes at `offset` of a snapshot file (for sending it in chunks).
pub fn read_chunk(file: &SnapshotFile, offset: u64, len: usize) -> Result<Vec<u8>, Error> {
    use std::os::unix::fs::FileExt;
    let len = len.min(file.len.saturating_sub(offset) as usize);
    let mut buf = vec![0u8; len];
    file.file
        .read_exact_at(&mut buf, offset)
        .map_err(|e| Error::io("reading snapshot chunk", e))?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_directory_is_made_with_its_missing_parents_and_an_existing_one_is_kept() {
        let root = tempfile::tempdir().expect("temp dir");
        let deep = root.path().join("a").join("b").join("c");
        create_dir_synced(&deep).expect("made and synced");
        assert!(deep.is_dir());
        std::fs::write(deep.join("kept"), b"x").expect("write");
        create_dir_synced(&deep).expect("already there");
        assert!(
            deep.join("kept").exists(),
            "an existing directory is left as it is"
        );
        sync_dir(Path::new("")).expect("the empty path is the working directory");
    }
}
