//! The node daemon's bookkeeping of the store: where each object lives,
//! who pins it, and what to spill when memory runs short.

use std::collections::HashMap;
use std::sync::Arc;

use oxray_common::ObjectId;

use crate::allocator::Allocator;
use crate::region::Region;
use crate::spill::SpillDir;

/// Why a store operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The object can never fit.
    #[error(
        "cannot store an object of {size} bytes: it is larger than the whole object store ({capacity} bytes); \
         raise object_store_memory in init()"
    )]
    TooLarge {
        /// The object's size, in bytes.
        size: u64,
        /// The store's, in bytes.
        capacity: u64,
    },
    /// Nothing more can be freed or spilled.
    #[error(
        "the object store is full: {requested} bytes were asked for, {used} of {capacity} bytes are used by \
         {objects} objects, {pinned} bytes of them pinned by processes that hold them; free references \
         (del the ObjectRefs or arrays) or raise object_store_memory"
    )]
    Full {
        /// Bytes asked for.
        requested: u64,
        /// Bytes in use.
        used: u64,
        /// The store's size.
        capacity: u64,
        /// Bytes of objects processes hold (cannot be spilled).
        pinned: u64,
        /// Objects in the store.
        objects: usize,
    },
    /// Memory is full and the object could not go to disk either.
    #[error(
        "cannot store an object of {requested} bytes: the object store's memory is full ({used} of {capacity} \
         bytes used, {pinned} bytes pinned by processes that hold them) and the disk fallback in {dir} failed \
         ({source}; {free} bytes free there); free references (del the ObjectRefs or arrays), free disk space \
         or raise object_store_memory"
    )]
    NoSpace {
        /// Bytes asked for.
        requested: u64,
        /// Bytes in use in memory.
        used: u64,
        /// The store's memory, in bytes.
        capacity: u64,
        /// Bytes of objects processes hold (cannot be spilled).
        pinned: u64,
        /// Where objects go to disk.
        dir: String,
        /// Bytes free on that disk (as far as known).
        free: u64,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
    /// No such object in the store.
    #[error("object {0} is not in this node's object store")]
    NotFound(String),
    /// Spilling to or restoring from disk failed.
    #[error("object {object}: spill file error: {source}")]
    Spill {
        /// The object's id, in hex.
        object: String,
        /// What the OS said.
        #[source]
        source: std::io::Error,
    },
}

enum Location {
    Memory {
        offset: u64,
    },
    /// Written to disk to make room; brought back into memory when read.
    Spilled,
    /// Lives in its file on disk, mapped from there: it did not fit in
    /// memory (Ray's fallback allocation).
    OnDisk,
}

/// Where a client maps an object's bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Slot {
    /// In the node's shared-memory region, at this offset.
    Region(u64),
    /// In a file of its own on disk, from its start.
    File(std::path::PathBuf),
}

struct Entry {
    size: u64,
    location: Location,
    sealed: bool,
    creator: u64,
    /// The owning process's address (empty: unknown, a copy).
    owner: String,
    /// Pins per client connection.
    pins: HashMap<u64, u32>,
    /// The owner dropped its last reference: free once unpinned.
    released: bool,
    last_use: u64,
}

impl Entry {
    fn pinned(&self) -> bool {
        !self.pins.is_empty() || !self.sealed
    }
}

/// Store usage figures.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreStats {
    /// The store's size, in bytes.
    pub capacity: u64,
    /// Bytes allocated in memory.
    pub used: u64,
    /// Objects in memory or spilled.
    pub objects: usize,
    /// Bytes of objects processes hold.
    pub pinned_bytes: u64,
    /// Objects on disk.
    pub spilled_objects: usize,
    /// Their bytes.
    pub spilled_bytes: u64,
}

/// One object as listed by [`ObjectTable::list`].
#[derive(Clone, Debug)]
pub struct ObjectListing {
    /// The object.
    pub id: ObjectId,
    /// Its size, in bytes.
    pub size: u64,
    /// The clients that hold it.
    pub pins: u32,
    /// On disk rather than in memory.
    pub spilled: bool,
    /// Complete (readable).
    pub sealed: bool,
    /// The client connection that created it.
    pub creator: u64,
    /// Its owner's address (empty: not recorded).
    pub owner: String,
}

