//! The FUSE side: a passthrough to a backing directory, by path, with an
//! undo record per file for what was written since its last fsync, and a
//! journal of directory entries changed (create, mkdir, rename, unlink,
//! rmdir) since their directories' last fsync.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::os::unix::fs::MetadataExt;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use std::time::SystemTime;

use fuser::Errno;
use fuser::FileAttr;
use fuser::FileHandle;
use fuser::FileType;
use fuser::Filesystem;
use fuser::FopenFlags;
use fuser::Generation;
use fuser::INodeNo;
use fuser::LockOwner;
use fuser::OpenFlags;
use fuser::RenameFlags;
use fuser::ReplyAttr;
use fuser::ReplyCreate;
use fuser::ReplyData;
use fuser::ReplyDirectory;
use fuser::ReplyEmpty;
use fuser::ReplyEntry;
use fuser::ReplyOpen;
use fuser::ReplyStatfs;
use fuser::ReplyWrite;
use fuser::Request;
use fuser::TimeOrNow;
use fuser::WriteFlags;
use parking_lot::Mutex;

use super::entries::Change;
use super::entries::Entries;
use super::entries::Name;
use super::undo::Undo;

/// No attribute or entry caching in the kernel: the test rewrites files
/// underneath on a power cut, and every stat must see that.
const TTL: Duration = Duration::ZERO;

/// Everything the mount knows, shared with the test's handle.
#[derive(Default)]
pub(super) struct Inner {
    /// Inode numbers to paths under the backing root ("" is the root).
    paths: HashMap<u64, PathBuf>,
    inodes: HashMap<PathBuf, u64>,
    next_inode: u64,
    /// Open files by handle.
    files: HashMap<u64, File>,
    next_handle: u64,
    /// Undo records of files written since their last fsync, by inode.
    pub(super) unsynced: HashMap<u64, Undo>,
    /// Directory entries changed since their directories were synced.
    entries: Entries,
    /// Beside the backing root: hard links that keep removed or replaced
    /// files until their removal is durable.
    kept_dir: PathBuf,
    /// Fsyncs and fdatasyncs seen, for the test's report.
    pub(super) syncs: u64,
    /// Directory fsyncs seen.
    pub(super) dir_syncs: u64,
}

impl Inner {
    /// A mount that knows its root, keeping removed files in `kept_dir`.
    pub(super) fn new(kept_dir: PathBuf) -> Inner {
        let mut inner = Inner {
            kept_dir,
            ..Inner::default()
        };
        inner.paths.insert(INodeNo::ROOT.0, PathBuf::new());
        inner.inodes.insert(PathBuf::new(), INodeNo::ROOT.0);
        inner.next_inode = INodeNo::ROOT.0;
        inner
    }

    pub(super) fn path_of(&self, inode: u64) -> Option<&PathBuf> {
        self.paths.get(&inode)
    }

    fn inode_for(&mut self, path: PathBuf) -> u64 {
        if let Some(inode) = self.inodes.get(&path) {
            return *inode;
        }
        self.next_inode += 1;
        let inode = self.next_inode;
        self.inodes.insert(path.clone(), inode);
        self.paths.insert(inode, path);
        inode
    }

    fn forget_path(&mut self, path: &Path) {
        if let Some(inode) = self.inodes.remove(path) {
            self.paths.remove(&inode);
            self.unsynced.remove(&inode);
        }
    }

    /// Forgets `path` and everything under it.
    fn forget_tree(&mut self, path: &Path) {
        let under: Vec<PathBuf> = self
            .inodes
            .keys()
            .filter(|known| known.starts_with(path))
            .cloned()
            .collect();
        for known in under {
            self.forget_path(&known);
        }
    }

    /// The path of `name` as its directory is now called.
    fn path_of_name(&self, name: &Name) -> Option<PathBuf> {
        self.path_of(name.dir).map(|dir| dir.join(&name.name))
    }

    /// Keeps a hard link to the file at `backing`, for an undo.
    fn keep(&mut self, backing: &Path) -> std::io::Result<PathBuf> {
        let link = self.kept_dir.join(self.entries.link_name());
        std::fs::hard_link(backing, &link)?;
        Ok(link)
    }

