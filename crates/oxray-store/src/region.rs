//! The shared-memory file that holds a node's objects, mapped once per
//! process.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};

use memmap2::{MmapOptions, MmapRaw};

/// A shared mapping of the node's store file.
pub struct Region {
    map: MmapRaw,
    path: PathBuf,
    capacity: u64,
}

// SAFETY: the mapping is plain shared memory; the store's protocol (write
// before seal, read after) keeps concurrent users off each other's bytes.
unsafe impl Send for Region {}
unsafe impl Sync for Region {}

impl Region {
    /// Creates the store file of `capacity` bytes (sparse: memory is used
    /// only as objects are written) and maps it.
    /// Only its user may read or write it (mode 0600).
    pub fn create(path: &Path, capacity: u64) -> std::io::Result<Self> {
        use std::os::unix::fs::OpenOptionsExt;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)?;
        file.set_len(capacity)?;
        Self::map(file, path, capacity)
    }

    /// Maps an existing store file.
    pub fn open(path: &Path) -> std::io::Result<Self> {
        let file = OpenOptions::new().read(true).write(true).open(path)?;
        let capacity = file.metadata()?.len();
        Self::map(file, path, capacity)
    }

    fn map(file: File, path: &Path, capacity: u64) -> std::io::Result<Self> {
        let map = if capacity == 0 {
            MmapOptions::new().len(1).map_anon().map(MmapRaw::from)?
        } else {
            MmapOptions::new().len(capacity as usize).map_raw(&file)?
        };
        Ok(Self {
            map,
            path: path.to_path_buf(),
            capacity,
        })
    }

    /// The file's size.
    pub fn capacity(&self) -> u64 {
        self.capacity
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn check(&self, offset: u64, len: u64) {
        assert!(
            offset
                .checked_add(len)
                .is_some_and(|end| end <= self.capacity),
            "range outside the region"
        );
    }

    /// The bytes at `offset..offset+len`.
    ///
    /// # Safety
    /// Nobody may write the range while the slice lives (the object is
    /// sealed, and pinned so that it is not freed and reused).
    pub unsafe fn slice(&self, offset: u64, len: u64) -> &[u8] {
        self.check(offset, len);
        std::slice::from_raw_parts(self.map.as_ptr().add(offset as usize), len as usize)
    }

    /// The bytes at `offset..offset+len`, to write.
    ///
    /// # Safety
    /// The caller must own the range exclusively (allocated to it and not
    /// yet sealed).
    #[allow(clippy::mut_from_ref)]
    pub unsafe fn slice_mut(&self, offset: u64, len: u64) -> &mut [u8] {
        self.check(offset, len);
        std::slice::from_raw_parts_mut(self.map.as_mut_ptr().add(offset as usize), len as usize)
    }

    /// Faults the range's pages in ahead of a write, in one call instead of
    /// one fault per page. Best effort.
    pub fn populate(&self, offset: u64, len: u64) {
        self.check(offset, len);
        let page = 4096u64;
        let start = offset / page * page;
        let end = (offset + len).div_ceil(page) * page;
        let end = end.min(self.capacity.div_ceil(page) * page);
        // SAFETY: the range lies inside our mapping; MADV_POPULATE_WRITE only
        // faults pages in and never changes their contents.
        unsafe {
            libc::madvise(
                self.map.as_mut_ptr().add(start as usize) as *mut libc::c_void,
                (end - start) as usize,
                libc::MADV_POPULATE_WRITE,
            );
        }
    }

    /// Removes the file (the mapping stays valid until dropped).
    pub fn unlink(&self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_mappings_share_bytes() {
        let path = std::env::temp_dir().join(format!("oxray-region-test-{}", std::process::id()));
        let _ = std::fs::remove_file(&path);
        let a = Region::create(&path, 1 << 20).unwrap();
        let b = Region::open(&path).unwrap();
        assert_eq!(b.capacity(), 1 << 20);
        a.populate(4096, 8192);
        unsafe {
            a.slice_mut(4096, 5).copy_from_slice(b"hello");
            assert_eq!(b.slice(4096, 5), b"hello");
        }
        a.unlink();
        assert!(!path.exists());
    }
}
