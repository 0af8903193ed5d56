//! Snapshot files: the key-value state at one applied index, in the
//! snapshot format of `snapshot.rs`, kept in the data directory's
//! `snapshots/` folder.
//!
//! The Raft log store keeps only a [`SnapshotRef`] as the snapshot's data —
//! the file's index, size and digest — so a snapshot never has to fit in
//! memory: it is written by streaming the state into a file, sent by
//! streaming the file, received by streaming into a file, and installed by
//! reading the file record by record.
//!
//! A file's name is its index and digest, so the same state always has the
//! same name. It is written under a temporary name, synced, then renamed
//! (and the folder synced), so a file under its final name is whole.
//! Files of older snapshots go once a newer snapshot is durable; a file
//! being sent to a peer stays readable through its open handle.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{Buf, BufMut, Bytes};
use raftcfg_raft::LogIndex;

use super::snapshot::Digest;
use crate::codec::DecodeError;

/// The folder under the data directory.
/// The folder of the data directory that holds the snapshot files.
pub const SNAPSHOT_FOLDER: &str = "snapshots";
/// The first byte of an encoded [`SnapshotRef`]. The state format's own
/// version byte (2) starts the inline snapshots earlier builds stored,
/// so the two never mistake each other.
const REF_TAG: u8 = 0xf1;
const REF_BYTES: usize = 1 + 8 + 8 + 32;
const SUFFIX: &str = ".snap";
const PARTIAL_SUFFIX: &str = ".partial";

/// What the Raft log store keeps as a snapshot's data: which file holds
/// the state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SnapshotRef {
    /// The applied index the state is at.
    pub index: LogIndex,
    /// The file's size in bytes.
    pub size: u64,
    /// The state's digest (the file's SHA-256 trailer).
    pub digest: Digest,
}

impl SnapshotRef {
    /// The bytes that stand for this file in a Raft snapshot.
    pub fn encode(&self) -> Bytes {
        let mut out = Vec::with_capacity(REF_BYTES);
        out.put_u8(REF_TAG);
        out.put_u64(self.index.get());
        out.put_u64(self.size);
        out.put_slice(&self.digest.0);
        out.into()
    }

    /// Reads [`SnapshotRef::encode`]'s bytes.
    pub fn decode(mut data: &[u8]) -> Result<Self, DecodeError> {
        if data.len() != REF_BYTES {
            return Err(DecodeError::invalid("a snapshot reference is 49 bytes"));
        }
        if data.get_u8() != REF_TAG {
            return Err(DecodeError::invalid("not a snapshot reference"));
        }
        let index = LogIndex(data.get_u64());
        let size = data.get_u64();
        let mut digest = [0; 32];
        data.copy_to_slice(&mut digest);
        Ok(Self {
            index,
            size,
            digest: Digest(digest),
        })
    }

    /// Whether `data` is a reference (and not the state itself, as stored
    /// by earlier builds).
    pub fn is_reference(data: &[u8]) -> bool {
        data.first() == Some(&REF_TAG)
    }

    /// The file's name: `<index, 20 digits>-<digest>.snap`.
    pub fn file_name(&self) -> String {
        format!("{:020}-{}{SUFFIX}", self.index.get(), self.digest)
    }
}

/// The `snapshots/` folder of one data directory.
#[derive(Clone, Debug)]
pub struct SnapshotDir {
    path: PathBuf,
}

/// A file being written; it becomes a snapshot file with
/// [`SnapshotDir::commit`] and is deleted if dropped before.
#[derive(Debug)]
pub struct PartialFile {
    /// The open file.
    pub file: File,
    path: PathBuf,
    committed: bool,
}

impl PartialFile {
    /// A writer into the file that syncs its data every
    /// [`SYNC_EVERY_BYTES`], so the final sync at [`SnapshotDir::commit`]
    /// is short: other fsyncs on the disk (the Raft log's) never wait behind
    /// a gigabyte of dirty pages written at once.
    pub fn paced(&self) -> PacedWriter<'_> {
        PacedWriter {
            file: &self.file,
            unsynced: 0,
        }
    }
}

/// Bytes written to a snapshot file between two syncs of its data.
pub const SYNC_EVERY_BYTES: u64 = 16 << 20;

/// See [`PartialFile::paced`].
pub struct PacedWriter<'a> {
    file: &'a File,
    unsynced: u64,
}

impl Write for PacedWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = (&mut &*self.file).write(buf)?;
        self.unsynced += n as u64;
        if self.unsynced >= SYNC_EVERY_BYTES {
            self.file.sync_data()?;
            self.unsynced = 0;
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        (&mut &*self.file).flush()
    }
}

impl Drop for PartialFile {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_file(&self.path);
        }
    }
}

