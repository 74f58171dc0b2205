//! Objects written to local disk when memory runs short.

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

    fn path(&self, id: &ObjectId) -> PathBuf {
        self.dir.join(id.hex())
    }

    /// Writes an object's bytes; returns the file written.
    pub fn write(&self, id: &ObjectId, bytes: &[u8]) -> std::io::Result<PathBuf> {
        std::fs::create_dir_all(&self.dir)?;
        let path = self.path(id);
        std::fs::write(&path, bytes)?;
        Ok(path)
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