/// Every object of the node's store.
pub struct ObjectTable {
    region: Arc<Region>,
    alloc: Allocator,
    spill: SpillDir,
    entries: HashMap<ObjectId, Entry>,
    clock: u64,
}

impl ObjectTable {
    /// A table over `region`, spilling into `spill`.
    pub fn new(region: Arc<Region>, spill: SpillDir) -> Self {
        let alloc = Allocator::new(region.capacity());
        Self {
            region,
            alloc,
            spill,
            entries: HashMap::new(),
            clock: 0,
        }
    }

    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    /// Reserves `size` bytes for a new object written by `client`; returns
    /// where to write it. The object stays pinned until sealed. An object
    /// that already exists sealed is reported as `Ok(None)`: objects are
    /// immutable, the first copy stands.
    ///
    /// Memory is made by spilling unpinned objects; an object that does not
    /// fit even so (larger than the store, or everything pinned) lives in a
    /// file on disk instead, so a put fails only when the disk is full too.
    pub fn create(
        &mut self,
        id: ObjectId,
        size: u64,
        client: u64,
        owner: &str,
    ) -> Result<Option<Slot>, StoreError> {
        if self.take_over(&id) {
            return Ok(None);
        }
        let (location, slot) = match self.allocate(size) {
            Ok(offset) => (Location::Memory { offset }, Slot::Region(offset)),
            Err(StoreError::TooLarge { .. } | StoreError::Full { .. }) => {
                let path = self
                    .spill
                    .reserve(&id, size)
                    .map_err(|source| self.no_space(size, source))?;
                (Location::OnDisk, Slot::File(path))
            }
            Err(e) => return Err(e),
        };
        self.insert(id, size, client, owner, location);
        Ok(Some(slot))
    }

    /// [`ObjectTable::create`] when it needs no disk: `None` (and nothing
    /// done) when room would have to be made by spilling, or the object
    /// go to a file. The caller then runs `create` where blocking on the
    /// disk stalls nobody.
    pub fn create_in_memory(
        &mut self,
        id: ObjectId,
        size: u64,
        client: u64,
        owner: &str,
    ) -> Option<Result<Option<Slot>, StoreError>> {
        if self.entries.get(&id).is_some_and(|e| e.sealed) {
            return Some(Ok(None));
        }
        if Allocator::footprint(size) > self.alloc.capacity() {
            return None;
        }
        let offset = self.alloc.allocate(size)?;
        if self.take_over(&id) {
            self.alloc.free(offset, size);
            return Some(Ok(None));
        }
        self.insert(id, size, client, owner, Location::Memory { offset });
        Some(Ok(Some(Slot::Region(offset))))
    }

    /// Before a create: true when `id` exists sealed (the first copy
    /// stands); an unsealed one (a writer that gave up) is dropped.
    fn take_over(&mut self, id: &ObjectId) -> bool {
        match self.entries.get(id) {
            Some(e) if e.sealed => true,
            Some(_) => {
                self.remove(id);
                false
            }
            None => false,
        }
    }

    fn insert(&mut self, id: ObjectId, size: u64, client: u64, owner: &str, location: Location) {
        let last_use = self.tick();
        self.entries.insert(
            id,
            Entry {
                size,
                location,
                sealed: false,
                creator: client,
                owner: owner.to_string(),
                pins: HashMap::new(),
                released: false,
                last_use,
            },
        );
    }

    fn no_space(&self, requested: u64, source: std::io::Error) -> StoreError {
        let stats = self.stats();
        StoreError::NoSpace {
            requested,
            used: stats.used,
            capacity: stats.capacity,
            pinned: stats.pinned_bytes,
            dir: self.spill.dir().display().to_string(),
            free: self.spill.free_bytes().unwrap_or(0),
            source,
        }
    }

