//! The shared-memory object store of one node.
//!
//! One file in `/dev/shm` holds every large object of the node; each process
//! maps it once ([`Region`]). The node daemon owns the bookkeeping
//! ([`ObjectTable`]): it allocates space ([`Allocator`]), pins objects
//! while processes map them, frees them when their owner drops them, and
//! spills unpinned objects to disk ([`SpillDir`]) when memory runs short.
//! An object that cannot fit in memory at all lives in a file of its own
//! on disk, which processes map instead ([`Slot::File`]).
//! Clients write and read the bytes directly through their own mapping.

pub mod allocator;
pub mod region;
pub mod spill;
pub mod table;

pub use allocator::Allocator;
pub use region::Region;
pub use spill::SpillDir;
pub use table::{ObjectTable, Slot, StoreError, StoreStats};

/// Alignment of every object in the region (a cache line, so numpy arrays
/// are well aligned).
pub const ALIGN: u64 = 64;
