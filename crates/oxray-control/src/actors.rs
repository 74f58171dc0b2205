//! The actor directory: every actor's state, and the names of named actors
//! by namespace.

use std::collections::{HashMap, HashSet};

use oxray_common::{ActorId, ResourceSet};
use oxray_proto::{ActorInfo, ActorState, TaskSpec};

/// Everything recorded about one actor.
#[derive(Clone, Debug)]
pub struct ActorRecord {
    /// What callers are told.
    pub info: ActorInfo,
    /// The creation task, run again at each restart.
    pub spec: TaskSpec,
    /// What its worker holds while it lives.
    pub resources: ResourceSet,
    /// Outlives its owner (`lifetime="detached"`).
    pub detached: bool,
    /// Restarts allowed after crashes; -1 for no limit.
    pub max_restarts: i32,
    /// How it picks its node (at every start).
    pub strategy: Option<oxray_proto::SchedulingStrategy>,
    /// The address of the process that created it: a non-detached actor
    /// dies with it.
    pub owner: String,
    /// When its worker runs on another node than the head: that node
    /// daemon's address and the worker's lease there (to end it).
    pub remote: Option<(String, u64)>,
}

impl ActorRecord {
    /// The actor's state.
    pub fn state(&self) -> ActorState {
        ActorState::try_from(self.info.state).unwrap_or(ActorState::Dead)
    }

    /// The record as the head's journal keeps it.
    pub fn to_journal(&self) -> oxray_proto::ActorJournalEntry {
        oxray_proto::ActorJournalEntry {
            info: Some(self.info.clone()),
            spec: Some(self.spec.clone()),
            resources: self.resources.to_units(),
            detached: self.detached,
            max_restarts: self.max_restarts,
            strategy: self.strategy.clone(),
            owner: self.owner.clone(),
            remote_node: self
                .remote
                .as_ref()
                .map(|r| r.0.clone())
                .unwrap_or_default(),
            remote_lease: self.remote.as_ref().map_or(0, |r| r.1),
        }
    }

    /// A record read back from the head's journal.
    pub fn from_journal(e: oxray_proto::ActorJournalEntry) -> Self {
        Self {
            info: e.info.unwrap_or_default(),
            spec: e.spec.unwrap_or_default(),
            resources: ResourceSet::from_units(e.resources.iter()),
            detached: e.detached,
            max_restarts: e.max_restarts,
            strategy: e.strategy,
            owner: e.owner,
            remote: (!e.remote_node.is_empty()).then_some((e.remote_node, e.remote_lease)),
        }
    }

    /// Whether a crash may be followed by a restart.
    pub fn may_restart(&self) -> bool {
        self.max_restarts < 0 || (self.info.num_restarts as i32) < self.max_restarts
    }
}

/// Why an actor could not be registered.
#[derive(Debug, PartialEq, Eq)]
pub enum RegisterError {
    /// The name is taken in that namespace by a live actor.
    NameTaken(ActorId),
}

/// Dead actors kept for listings and for callers asking why one died;
/// older ones are forgotten, as Ray caps its destroyed-actor cache.
pub const MAX_DEAD_ACTORS: usize = 10_000;

/// All actors of the cluster.
pub struct ActorDirectory {
    actors: HashMap<ActorId, ActorRecord>,
    names: HashMap<(String, String), ActorId>,
    /// Dead actors, oldest first, and how many to keep.
    dead: std::collections::VecDeque<ActorId>,
    dead_limit: usize,
    /// Actors changed since [`ActorDirectory::take_changed`] last ran.
    changed: HashSet<ActorId>,
    /// Called when the first change after a `take_changed` is recorded.
    on_change: Option<Box<dyn Fn() + Send + Sync>>,
}

impl Default for ActorDirectory {
    fn default() -> Self {
        Self::with_dead_limit(MAX_DEAD_ACTORS)
    }
}

impl ActorDirectory {
    /// A directory keeping the last `dead_limit` dead actors.
    pub fn with_dead_limit(dead_limit: usize) -> Self {
        Self {
            actors: HashMap::new(),
            names: HashMap::new(),
            dead: std::collections::VecDeque::new(),
            dead_limit,
            changed: HashSet::new(),
            on_change: None,
        }
    }

    /// Records a new actor, claiming its name if it has one.
    pub fn register(&mut self, id: ActorId, record: ActorRecord) -> Result<(), RegisterError> {
        if !record.info.name.is_empty() {
            let key = (record.info.namespace.clone(), record.info.name.clone());
            if let Some(existing) = self.names.get(&key) {
                return Err(RegisterError::NameTaken(*existing));
            }
            self.names.insert(key, id);
        }
        self.actors.insert(id, record);
        self.note_change(id);
        Ok(())
    }

    /// Calls `hook` whenever changes start piling up (the journal's writer
    /// waits on it).
    pub fn on_change(&mut self, hook: Box<dyn Fn() + Send + Sync>) {
        self.on_change = Some(hook);
    }

    /// Changes are collected only once someone waits for them (a head
    /// with a journal), so that a directory without one does not grow.
    fn note_change(&mut self, id: ActorId) {
        let Some(hook) = &self.on_change else { return };
        if self.changed.insert(id) && self.changed.len() == 1 {
            hook();
        }
    }

    /// The actor `id`.
    pub fn get(&self, id: &ActorId) -> Option<&ActorRecord> {
        self.actors.get(id)
    }

