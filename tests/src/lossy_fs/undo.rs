//! What a file's unsynced writes changed, kept so that they can be undone
//! as a power cut would lose them.
//!
//! Writes go through to the backing file at once (so every reader sees
//! them, as the page cache would serve them); before each one the bytes it
//! overwrites within the file's durable length are saved. An fsync makes
//! the current content durable and forgets the record. A power cut puts the
//! saved bytes back, newest first, and cuts the file to its durable length:
//! exactly the content as of the last fsync.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// The undo record of one file since its last fsync.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Undo {
    /// The file's length at its last fsync (or when first seen).
    durable_len: u64,
    /// (offset, original bytes) saved before overwrites, oldest first.
    saved: Vec<(u64, Vec<u8>)>,
}

/// Bytes read per pread while saving a range: bounds one allocation.
const SAVE_CHUNK_BYTES: usize = 1 << 20;

impl Undo {
    /// A record for a file whose durable content is what it holds now.
    pub fn starting_at(durable_len: u64) -> Self {
        Undo {
            durable_len,
            saved: Vec::new(),
        }
    }

    /// How many saved bytes the record holds.
    pub fn saved_bytes(&self) -> u64 {
        self.saved.iter().map(|(_, bytes)| bytes.len() as u64).sum()
    }

    /// Saves what a write of `len` bytes at `offset` will overwrite.
    pub fn before_write(&mut self, file: &File, offset: u64, len: u64) -> io::Result<()> {
        let end = offset.saturating_add(len).min(self.durable_len);
        self.save(file, offset, end)
    }

    /// Saves what cutting the file to `new_len` will drop.
    pub fn before_truncate(&mut self, file: &File, new_len: u64) -> io::Result<()> {
        self.save(file, new_len, self.durable_len)
    }

    fn save(&mut self, file: &File, start: u64, end: u64) -> io::Result<()> {
        let mut at = start;
        while at < end {
            let want =
                usize::try_from(end - at).map_or(SAVE_CHUNK_BYTES, |n| n.min(SAVE_CHUNK_BYTES));
            let mut bytes = vec![0; want];
            let got = file.read_at(&mut bytes, at)?;
            if got == 0 {
                // Beyond the current end: an earlier cut already saved it.
                break;
            }
            bytes.truncate(got);
            self.saved.push((at, bytes));
            at += got as u64;
        }
        Ok(())
    }

    /// Puts the file back as it was at its last fsync.
    pub fn restore(&self, file: &File) -> io::Result<()> {
        for (offset, bytes) in self.saved.iter().rev() {
            file.write_all_at(bytes, *offset)?;
        }
        file.set_len(self.durable_len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file_with(bytes: &[u8]) -> (tempfile::NamedTempFile, File) {
        let named = tempfile::NamedTempFile::new().expect("temp file");
        std::fs::write(named.path(), bytes).expect("write");
        let file = File::options()
            .read(true)
            .write(true)
            .open(named.path())
            .expect("open");
        (named, file)
    }

    fn content(file: &File) -> Vec<u8> {
        let len = file.metadata().expect("stat").len() as usize;
        let mut bytes = vec![0; len];
        file.read_exact_at(&mut bytes, 0).expect("read");
        bytes
    }

    #[test]
    fn appends_overwrites_and_cuts_are_all_undone() {
        let (_named, file) = file_with(b"durable!");
        let mut undo = Undo::starting_at(8);
        undo.before_write(&file, 8, 4).unwrap();
        file.write_all_at(b"more", 8).unwrap();
        undo.before_write(&file, 2, 3).unwrap();
        file.write_all_at(b"XYZ", 2).unwrap();
        undo.before_truncate(&file, 4).unwrap();
        file.set_len(4).unwrap();
        undo.before_write(&file, 3, 6).unwrap();
        file.write_all_at(b"again!", 3).unwrap();
        assert_eq!(content(&file), b"duXagain!");
        undo.restore(&file).unwrap();
        assert_eq!(content(&file), b"durable!", "as of the last fsync");
    }

    #[test]
    fn a_new_file_loses_everything_unsynced() {
        let (_named, file) = file_with(b"");
        let mut undo = Undo::starting_at(0);
        undo.before_write(&file, 0, 5).unwrap();
        file.write_all_at(b"hello", 0).unwrap();
        assert_eq!(undo.saved_bytes(), 0, "nothing durable to save");
        undo.restore(&file).unwrap();
        assert!(content(&file).is_empty());
    }
}
