//! Reading the log files of any node of the cluster through its daemon, so
//! that `oxray logs` and the dashboard see the workers of other hosts too.

use oxray_common::{Error, Result};
use oxray_proto::{Body, ListLogFiles, LogChunk, LogFile, ReadLogFile};

use crate::core::CoreWorker;

impl CoreWorker {
    /// The log files of the node whose daemon is at `node_address` (empty:
    /// this process's node).
    pub fn node_log_files(&self, node_address: &str) -> Result<Vec<LogFile>> {
        match self.call_node(node_address, Body::ListLogFiles(ListLogFiles {}))? {
            Body::LogFileList(l) => Ok(l.files),
            other => Err(crate::core::unexpected(other)),
        }
    }

    /// Up to `length` bytes of the node's log file `name` from `offset`
    /// (the daemon caps one read at 4 MiB), with the file's size and inode.
    pub fn read_node_log(
        &self,
        node_address: &str,
        name: &str,
        offset: u64,
        length: u64,
    ) -> Result<LogChunk> {
        let body = Body::ReadLogFile(ReadLogFile {
            name: name.to_string(),
            offset,
            length,
        });
        match self.call_node(node_address, body) {
            Ok(Body::LogChunk(c)) => Ok(c),
            // The daemon refuses a name that is not one of its log files.
            Err(Error::Rejected(message)) => Err(Error::InvalidArgument(message)),
            Ok(other) => Err(crate::core::unexpected(other)),
            Err(e) => Err(e),
        }
    }
}
