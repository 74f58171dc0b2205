//! The node's log files, served to readers on other hosts (`oxray logs`,
//! `ray.util.state.get_log`, the dashboard): the files its workers write in
//! `<session_dir>/logs/` and the daemon's own `daemon.out` / `daemon.err`.
//!
//! Readers name files, never paths: a name is looked up in these two places
//! only, and only plain files with one link are listed or read (no symbolic
//! link, hard link, FIFO or device), so a connection (already
//! token-checked) reads nothing else of the host, and no read blocks. A read returns at most [`MAX_READ`] bytes, so a reply stays a small
//! frame however large the file; readers page through bigger files.

use std::fs::OpenOptions;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use oxray_proto::{LogChunk, LogFile};

/// The most bytes one read returns.
pub const MAX_READ: u64 = 4 << 20;

/// The daemon's own output, kept in the session directory itself.
const DAEMON_FILES: [&str; 2] = ["daemon.out", "daemon.err"];

/// Why a log file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum LogFileError {
    /// The name is a path, hidden, or empty.
    #[error("{0:?} is not a log file name: give a name as the node lists them, not a path")]
    NotAName(String),
    /// No such log file on this node (or not a plain file).
    #[error("no log file {name:?} on this node (list them with `oxray logs`)")]
    Missing {
        /// The name asked for.
        name: String,
    },
    /// The file exists but reading it failed.
    #[error("cannot read log file {name:?}: {source}")]
    Io {
        /// The name asked for.
        name: String,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
}

/// The log files of one node's session directory.
#[derive(Debug, Clone)]
pub struct LogFiles {
    session_dir: PathBuf,
}

impl LogFiles {
    /// The log files under `session_dir`.
    pub fn new(session_dir: &Path) -> Self {
        Self {
            session_dir: session_dir.to_path_buf(),
        }
    }

    fn logs_dir(&self) -> PathBuf {
        self.session_dir.join("logs")
    }

    /// Every log file there is now (workers' first, then the daemon's).
    pub fn list(&self) -> Vec<LogFile> {
        let mut out = Vec::new();
        if let Ok(entries) = std::fs::read_dir(self.logs_dir()) {
            for entry in entries.flatten() {
                // A daemon file's name always means the session directory's.
                match entry.file_name().to_str() {
                    Some(name) if !DAEMON_FILES.contains(&name) => {
                        out.extend(describe(name, &entry.path()));
                    }
                    _ => {}
                }
            }
        }
        for name in DAEMON_FILES {
            out.extend(describe(name, &self.session_dir.join(name)));
        }
        out
    }

    /// Where the file `name` is; an error for a name that is a path.
    fn path_of(&self, name: &str) -> Result<PathBuf, LogFileError> {
        let plain = !name.is_empty()
            && !name.starts_with('.')
            && !name.contains('/')
            && !name.contains('\0');
        if !plain {
            return Err(LogFileError::NotAName(name.to_string()));
        }
        if DAEMON_FILES.contains(&name) {
            Ok(self.session_dir.join(name))
        } else {
            Ok(self.logs_dir().join(name))
        }
    }

    /// Up to `length` bytes (at most [`MAX_READ`]) of the file `name` from
    /// `offset`, with the file's size and inode.
    pub fn read(&self, name: &str, offset: u64, length: u64) -> Result<LogChunk, LogFileError> {
        let path = self.path_of(name)?;
        let io = |source: std::io::Error| {
            // A link refused by O_NOFOLLOW (ELOOP) is no log file either.
            let link = source.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error());
            if source.kind() == std::io::ErrorKind::NotFound || link {
                LogFileError::Missing {
                    name: name.to_string(),
                }
            } else {
                LogFileError::Io {
                    name: name.to_string(),
                    source,
                }
            }
        };
        // No link is followed, and opening a FIFO does not wait for a writer.
        let flags = rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK;
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(flags.bits() as i32)
            .open(&path)
            .map_err(io)?;
        let meta = file.metadata().map_err(io)?;
        if !plain_file(&meta) {
            return Err(LogFileError::Missing {
                name: name.to_string(),
            });
        }
        let want = length.min(MAX_READ).min(meta.len().saturating_sub(offset));
        let mut data = vec![0u8; want as usize];
        let mut got = 0usize;
        // The file may shrink meanwhile (rotation): return what was there.
        while got < data.len() {
            match file.read_at(&mut data[got..], offset + got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io(e)),
            }
        }
        data.truncate(got);
        Ok(LogChunk {
            data,
            size: meta.len(),
            inode: meta.ino(),
            missing: false,
        })
    }
}