    /// The actor `id`, to change.
    pub fn get_mut(&mut self, id: &ActorId) -> Option<&mut ActorRecord> {
        if !self.actors.contains_key(id) {
            return None;
        }
        self.note_change(*id);
        self.actors.get_mut(id)
    }

    /// The live actor named `name` in `namespace`.
    pub fn by_name(&self, namespace: &str, name: &str) -> Option<ActorId> {
        self.names
            .get(&(namespace.to_string(), name.to_string()))
            .copied()
    }

    /// Marks an actor dead for good and frees its name.
    pub fn mark_dead(&mut self, id: &ActorId, message: String) {
        if self.actors.contains_key(id) {
            self.note_change(*id);
        }
        if let Some(r) = self.actors.get_mut(id) {
            if r.state() != ActorState::Dead {
                self.dead.push_back(*id);
            }
            r.info.state = ActorState::Dead as i32;
            if r.info.death_message.is_empty() {
                r.info.death_message = message;
            }
            let key = (r.info.namespace.clone(), r.info.name.clone());
            if self.names.get(&key) == Some(id) {
                self.names.remove(&key);
            }
        }
        while self.dead.len() > self.dead_limit {
            let Some(oldest) = self.dead.pop_front() else {
                break;
            };
            if self
                .actors
                .get(&oldest)
                .is_some_and(|r| r.state() == ActorState::Dead)
            {
                self.actors.remove(&oldest);
            }
        }
    }

    /// The actors changed since the last call, as the journal writes them:
    /// the record, or `None` for an actor that is dead (forgotten there).
    pub fn take_changed(&mut self) -> Vec<(ActorId, Option<oxray_proto::ActorJournalEntry>)> {
        let changed = std::mem::take(&mut self.changed);
        changed
            .into_iter()
            .map(|id| {
                let entry = self
                    .actors
                    .get(&id)
                    .filter(|r| r.state() != ActorState::Dead)
                    .map(ActorRecord::to_journal);
                (id, entry)
            })
            .collect()
    }

    /// Every actor.
    pub fn iter(&self) -> impl Iterator<Item = (&ActorId, &ActorRecord)> {
        self.actors.iter()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str) -> ActorRecord {
        ActorRecord {
            info: ActorInfo {
                name: name.into(),
                namespace: "ns".into(),
                ..Default::default()
            },
            spec: TaskSpec::default(),
            resources: ResourceSet::new(),
            detached: false,
            max_restarts: 1,
            strategy: None,
            owner: "unix:/owner".into(),
            remote: Some(("tcp:10.0.0.2:1".into(), 7)),
        }
    }

    #[test]
    fn names_are_unique_until_death() {
        let mut d = ActorDirectory::default();
        let a = ActorId::random();
        let b = ActorId::random();
        d.register(a, record("x")).unwrap();
        assert_eq!(d.register(b, record("x")), Err(RegisterError::NameTaken(a)));
        assert_eq!(d.by_name("ns", "x"), Some(a));
        assert_eq!(d.by_name("other", "x"), None);
        d.mark_dead(&a, "killed".into());
        assert_eq!(d.get(&a).unwrap().state(), ActorState::Dead);
        assert_eq!(d.by_name("ns", "x"), None);
        d.register(b, record("x")).unwrap();
        assert_eq!(d.by_name("ns", "x"), Some(b));
    }

    #[test]
    fn changes_are_collected_for_the_journal() {
        let mut d = ActorDirectory::default();
        d.register(ActorId::random(), record("")).unwrap();
        assert!(d.take_changed().is_empty(), "nobody listens: nothing kept");
        d.on_change(Box::new(|| {}));
        let (a, b) = (ActorId::random(), ActorId::random());
        d.register(a, record("x")).unwrap();
        d.register(b, record("")).unwrap();
        assert_eq!(d.take_changed().len(), 2);
        assert!(d.take_changed().is_empty());
        d.mark_dead(&a, "gone".into());
        d.get_mut(&b).unwrap().info.num_restarts = 1;
        let mut changed = d.take_changed();
        changed.sort_by_key(|(id, _)| *id == b);
        assert!(changed[0].1.is_none(), "the dead one is forgotten");
        let back = ActorRecord::from_journal(changed[1].1.clone().unwrap());
        assert_eq!(back.info.num_restarts, 1);
        assert_eq!(back.owner, "unix:/owner");
        assert_eq!(back.remote, Some(("tcp:10.0.0.2:1".into(), 7)));
    }

    #[test]
    fn only_the_latest_dead_actors_are_kept() {
        let mut d = ActorDirectory::with_dead_limit(2);
        let ids: Vec<ActorId> = (0..4).map(|_| ActorId::random()).collect();
        for id in &ids {
            d.register(*id, record("")).unwrap();
        }
        for id in &ids[..3] {
            d.mark_dead(id, "gone".into());
        }
        assert!(d.get(&ids[0]).is_none());
        assert_eq!(d.get(&ids[1]).unwrap().state(), ActorState::Dead);
        assert_eq!(d.get(&ids[2]).unwrap().state(), ActorState::Dead);
        assert!(d.get(&ids[3]).is_some()); // alive: never forgotten
    }

    #[test]
    fn restart_budget() {
        let mut r = record("");
        assert!(r.may_restart());
        r.info.num_restarts = 1;
        assert!(!r.may_restart());
        r.max_restarts = -1;
        assert!(r.may_restart());
    }
}