    /// `dir` was synced: drops the links of changes now durable.
    fn synced_dir(&mut self, dir: u64) -> std::io::Result<()> {
        self.dir_syncs += 1;
        for change in self.entries.synced(dir) {
            for link in change.links() {
                std::fs::remove_file(link)?;
            }
        }
        Ok(())
    }

    /// Undoes every directory change not yet durable, newest first, in the
    /// backing directory `root`. Returns how many it undid.
    pub(super) fn undo_entries(&mut self, root: &Path) -> std::io::Result<usize> {
        let changes = self.entries.take_unsettled();
        let undone = changes.len();
        for change in changes {
            self.undo(root, change)?;
        }
        Ok(undone)
    }

    fn undo(&mut self, root: &Path, change: Change) -> std::io::Result<()> {
        match change {
            Change::Created(name) => {
                let Some(path) = self.path_of_name(&name) else {
                    return Ok(());
                };
                let backing = root.join(&path);
                let removed = match std::fs::symlink_metadata(&backing) {
                    Ok(metadata) if metadata.is_dir() => std::fs::remove_dir_all(&backing),
                    Ok(_) => std::fs::remove_file(&backing),
                    Err(error) => Err(error),
                };
                self.forget_tree(&path);
                ignore_missing(removed)
            }
            Change::Renamed { from, to, replaced } => {
                let (Some(from), Some(to)) = (self.path_of_name(&from), self.path_of_name(&to))
                else {
                    return Ok(());
                };
                ignore_missing(std::fs::rename(root.join(&to), root.join(&from)))?;
                self.rename_paths(&to, &from);
                match replaced {
                    Some(link) => std::fs::rename(link, root.join(&to)),
                    None => Ok(()),
                }
            }
            Change::Removed { name, kept } => {
                let Some(path) = self.path_of_name(&name) else {
                    return Ok(());
                };
                match kept {
                    Some(link) => std::fs::rename(link, root.join(path)),
                    None => ignore_exists(std::fs::create_dir(root.join(path))),
                }
            }
        }
    }
    /// Moves `from` (and, for a directory, everything under it) to `to`,
    /// keeping inode numbers.
    fn rename_paths(&mut self, from: &Path, to: &Path) {
        self.forget_path(to);
        let moved: Vec<(PathBuf, u64)> = self
            .inodes
            .iter()
            .filter(|(path, _)| path.starts_with(from))
            .map(|(path, inode)| (path.clone(), *inode))
            .collect();
        for (path, inode) in moved {
            let rest = path.strip_prefix(from).expect("filtered on the prefix");
            // Joining "" would add a trailing slash: a file is not a dir.
            let renamed = if rest.as_os_str().is_empty() {
                to.to_owned()
            } else {
                to.join(rest)
            };
            self.inodes.remove(&path);
            self.inodes.insert(renamed.clone(), inode);
            self.paths.insert(inode, renamed);
        }
    }
}

/// The filesystem the kernel talks to.
pub(super) struct LossyFilesystem {
    pub(super) root: PathBuf,
    pub(super) inner: Arc<Mutex<Inner>>,
}

fn errno(error: std::io::Error) -> Errno {
    Errno::from(error)
}

fn attr_of(inode: u64, metadata: &std::fs::Metadata) -> FileAttr {
    let kind = if metadata.is_dir() {
        FileType::Directory
    } else if metadata.file_type().is_symlink() {
        FileType::Symlink
    } else {
        FileType::RegularFile
    };
    let time = |secs: i64, nanos: i64| {
        SystemTime::UNIX_EPOCH + Duration::new(secs.max(0) as u64, nanos.max(0) as u32)
    };
    FileAttr {
        ino: INodeNo(inode),
        size: metadata.len(),
        blocks: metadata.blocks(),
        atime: time(metadata.atime(), metadata.atime_nsec()),
        mtime: time(metadata.mtime(), metadata.mtime_nsec()),
        ctime: time(metadata.ctime(), metadata.ctime_nsec()),
        crtime: SystemTime::UNIX_EPOCH,
        kind,
        perm: (metadata.mode() & 0o7777) as u16,
        nlink: metadata.nlink() as u32,
        uid: metadata.uid(),
        gid: metadata.gid(),
        rdev: metadata.rdev() as u32,
        blksize: 4096,
        flags: 0,
    }
}