/// A regular file with one link: a hard link could name a file outside
/// the logs.
fn plain_file(meta: &std::fs::Metadata) -> bool {
    meta.is_file() && meta.nlink() == 1
}

/// The listing entry of a regular file; None for anything else (a link,
/// a hidden file).
fn describe(name: &str, path: &Path) -> Option<LogFile> {
    let meta = std::fs::symlink_metadata(path).ok()?;
    if !plain_file(&meta) || name.starts_with('.') {
        return None;
    }
    let modified_us = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_micros() as u64);
    Some(LogFile {
        name: name.to_string(),
        size: meta.len(),
        modified_us,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session() -> (tempfile::TempDir, LogFiles) {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("logs")).unwrap();
        std::fs::write(dir.path().join("logs/worker-7.out"), b"hello\nworld\n").unwrap();
        std::fs::write(dir.path().join("daemon.err"), b"daemon says\n").unwrap();
        std::fs::write(dir.path().join("secret"), b"not a log").unwrap();
        std::fs::write(dir.path().join("logs/.hidden"), b"not listed").unwrap();
        std::os::unix::fs::symlink(
            dir.path().join("secret"),
            dir.path().join("logs/worker-9.out"),
        )
        .unwrap();
        std::fs::hard_link(
            dir.path().join("secret"),
            dir.path().join("logs/worker-10.out"),
        )
        .unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            dir.path().join("logs/worker-11.out"),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR,
            0,
        )
        .unwrap();
        let files = LogFiles::new(dir.path());
        (dir, files)
    }

    #[test]
    fn lists_the_workers_and_the_daemons_files_only() {
        let (_dir, files) = session();
        let mut names: Vec<String> = files.list().into_iter().map(|f| f.name).collect();
        names.sort();
        assert_eq!(names, ["daemon.err", "worker-7.out"]);
    }

    #[test]
    fn reads_a_range_and_reports_the_size() {
        let (_dir, files) = session();
        let chunk = files.read("worker-7.out", 6, 100).unwrap();
        assert_eq!(chunk.data, b"world\n");
        assert_eq!(chunk.size, 12);
        assert!(files.read("worker-7.out", 50, 10).unwrap().data.is_empty());
        assert_eq!(files.read("daemon.err", 0, 6).unwrap().data, b"daemon");
    }

    #[test]
    fn refuses_paths_and_files_that_are_not_logs() {
        let (_dir, files) = session();
        for name in [
            "../secret",
            "/etc/passwd",
            "",
            "..",
            ".hidden",
            "logs/worker-7.out",
        ] {
            assert!(
                matches!(files.read(name, 0, 10), Err(LogFileError::NotAName(_))),
                "{name}"
            );
        }
        // Not in the logs directory, a link leading out of it, a FIFO
        // (whose opening must not block).
        for name in ["secret", "worker-9.out", "worker-10.out", "worker-11.out"] {
            assert!(
                matches!(files.read(name, 0, 10), Err(LogFileError::Missing { .. })),
                "{name}"
            );
        }
    }

    #[test]
    fn caps_one_read() {
        let (dir, files) = session();
        let big = vec![b'x'; (MAX_READ + 10) as usize];
        std::fs::write(dir.path().join("logs/worker-8.err"), &big).unwrap();
        let chunk = files.read("worker-8.err", 0, u64::MAX).unwrap();
        assert_eq!(chunk.data.len() as u64, MAX_READ);
        assert_eq!(chunk.size, MAX_READ + 10);
    }
}