    /// Finds room for `size` bytes, spilling unpinned objects (least
    /// recently used first) until it fits.
    fn allocate(&mut self, size: u64) -> Result<u64, StoreError> {
        if Allocator::footprint(size) > self.alloc.capacity() {
            return Err(StoreError::TooLarge {
                size,
                capacity: self.alloc.capacity(),
            });
        }
        loop {
            if let Some(offset) = self.alloc.allocate(size) {
                return Ok(offset);
            }
            let victim = self
                .entries
                .iter()
                .filter(|(_, e)| !e.pinned() && matches!(e.location, Location::Memory { .. }))
                .min_by_key(|(_, e)| e.last_use)
                .map(|(id, _)| *id);
            match victim {
                Some(id) => self.spill_out(&id)?,
                None => {
                    let stats = self.stats();
                    return Err(StoreError::Full {
                        requested: size,
                        used: stats.used,
                        capacity: stats.capacity,
                        pinned: stats.pinned_bytes,
                        objects: stats.objects,
                    });
                }
            }
        }
    }

    fn spill_out(&mut self, id: &ObjectId) -> Result<(), StoreError> {
        let e = self.entries.get_mut(id).expect("victim exists");
        let Location::Memory { offset } = e.location else {
            return Ok(());
        };
        // SAFETY: the object is sealed and unpinned: nobody writes it.
        let bytes = unsafe { self.region.slice(offset, e.size) };
        self.spill
            .write(id, bytes)
            .map_err(|source| StoreError::Spill {
                object: id.hex(),
                source,
            })?;
        e.location = Location::Spilled;
        let size = e.size;
        self.alloc.free(offset, size);
        Ok(())
    }

    /// Marks an object complete; its creator's write pin goes.
    pub fn seal(&mut self, id: &ObjectId) {
        if let Some(e) = self.entries.get_mut(id) {
            e.sealed = true;
        }
        self.maybe_free(id);
    }

    /// [`ObjectTable::get`] when it needs no disk: `None` (and nothing
    /// done) for a spilled object, which the caller then gets where
    /// blocking on the disk stalls nobody.
    pub fn get_in_memory(
        &mut self,
        id: &ObjectId,
        client: u64,
    ) -> Option<Result<(Slot, u64), StoreError>> {
        let spilled = self
            .entries
            .get(id)
            .is_some_and(|e| matches!(e.location, Location::Spilled));
        (!spilled).then(|| self.get(id, client))
    }

    /// Pins an object for `client` and returns where it is and its size,
    /// restoring it from disk first if it was spilled (or mapping it from
    /// its spill file, when memory cannot take it back now).
    pub fn get(&mut self, id: &ObjectId, client: u64) -> Result<(Slot, u64), StoreError> {
        let e = self
            .entries
            .get(id)
            .ok_or_else(|| StoreError::NotFound(id.hex()))?;
        if !e.sealed {
            return Err(StoreError::NotFound(id.hex()));
        }
        if let Location::Spilled = e.location {
            let size = e.size;
            // Pin while restoring so the allocation cannot pick it.
            self.entries
                .get_mut(id)
                .expect("present")
                .pins
                .insert(u64::MAX, 1);
            let restored = self.allocate(size);
            self.entries
                .get_mut(id)
                .expect("present")
                .pins
                .remove(&u64::MAX);
            let offset = match restored {
                Ok(offset) => Some(offset),
                Err(StoreError::Full { .. } | StoreError::TooLarge { .. }) => None,
                Err(e) => return Err(e),
            };
            let Some(offset) = offset else {
                // Read it where it lies.
                self.entries.get_mut(id).expect("present").location = Location::OnDisk;
                return self.get(id, client);
            };
            // SAFETY: freshly allocated to this object; nobody else uses it.
            let out = unsafe { self.region.slice_mut(offset, size) };
            if let Err(source) = self.spill.read(id, out) {
                self.alloc.free(offset, size);
                return Err(StoreError::Spill {
                    object: id.hex(),
                    source,
                });
            }
            self.spill.remove(id);
            self.entries.get_mut(id).expect("present").location = Location::Memory { offset };
        }
        let t = self.tick();
        let e = self.entries.get_mut(id).expect("present");
        e.last_use = t;
        *e.pins.entry(client).or_default() += 1;
        match e.location {
            Location::Memory { offset } => Ok((Slot::Region(offset), e.size)),
            Location::OnDisk => Ok((Slot::File(self.spill.path(id)), e.size)),
            Location::Spilled => unreachable!("restored above"),
        }
    }

