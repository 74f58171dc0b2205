//! The actor directory: every actor's state, and the names of named actors
//! by namespace.

use std::collections::HashMap;

use oxray_common::{ActorId, ResourceSet};
use oxray_proto::{ActorInfo, ActorState, TaskSpec};

/// Everything recorded about one actor.
#[derive(Clone, Debug)]
pub struct ActorRecord {
    /// What callers are told.
    pub info: ActorInfo,
    /// The creation task, run again at each restart.
    pub spec: TaskSpec,
    pub resources: ResourceSet,
    pub detached: bool,
    /// Restarts allowed after crashes; -1 for no limit.
    pub max_restarts: i32,
    /// How it picks its node (at every start).
    pub strategy: Option<oxray_proto::SchedulingStrategy>,
    /// The address of the process that created it: a non-detached actor
    /// dies with it.
    pub owner: String,
}

impl ActorRecord {
    /// The actor's state.
    pub fn state(&self) -> ActorState {
        ActorState::try_from(self.info.state).unwrap_or(ActorState::Dead)
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

/// All actors of the cluster.
#[derive(Default)]
pub struct ActorDirectory {
    actors: HashMap<ActorId, ActorRecord>,
    names: HashMap<(String, String), ActorId>,
}

impl ActorDirectory {
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
        Ok(())
    }

    /// The actor `id`.
    pub fn get(&self, id: &ActorId) -> Option<&ActorRecord> {
        self.actors.get(id)
    }

    /// The actor `id`, to change.
    pub fn get_mut(&mut self, id: &ActorId) -> Option<&mut ActorRecord> {
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
        if let Some(r) = self.actors.get_mut(id) {
            r.info.state = ActorState::Dead as i32;
            if r.info.death_message.is_empty() {
                r.info.death_message = message;
            }
            let key = (r.info.namespace.clone(), r.info.name.clone());
            if self.names.get(&key) == Some(id) {
                self.names.remove(&key);
            }
        }
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
    fn restart_budget() {
        let mut r = record("");
        assert!(r.may_restart());
        r.info.num_restarts = 1;
        assert!(!r.may_restart());
        r.max_restarts = -1;
        assert!(r.may_restart());
    }
}