impl LossyFilesystem {
    fn backing(&self, relative: &Path) -> PathBuf {
        self.root.join(relative)
    }

    fn child(&self, parent: INodeNo, name: &OsStr) -> Option<PathBuf> {
        let inner = self.inner.lock();
        inner.path_of(parent.0).map(|path| path.join(name))
    }

    fn entry(&self, relative: PathBuf, reply: ReplyEntry) {
        match std::fs::symlink_metadata(self.backing(&relative)) {
            Ok(metadata) => {
                let inode = self.inner.lock().inode_for(relative);
                reply.entry(&TTL, &attr_of(inode, &metadata), Generation(0));
            }
            Err(error) => reply.error(errno(error)),
        }
    }

    fn attr(&self, inode: u64, reply: ReplyAttr) {
        let path = self.inner.lock().path_of(inode).cloned();
        let Some(path) = path else {
            return reply.error(Errno::ENOENT);
        };
        match std::fs::symlink_metadata(self.backing(&path)) {
            Ok(metadata) => reply.attr(&TTL, &attr_of(inode, &metadata)),
            Err(error) => reply.error(errno(error)),
        }
    }

    /// Removes `name` from `parent` (a file, kept by a hard link until
    /// the removal is durable, or an empty directory) and forgets its inode.
    fn remove(&self, parent: INodeNo, name: &OsStr, is_dir: bool, reply: ReplyEmpty) {
        let Some(path) = self.child(parent, name) else {
            return reply.error(Errno::ENOENT);
        };
        let backing = self.backing(&path);
        let mut inner = self.inner.lock();
        let removed = if is_dir {
            std::fs::remove_dir(&backing).map(|()| None)
        } else {
            inner
                .keep(&backing)
                .and_then(|link| match std::fs::remove_file(&backing) {
                    Ok(()) => Ok(Some(link)),
                    Err(error) => {
                        let _ = std::fs::remove_file(&link);
                        Err(error)
                    }
                })
        };
        match removed {
            Ok(kept) => {
                inner.forget_path(&path);
                let name = Name {
                    dir: parent.0,
                    name: name.to_owned(),
                };
                inner.entries.record(Change::Removed { name, kept });
                reply.ok();
            }
            Err(error) => reply.error(errno(error)),
        }
    }

    /// Opens the backing file of `inode`, read and write whatever the
    /// caller asked (the kernel checks permissions), and keeps it.
    fn open_backing(&self, inode: u64, truncate: bool) -> Result<u64, Errno> {
        let mut inner = self.inner.lock();
        let path = inner.path_of(inode).cloned().ok_or(Errno::ENOENT)?;
        let file = File::options()
            .read(true)
            .write(true)
            .open(self.backing(&path))
            .map_err(errno)?;
        if truncate {
            let len = file.metadata().map_err(errno)?.len();
            let undo = inner
                .unsynced
                .entry(inode)
                .or_insert_with(|| Undo::starting_at(len));
            undo.before_truncate(&file, 0).map_err(errno)?;
            file.set_len(0).map_err(errno)?;
        }
        inner.next_handle += 1;
        let handle = inner.next_handle;
        inner.files.insert(handle, file);
        Ok(handle)
    }
}

impl Filesystem for LossyFilesystem {
    fn lookup(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        match self.child(parent, name) {
            Some(path) => self.entry(path, reply),
            None => reply.error(Errno::ENOENT),
        }
    }