impl SnapshotDir {
    /// The folder under `data_dir`, created if missing; partial files left
    /// by a crash are deleted.
    pub fn open(data_dir: &Path) -> io::Result<Self> {
        let path = data_dir.join(SNAPSHOT_FOLDER);
        fs::create_dir_all(&path)?;
        let dir = Self { path };
        for entry in fs::read_dir(&dir.path)? {
            let entry = entry?;
            if entry
                .file_name()
                .to_string_lossy()
                .ends_with(PARTIAL_SUFFIX)
            {
                fs::remove_file(entry.path())?;
            }
        }
        Ok(dir)
    }

    /// Where the file of `snapshot` is.
    pub fn path_of(&self, snapshot: &SnapshotRef) -> PathBuf {
        self.path.join(snapshot.file_name())
    }

    /// A new partial file to write a snapshot into.
    pub fn create_partial(&self) -> io::Result<PartialFile> {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "{}-{}{PARTIAL_SUFFIX}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        );
        let path = self.path.join(name);
        let file = File::options().write(true).create_new(true).open(&path)?;
        Ok(PartialFile {
            file,
            path,
            committed: false,
        })
    }

    /// Makes `partial` the durable file of `snapshot`: syncs it, renames it
    /// and syncs the folder.
    pub fn commit(&self, mut partial: PartialFile, snapshot: &SnapshotRef) -> io::Result<PathBuf> {
        partial.file.flush()?;
        partial.file.sync_all()?;
        let path = self.path_of(snapshot);
        fs::rename(&partial.path, &path)?;
        partial.committed = true;
        File::open(&self.path)?.sync_all()?;
        Ok(path)
    }

    /// Deletes the files of snapshots before `index`. Returns how many.
    pub fn remove_before(&self, index: LogIndex) -> io::Result<usize> {
        let mut removed = 0;
        for entry in fs::read_dir(&self.path)? {
            let entry = entry?;
            let name = entry.file_name();
            let Some(file_index) = snapshot_index_of(&name.to_string_lossy()) else {
                continue;
            };
            if file_index < index {
                fs::remove_file(entry.path())?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Deletes the file of `snapshot`, if it is there.
    pub fn remove(&self, snapshot: &SnapshotRef) -> io::Result<()> {
        match fs::remove_file(self.path_of(snapshot)) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
            _ => Ok(()),
        }
    }
}

/// The index in a snapshot file's name, if it is one.
fn snapshot_index_of(name: &str) -> Option<LogIndex> {
    let stem = name.strip_suffix(SUFFIX)?;
    let (index, _digest) = stem.split_once('-')?;
    index.parse().ok().map(LogIndex)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(index: u64) -> SnapshotRef {
        SnapshotRef {
            index: LogIndex(index),
            size: 1234,
            digest: Digest([7; 32]),
        }
    }

    #[test]
    fn a_reference_round_trips_and_is_told_from_inline_state() {
        let original = reference(42);
        let bytes = original.encode();
        assert!(SnapshotRef::is_reference(&bytes));
        assert!(!SnapshotRef::is_reference(&[2, 0, 0]));
        assert_eq!(SnapshotRef::decode(&bytes), Ok(original));
        assert!(SnapshotRef::decode(&bytes[..10]).is_err());
        assert!(SnapshotRef::decode(&[2; REF_BYTES]).is_err());
    }

    #[test]
    fn older_snapshots_and_partial_files_are_removed() {
        let data = tempfile::tempdir().unwrap();
        let dir = SnapshotDir::open(data.path()).unwrap();
        for index in [5, 9, 12] {
            let mut partial = dir.create_partial().unwrap();
            partial.file.write_all(b"state").unwrap();
            dir.commit(partial, &reference(index)).unwrap();
        }
        let mut left = dir.create_partial().unwrap();
        left.file.write_all(b"half").unwrap();
        std::mem::forget(left); // as a crash would leave it
        assert_eq!(dir.remove_before(LogIndex(9)).unwrap(), 1);
        assert!(!dir.path_of(&reference(5)).exists());
        assert!(dir.path_of(&reference(9)).exists());
        let reopened = SnapshotDir::open(data.path()).unwrap();
        let names: Vec<String> = fs::read_dir(&reopened.path)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        assert!(names.iter().all(|n| n.ends_with(SUFFIX)));
    }

    #[test]
    fn a_partial_file_dropped_before_commit_is_deleted() {
        let data = tempfile::tempdir().unwrap();
        let dir = SnapshotDir::open(data.path()).unwrap();
        let partial = dir.create_partial().unwrap();
        let path = partial.path.clone();
        drop(partial);
        assert!(!path.exists());
    }
}
