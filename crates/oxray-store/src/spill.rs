//! Objects written to local disk when memory runs short, and objects that
//! never fit in memory (fallback allocations, mapped from their file).

use std::io::Read;
use std::path::{Path, PathBuf};

use oxray_common::ObjectId;

/// A directory holding one file per spilled object.
#[derive(Debug)]
pub struct SpillDir {
    dir: PathBuf,
}

impl SpillDir {
    /// Spills go to `dir` (created on first spill).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        Self { dir: dir.into() }
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file holding an object.
    pub fn path(&self, id: &ObjectId) -> PathBuf {
        self.dir.join(id.hex())
    }

    fn create_file(&self, id: &ObjectId) -> std::io::Result<(std::fs::File, PathBuf)> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&self.dir)?;
        let path = self.path(id);
        let file = std::fs::OpenOptions::new()
            .write(true)
            .read(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)?;
        Ok((file, path))
    }

    /// Writes an object's bytes; returns the file written.
    pub fn write(&self, id: &ObjectId, bytes: &[u8]) -> std::io::Result<PathBuf> {
        use std::io::Write;
        let (mut file, path) = self.create_file(id)?;
        if let Err(e) = file.write_all(bytes) {
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        Ok(path)
    }

    /// Creates the file of an object that is to live on disk, `size` bytes
    /// reserved up front: a full disk fails here, not later as a fault in
    /// the process writing through its mapping.
    pub fn reserve(&self, id: &ObjectId, size: u64) -> std::io::Result<PathBuf> {
        let (file, path) = self.create_file(id)?;
        let reserved =
            match rustix::fs::fallocate(&file, rustix::fs::FallocateFlags::empty(), 0, size) {
                Ok(()) => Ok(()),
                // Filesystems without fallocate: a sparse file it is.
                Err(rustix::io::Errno::OPNOTSUPP) => file.set_len(size),
                Err(e) => Err(e.into()),
            };
        if let Err(e) = reserved {
            let _ = std::fs::remove_file(&path);
            return Err(e);
        }
        Ok(path)
    }

    /// Bytes free for unprivileged users on the directory's filesystem
    /// (of its nearest existing ancestor before the first spill).
    pub fn free_bytes(&self) -> Option<u64> {
        let mut dir = self.dir.as_path();
        loop {
            if let Ok(st) = rustix::fs::statvfs(dir) {
                return Some(st.f_bavail.saturating_mul(st.f_frsize));
            }
            dir = dir.parent()?;
        }
    }

    /// Reads an object back into `out`, which must be its exact size.
    pub fn read(&self, id: &ObjectId, out: &mut [u8]) -> std::io::Result<()> {
        let path = self.path(id);
        let mut file = std::fs::File::open(&path)?;
        let len = file.metadata()?.len();
        if len != out.len() as u64 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "spill file {} has {len} bytes, expected {}",
                    path.display(),
                    out.len()
                ),
            ));
        }
        file.read_exact(out)
    }

    /// Deletes an object's file.
    pub fn remove(&self, id: &ObjectId) {
        let _ = std::fs::remove_file(self.path(id));
    }
}