    /// Drops one pin of `client`.
    pub fn release(&mut self, id: &ObjectId, client: u64) {
        if let Some(e) = self.entries.get_mut(id) {
            if let Some(n) = e.pins.get_mut(&client) {
                *n -= 1;
                if *n == 0 {
                    e.pins.remove(&client);
                }
            }
        }
        self.maybe_free(id);
    }

    /// Drops an object still being written (a transfer that failed).
    pub fn abort(&mut self, id: &ObjectId) {
        if self.entries.get(id).is_some_and(|e| !e.sealed) {
            self.remove(id);
        }
    }

    /// The owner dropped the object: it goes once nobody pins it.
    pub fn delete(&mut self, id: &ObjectId) {
        if let Some(e) = self.entries.get_mut(id) {
            e.released = true;
        }
        self.maybe_free(id);
    }

    /// A process went away: its pins go, and so do objects it was still
    /// writing.
    pub fn client_gone(&mut self, client: u64) {
        let ids: Vec<ObjectId> = self
            .entries
            .iter()
            .filter(|(_, e)| e.pins.contains_key(&client) || (!e.sealed && e.creator == client))
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            let e = self.entries.get_mut(&id).expect("listed");
            e.pins.remove(&client);
            if !e.sealed && e.creator == client {
                self.remove(&id);
            } else {
                self.maybe_free(&id);
            }
        }
    }

    /// Whether the process at `who` may delete `id`: it owns it, or it is a
    /// copy (which goes with its primary anyway), or it is not here.
    pub fn may_delete(&self, id: &ObjectId, who: &str) -> bool {
        match self.entries.get(id) {
            Some(e) => e.owner.is_empty() || e.owner == who,
            None => true,
        }
    }

    /// The objects owned by any of the processes at `owners`.
    pub fn owned_by(&self, owners: &[String]) -> Vec<ObjectId> {
        self.entries
            .iter()
            .filter(|(_, e)| !e.owner.is_empty() && owners.contains(&e.owner))
            .map(|(id, _)| *id)
            .collect()
    }

    fn maybe_free(&mut self, id: &ObjectId) {
        if self
            .entries
            .get(id)
            .is_some_and(|e| e.released && !e.pinned())
        {
            self.remove(id);
        }
    }

    fn remove(&mut self, id: &ObjectId) {
        if let Some(e) = self.entries.remove(id) {
            match e.location {
                Location::Memory { offset } => self.alloc.free(offset, e.size),
                Location::Spilled | Location::OnDisk => self.spill.remove(id),
            }
        }
    }

    /// The shared memory the objects live in.
    pub fn region(&self) -> &Arc<Region> {
        &self.region
    }

    /// Whether the store holds `id` (sealed or not).
    pub fn contains(&self, id: &ObjectId) -> bool {
        self.entries.contains_key(id)
    }

    /// Usage figures.
    pub fn stats(&self) -> StoreStats {
        let mut s = StoreStats {
            capacity: self.alloc.capacity(),
            used: self.alloc.used(),
            ..Default::default()
        };
        for e in self.entries.values() {
            s.objects += 1;
            match e.location {
                Location::Spilled | Location::OnDisk => {
                    s.spilled_objects += 1;
                    s.spilled_bytes += e.size;
                }
                Location::Memory { .. } if e.pinned() => s.pinned_bytes += e.size,
                Location::Memory { .. } => {}
            }
        }
        s
    }

    /// Every object, for `oxray memory`.
    pub fn list(&self) -> Vec<ObjectListing> {
        self.entries
            .iter()
            .map(|(id, e)| ObjectListing {
                id: *id,
                size: e.size,
                pins: e.pins.values().sum(),
                spilled: matches!(e.location, Location::Spilled | Location::OnDisk),
                sealed: e.sealed,
                creator: e.creator,
                owner: e.owner.clone(),
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixture {
        table: ObjectTable,
        region: Arc<Region>,
        dir: std::path::PathBuf,
    }

    impl Drop for Fixture {
        fn drop(&mut self) {
            self.region.unlink();
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    fn fixture(capacity: u64, name: &str) -> Fixture {
        let dir = std::env::temp_dir().join(format!("oxray-table-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let region = Arc::new(Region::create(&dir.join("region"), capacity).unwrap());
        let table = ObjectTable::new(region.clone(), SpillDir::new(dir.join("spill")));
        Fixture { table, region, dir }
    }

    fn id(n: u8) -> ObjectId {
        ObjectId([n; 20])
    }

    /// Writes object `n` of `size` bytes, all `n`; returns where it went.
    fn put(f: &mut Fixture, n: u8, size: u64) -> Result<Slot, StoreError> {
        let slot = f.table.create(id(n), size, 1, "owner")?.expect("new");
        match &slot {
            Slot::Region(offset) => unsafe { f.region.slice_mut(*offset, size).fill(n) },
            Slot::File(path) => {
                let file = Region::open(path).unwrap();
                unsafe { file.slice_mut(0, size).fill(n) };
            }
        }
        f.table.seal(&id(n));
        Ok(slot)
    }

    /// Whether object `n` reads back as all `n`.
    fn intact(f: &mut Fixture, n: u8) -> bool {
        let (slot, size) = f.table.get(&id(n), 9).unwrap();
        let ok = match slot {
            Slot::Region(offset) => unsafe { f.region.slice(offset, size) }
                .iter()
                .all(|b| *b == n),
            Slot::File(path) => {
                let file = Region::open(&path).unwrap();
                unsafe { file.slice(0, size) }.iter().all(|b| *b == n)
            }
        };
        f.table.release(&id(n), 9);
        ok
    }

    #[test]
    fn deleted_objects_free_space_for_more() {
        let mut f = fixture(1 << 16, "free");
        for round in 0..10u8 {
            put(&mut f, round, 40_000).unwrap();
            f.table.delete(&id(round));
        }
        assert_eq!(f.table.stats().objects, 0);
        assert_eq!(f.table.stats().used, 0);
    }

    #[test]
    fn pinned_objects_survive_delete_until_released() {
        let mut f = fixture(1 << 16, "pin");
        put(&mut f, 1, 1000).unwrap();
        f.table.get(&id(1), 7).unwrap();
        f.table.delete(&id(1));
        assert!(f.table.contains(&id(1)));
        f.table.release(&id(1), 7);
        assert!(!f.table.contains(&id(1)));
    }

    #[test]
    fn full_store_spills_lru_and_restores_on_get() {
        let mut f = fixture(64 * 1024, "spill");
        for n in 1..=4u8 {
            put(&mut f, n, 30_000).unwrap();
        }
        let stats = f.table.stats();
        assert!(stats.spilled_objects >= 2, "{stats:?}");
        // The oldest went to disk first; reading it brings it back intact.
        assert!(intact(&mut f, 1));
        for n in 1..=4u8 {
            assert!(intact(&mut f, n));
        }
    }

    #[test]
    fn with_memory_pinned_a_new_object_lives_on_disk() {
        let mut f = fixture(64 * 1024, "full");
        put(&mut f, 1, 40_000).unwrap();
        f.table.get(&id(1), 3).unwrap();
        let slot = put(&mut f, 2, 40_000).unwrap();
        assert!(matches!(slot, Slot::File(_)), "{slot:?}");
        assert!(intact(&mut f, 2));
        assert_eq!(f.table.stats().spilled_bytes, 40_000);
        // Freed, its file goes.
        let Slot::File(path) = slot else {
            unreachable!()
        };
        f.table.delete(&id(2));
        assert!(!path.exists());
        f.table.client_gone(3);
        assert!(matches!(put(&mut f, 3, 40_000).unwrap(), Slot::Region(_)));
    }

    #[test]
    fn an_object_larger_than_the_store_lives_on_disk() {
        let mut f = fixture(4096, "large");
        assert!(matches!(put(&mut f, 1, 100_000).unwrap(), Slot::File(_)));
        assert!(intact(&mut f, 1));
        assert!(matches!(
            f.table.get(&id(2), 1),
            Err(StoreError::NotFound(_))
        ));
    }

    #[test]
    fn a_spilled_object_memory_cannot_take_back_is_read_from_disk() {
        let mut f = fixture(64 * 1024, "reread");
        put(&mut f, 1, 40_000).unwrap();
        put(&mut f, 2, 40_000).unwrap(); // spills 1
        f.table.get(&id(2), 3).unwrap(); // pins 2: no room to restore 1
        let (slot, _) = f.table.get(&id(1), 4).unwrap();
        assert!(matches!(slot, Slot::File(_)));
        f.table.release(&id(1), 4);
        assert!(intact(&mut f, 1));
    }

    #[test]
    fn when_the_disk_fails_too_the_error_names_both_limits() {
        let mut f = fixture(4096, "nodisk");
        // The spill directory cannot be created: a file stands in its way.
        std::fs::write(f.dir.join("spill"), b"in the way").unwrap();
        let err = put(&mut f, 1, 100_000).unwrap_err();
        assert!(matches!(err, StoreError::NoSpace { .. }), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains("100000 bytes") && text.contains("4096 bytes"),
            "{text}"
        );
        assert!(text.contains("spill"), "{text}");
    }

    #[test]
    fn corrupt_spill_file_is_an_error_not_a_crash() {
        let mut f = fixture(64 * 1024, "corrupt");
        put(&mut f, 1, 40_000).unwrap();
        put(&mut f, 2, 40_000).unwrap();
        assert_eq!(f.table.stats().spilled_objects, 1);
        std::fs::write(f.dir.join("spill").join(id(1).hex()), b"short").unwrap();
        assert!(matches!(
            f.table.get(&id(1), 1),
            Err(StoreError::Spill { .. })
        ));
        std::fs::remove_file(f.dir.join("spill").join(id(1).hex())).unwrap();
        assert!(matches!(
            f.table.get(&id(1), 1),
            Err(StoreError::Spill { .. })
        ));
    }

    #[test]
    fn objects_are_found_by_owner() {
        let mut f = fixture(64 * 1024, "owner");
        put(&mut f, 1, 100).unwrap();
        f.table.create(id(2), 100, 1, "").unwrap();
        assert_eq!(f.table.owned_by(&["owner".into()]), vec![id(1)]);
        assert!(f.table.owned_by(&["other".into()]).is_empty());
        assert!(f.table.may_delete(&id(1), "owner"));
        assert!(!f.table.may_delete(&id(1), "other"));
        assert!(f.table.may_delete(&id(2), "other")); // a copy
        assert!(f.table.may_delete(&id(3), "other")); // not here
    }

    #[test]
    fn create_in_memory_never_touches_the_disk() {
        let mut f = fixture(64 * 1024, "fast");
        let slot = f
            .table
            .create_in_memory(id(1), 40_000, 1, "")
            .unwrap()
            .unwrap();
        assert!(matches!(slot, Some(Slot::Region(_))));
        f.table.seal(&id(1));
        // No room without spilling object 1: nothing done.
        assert!(f.table.create_in_memory(id(2), 40_000, 1, "").is_none());
        assert_eq!(f.table.stats().spilled_objects, 0);
        assert!(!f.table.contains(&id(2)));
        // A sealed object stands.
        assert!(matches!(
            f.table.create_in_memory(id(1), 10, 1, ""),
            Some(Ok(None))
        ));
        // Too large for memory: the disk it is, so not here.
        assert!(f.table.create_in_memory(id(3), 1 << 20, 1, "").is_none());
    }

    #[test]
    fn dead_writer_leaves_nothing() {
        let mut f = fixture(64 * 1024, "writer");
        f.table.create(id(1), 1000, 5, "").unwrap();
        f.table.client_gone(5);
        assert!(!f.table.contains(&id(1)));
        assert_eq!(f.table.stats().used, 0);
    }

    #[test]
    fn second_create_of_sealed_object_keeps_first() {
        let mut f = fixture(64 * 1024, "twice");
        put(&mut f, 1, 100).unwrap();
        assert_eq!(f.table.create(id(1), 100, 2, "").unwrap(), None);
    }
}