    fn getattr(&self, _req: &Request, ino: INodeNo, _fh: Option<FileHandle>, reply: ReplyAttr) {
        self.attr(ino.0, reply);
    }

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        _uid: Option<u32>,
        _gid: Option<u32>,
        size: Option<u64>,
        _atime: Option<TimeOrNow>,
        _mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        _fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let result = (|| {
            let mut inner = self.inner.lock();
            let path = inner.path_of(ino.0).cloned().ok_or(Errno::ENOENT)?;
            let backing = self.backing(&path);
            if let Some(mode) = mode {
                std::fs::set_permissions(&backing, std::fs::Permissions::from_mode(mode))
                    .map_err(errno)?;
            }
            if let Some(size) = size {
                let file = File::options().write(true).open(&backing).map_err(errno)?;
                let len = file.metadata().map_err(errno)?.len();
                let undo = inner
                    .unsynced
                    .entry(ino.0)
                    .or_insert_with(|| Undo::starting_at(len));
                undo.before_truncate(&file, size).map_err(errno)?;
                file.set_len(size).map_err(errno)?;
            }
            Ok(())
        })();
        match result {
            Ok(()) => self.attr(ino.0, reply),
            Err(error) => reply.error(error),
        }
    }

    fn mkdir(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        reply: ReplyEntry,
    ) {
        let Some(path) = self.child(parent, name) else {
            return reply.error(Errno::ENOENT);
        };
        let backing = self.backing(&path);
        match std::fs::create_dir(&backing)
            .and_then(|()| std::fs::set_permissions(&backing, PermissionsExt::from_mode(mode)))
        {
            Ok(()) => {
                self.inner.lock().entries.record(Change::Created(Name {
                    dir: parent.0,
                    name: name.to_owned(),
                }));
                self.entry(path, reply)
            }
            Err(error) => reply.error(errno(error)),
        }
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.remove(parent, name, false, reply);
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        self.remove(parent, name, true, reply);
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        if !flags.is_empty() {
            return reply.error(Errno::EINVAL);
        }
        let (Some(from), Some(to)) = (self.child(parent, name), self.child(newparent, newname))
        else {
            return reply.error(Errno::ENOENT);
        };
        let mut inner = self.inner.lock();
        // A file the rename replaces is kept until the rename is durable.
        let replaced = match std::fs::symlink_metadata(self.backing(&to)) {
            Ok(metadata) if !metadata.is_dir() => match inner.keep(&self.backing(&to)) {
                Ok(link) => Some(link),
                Err(error) => return reply.error(errno(error)),
            },
            _ => None,
        };
        match std::fs::rename(self.backing(&from), self.backing(&to)) {
            Ok(()) => {
                inner.rename_paths(&from, &to);
                inner.entries.record(Change::Renamed {
                    from: Name {
                        dir: parent.0,
                        name: name.to_owned(),
                    },
                    to: Name {
                        dir: newparent.0,
                        name: newname.to_owned(),
                    },
                    replaced,
                });
                reply.ok();
            }
            Err(error) => {
                if let Some(link) = replaced {
                    let _ = std::fs::remove_file(link);
                }
                reply.error(errno(error))
            }
        }
    }

    fn open(&self, _req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let truncate = flags.0 & nix::libc::O_TRUNC != 0;
        match self.open_backing(ino.0, truncate) {
            Ok(handle) => reply.opened(FileHandle(handle), FopenFlags::empty()),
            Err(error) => reply.error(error),
        }
    }

    fn create(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        _umask: u32,
        flags: i32,
        reply: ReplyCreate,
    ) {
        let Some(path) = self.child(parent, name) else {
            return reply.error(Errno::ENOENT);
        };
        let backing = self.backing(&path);
        let existed = backing.exists();
        let made = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&backing)
            .and_then(|file| {
                file.set_permissions(PermissionsExt::from_mode(mode))?;
                file.metadata()
            });
        let metadata = match made {
            Ok(metadata) => metadata,
            Err(error) => return reply.error(errno(error)),
        };
        let inode = {
            let mut inner = self.inner.lock();
            if !existed {
                inner.entries.record(Change::Created(Name {
                    dir: parent.0,
                    name: name.to_owned(),
                }));
            }
            inner.inode_for(path)
        };
        match self.open_backing(inode, flags & nix::libc::O_TRUNC != 0) {
            Ok(handle) => reply.created(
                &TTL,
                &attr_of(inode, &metadata),
                Generation(0),
                FileHandle(handle),
                FopenFlags::empty(),
            ),
            Err(error) => reply.error(error),
        }
    }

    fn read(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        let inner = self.inner.lock();
        let Some(file) = inner.files.get(&fh.0) else {
            return reply.error(Errno::EBADF);
        };
        let mut bytes = vec![0; size as usize];
        let mut got = 0;
        while got < bytes.len() {
            match file.read_at(&mut bytes[got..], offset + got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(error) => return reply.error(errno(error)),
            }
        }
        reply.data(&bytes[..got]);
    }

    fn write(
        &self,
        _req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        let mut inner = self.inner.lock();
        let Inner {
            files, unsynced, ..
        } = &mut *inner;
        let Some(file) = files.get(&fh.0) else {
            return reply.error(Errno::EBADF);
        };
        let result = file.metadata().and_then(|metadata| {
            let undo = unsynced
                .entry(ino.0)
                .or_insert_with(|| Undo::starting_at(metadata.len()));
            undo.before_write(file, offset, data.len() as u64)?;
            file.write_all_at(data, offset)
        });
        match result {
            Ok(()) => reply.written(data.len() as u32),
            Err(error) => reply.error(errno(error)),
        }
    }

    fn flush(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _lock_owner: LockOwner,
        reply: ReplyEmpty,
    ) {
        // close() is not a sync: what was written stays unsynced.
        reply.ok();
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.inner.lock().files.remove(&fh.0);
        reply.ok();
    }

    fn fsync(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        // The content as it is now is what survives a power cut. (The
        // backing file is not synced: the machine does not lose power, the
        // test does, by undoing.)
        let mut inner = self.inner.lock();
        inner.unsynced.remove(&ino.0);
        inner.syncs += 1;
        reply.ok();
    }

    fn readdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        let path = self.inner.lock().path_of(ino.0).cloned();
        let Some(path) = path else {
            return reply.error(Errno::ENOENT);
        };
        let entries = match std::fs::read_dir(self.backing(&path)) {
            Ok(entries) => entries,
            Err(error) => return reply.error(errno(error)),
        };
        let mut listed: Vec<(u64, FileType, std::ffi::OsString)> = vec![
            (ino.0, FileType::Directory, ".".into()),
            (ino.0, FileType::Directory, "..".into()),
        ];
        for entry in entries.flatten() {
            let kind = match entry.file_type() {
                Ok(kind) if kind.is_dir() => FileType::Directory,
                _ => FileType::RegularFile,
            };
            let inode = self.inner.lock().inode_for(path.join(entry.file_name()));
            listed.push((inode, kind, entry.file_name()));
        }
        for (n, (inode, kind, name)) in listed.into_iter().enumerate().skip(offset as usize) {
            if reply.add(INodeNo(inode), (n + 1) as u64, kind, name) {
                break;
            }
        }
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        // The directory's entries as they are now survive a power cut.
        match self.inner.lock().synced_dir(ino.0) {
            Ok(()) => reply.ok(),
            Err(error) => reply.error(errno(error)),
        }
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        match nix::sys::statvfs::statvfs(&self.root) {
            Ok(stat) => reply.statfs(
                stat.blocks(),
                stat.blocks_free(),
                stat.blocks_available(),
                stat.files(),
                stat.files_free(),
                stat.block_size() as u32,
                stat.name_max() as u32,
                stat.fragment_size() as u32,
            ),
            Err(error) => reply.error(Errno::from_i32(error as i32)),
        }
    }

    fn access(&self, _req: &Request, _ino: INodeNo, _mask: fuser::AccessFlags, reply: ReplyEmpty) {
        reply.ok();
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        length: u64,
        mode: i32,
        reply: ReplyEmpty,
    ) {
        let inner = self.inner.lock();
        let Some(file) = inner.files.get(&fh.0) else {
            return reply.error(Errno::EBADF);
        };
        // Only space reservation (RocksDB keeps the size): the content does
        // not change, so there is nothing to undo.
        if mode & !nix::libc::FALLOC_FL_KEEP_SIZE != 0 {
            return reply.error(Errno::EOPNOTSUPP);
        }
        let flags = nix::fcntl::FallocateFlags::from_bits_truncate(mode);
        match nix::fcntl::fallocate(file, flags, offset as i64, length as i64) {
            Ok(()) => reply.ok(),
            Err(error) => reply.error(Errno::from_i32(error as i32)),
        }
    }
}

fn ignore_missing(result: std::io::Result<()>) -> std::io::Result<()> {
    match result {
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(()),
        other => other,
    }
}

fn ignore_exists(result: std::io::Result<()>) -> std::io::Result<()> {
    match result {
        Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => Ok(()),
        other => other,
    }
}
