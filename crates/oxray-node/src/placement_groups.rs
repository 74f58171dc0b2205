//! Placement groups: bundles of resources reserved together, on one node
//! or many, as Ray's `placement_group()`.
//!
//! The head's control service owns the groups: it chooses a node for each
//! bundle from the cluster's resource view, by the group's strategy, and
//! asks each node to reserve its bundles; a group is created when every
//! node said yes, and otherwise what was reserved is returned and the group
//! waits for resources (all together or not at all). A node reserving a
//! bundle takes its resources out of its pool and adds the group's own
//! (`CPU_group_<i>_<pg>`, `CPU_group_<pg>`, `bundle_group_...`, as Ray
//! names them); tasks and actors in the group ask for those.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use oxray_common::{FixedAmount, NodeId, ResourceSet};
use oxray_proto::frame::FrameWriter;
use oxray_proto::*;

use crate::daemon::{Node, State};
use crate::ledger::Allocation;

/// How often groups waiting for resources try again.
const RETRY: Duration = Duration::from_millis(50);
/// The amount of `bundle_group_*` each bundle offers (tasks ask 0.001).
const BUNDLE_MARKER: f64 = 1000.0;

/// Group state names, as Ray's `placement_group_table` shows them.
mod state {
    pub(super) const PENDING: &str = "PENDING";
    pub(super) const CREATED: &str = "CREATED";
    /// Created, but a node holding some of its bundles died: those are
    /// being reserved again elsewhere.
    pub(super) const RESCHEDULING: &str = "RESCHEDULING";
    pub(super) const REMOVED: &str = "REMOVED";
}

/// The groups the head knows, and who waits for them.
#[derive(Default)]
pub(crate) struct PlacementGroups {
    groups: HashMap<Vec<u8>, Group>,
    names: HashMap<(String, String), Vec<u8>>,
    waiters: Vec<(FrameWriter, u64, Vec<u8>)>,
    /// Whether a retry of pending groups is scheduled.
    retry_armed: bool,
}

struct Group {
    info: PlacementGroupInfo,
    owner: String,
    /// A reservation is in flight.
    scheduling: bool,
}

/// Bundles a node holds for groups, by group id.
#[derive(Default)]
pub(crate) struct HeldBundles {
    by_group: HashMap<Vec<u8>, Vec<(Allocation, ResourceSet)>>,
}

/// The resources a reserved bundle adds to its node.
fn group_resources(pg_hex: &str, bundle: &Bundle) -> ResourceSet {
    let mut extra = ResourceSet::new();
    let shape = ResourceSet::from_units(bundle.resources.iter());
    for (name, amount) in shape.iter() {
        extra.set(&format!("{name}_group_{}_{pg_hex}", bundle.index), amount);
        extra.set(&format!("{name}_group_{pg_hex}"), amount);
    }
    let marker = FixedAmount::from_f64("bundle", BUNDLE_MARKER).expect("a valid amount");
    extra.set(&format!("bundle_group_{}_{pg_hex}", bundle.index), marker);
    extra.set(&format!("bundle_group_{pg_hex}"), marker);
    extra
}

/// Whether a group in `state` has bundles waiting for a node.
fn awaits_nodes(state: &str) -> bool {
    state == state::PENDING || state == state::RESCHEDULING
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Chooses a node for each bundle, or `None` when the strategy cannot be
/// met with the resources free now. `nodes` is every live node with what
/// it has free.
pub(crate) fn assign(
    bundles: &[ResourceSet],
    strategy: &str,
    nodes: &[(NodeId, ResourceSet)],
) -> Option<Vec<NodeId>> {
    let mut free: Vec<(NodeId, ResourceSet)> = nodes.to_vec();
    let take = |free: &mut Vec<(NodeId, ResourceSet)>, i: usize, b: &ResourceSet| {
        free[i].1.subtract_allow_negative(b);
        free[i].0
    };
    let mut total = ResourceSet::new();
    for b in bundles {
        total.add(b);
    }
    match strategy {
        "STRICT_PACK" => {
            let i = free.iter().position(|(_, f)| total.fits_in(f))?;
            Some(vec![free[i].0; bundles.len()])
        }
        "PACK" => {
            if let Some(i) = free.iter().position(|(_, f)| total.fits_in(f)) {
                return Some(vec![free[i].0; bundles.len()]);
            }
            // As few nodes as possible: fill one node before the next.
            let mut out = Vec::with_capacity(bundles.len());
            for b in bundles {
                let i = free.iter().position(|(_, f)| b.fits_in(f))?;
                out.push(take(&mut free, i, b));
            }
            Some(out)
        }
        "STRICT_SPREAD" => {
            let mut used = vec![false; free.len()];
            let mut out = Vec::with_capacity(bundles.len());
            for b in bundles {
                let i = (0..free.len()).find(|i| !used[*i] && b.fits_in(&free[*i].1))?;
                used[i] = true;
                out.push(take(&mut free, i, b));
            }
            Some(out)
        }
        _ => {
            // SPREAD: a node not used yet where possible, else any.
            let mut used = vec![0usize; free.len()];
            let mut out = Vec::with_capacity(bundles.len());
            for b in bundles {
                let i = (0..free.len())
                    .filter(|i| b.fits_in(&free[*i].1))
                    .min_by_key(|i| used[*i])?;
                used[i] += 1;
                out.push(take(&mut free, i, b));
            }
            Some(out)
        }
    }
}

impl Node {
    /// Registers a group and starts reserving it (head only).
    pub(crate) fn create_placement_group(
        &self,
        req: u64,
        c: CreatePlacementGroup,
        writer: &FrameWriter,
    ) {
        let mut pgs = self.placement_groups.lock();
        if !c.name.is_empty() {
            let key = (c.namespace.clone(), c.name.clone());
            if pgs.names.contains_key(&key) {
                let message = format!(
                    "Failed to create placement group '{}' because name already exists.",
                    c.name
                );
                writer.reply(req, Body::ErrorReply(ErrorReply { message }));
                return;
            }
            pgs.names.insert(key, c.pg_id.clone());
        }
        let bundles = c
            .bundles
            .into_iter()
            .enumerate()
            .map(|(i, b)| Bundle {
                index: i as u32,
                ..b
            })
            .collect();
        let info = PlacementGroupInfo {
            pg_id: c.pg_id.clone(),
            state: state::PENDING.into(),
            bundles,
            strategy: c.strategy,
            name: c.name,
            namespace: c.namespace,
            detached: c.detached,
        };
        pgs.groups.insert(
            c.pg_id.clone(),
            Group {
                info: info.clone(),
                owner: c.owner,
                scheduling: false,
            },
        );
        self.journal_group(&pgs, &c.pg_id);
        drop(pgs);
        writer.reply(req, Body::PlacementGroupInfo(info));
        self.schedule_placement_group(c.pg_id);
    }

    /// Tries to reserve the bundles of a group that have no node yet (all
    /// of a pending group's, those lost with a node of a rescheduling
    /// one) on the nodes its strategy picks; on failure gives back what
    /// was reserved and tries again later.
    fn schedule_placement_group(&self, pg_id: Vec<u8>) {
        let (bundles, placed, strategy) = {
            let mut pgs = self.placement_groups.lock();
            let Some(g) = pgs.groups.get_mut(&pg_id) else {
                return;
            };
            if g.scheduling || !awaits_nodes(&g.info.state) {
                return;
            }
            g.scheduling = true;
            let (unplaced, placed): (Vec<Bundle>, Vec<Bundle>) = g
                .info
                .bundles
                .iter()
                .cloned()
                .partition(|b| b.node_id.is_empty());
            let placed: Vec<NodeId> = placed
                .iter()
                .filter_map(|b| NodeId::from_bytes(&b.node_id))
                .collect();
            (unplaced, placed, g.info.strategy.clone())
        };
        let mut nodes = self.live_nodes_free();
        // Bundles placed again keep the group's strategy with those that
        // stayed: together for STRICT_PACK, apart for STRICT_SPREAD.
        match strategy.as_str() {
            "STRICT_PACK" if !placed.is_empty() => nodes.retain(|(id, _)| placed.contains(id)),
            "STRICT_SPREAD" => nodes.retain(|(id, _)| !placed.contains(id)),
            _ => {}
        }
        let shapes: Vec<ResourceSet> = bundles
            .iter()
            .map(|b| ResourceSet::from_units(b.resources.iter()))
            .collect();
        let Some(choice) = assign(&shapes, &strategy, &nodes) else {
            self.placement_group_unscheduled(&pg_id);
            return;
        };
        let mut per_node: BTreeMap<NodeId, Vec<Bundle>> = BTreeMap::new();
        for (b, node) in bundles.iter().zip(&choice) {
            per_node.entry(*node).or_default().push(Bundle {
                node_id: node.0.to_vec(),
                ..b.clone()
            });
        }
        let me = self.me();
        tokio::spawn(async move {
            let mut reserved = Vec::new();
            let mut ok = true;
            for (node, bundles) in per_node {
                let request = ReserveBundles {
                    pg_id: pg_id.clone(),
                    bundles,
                };
                if me.reserve_on(node, request).await {
                    reserved.push(node);
                } else {
                    ok = false;
                    break;
                }
            }
            let removed = {
                let mut pgs = me.placement_groups.lock();
                match pgs.groups.get_mut(&pg_id) {
                    Some(g) if ok && awaits_nodes(&g.info.state) => {
                        g.scheduling = false;
                        g.info.state = state::CREATED.into();
                        for (b, node) in bundles.iter().zip(&choice) {
                            if let Some(slot) = g.info.bundles.get_mut(b.index as usize) {
                                slot.node_id = node.0.to_vec();
                            }
                        }
                        me.journal_group(&pgs, &pg_id);
                        false
                    }
                    Some(g) => {
                        g.scheduling = false;
                        true
                    }
                    None => true,
                }
            };
            if removed {
                // Failed, or removed meanwhile: give back what was taken.
                for node in reserved {
                    me.return_on(node, pg_id.clone());
                }
                me.placement_group_unscheduled(&pg_id);
            }
            me.notify_placement_group_waiters();
        });
    }

    /// A group could not be reserved now: try again soon.
    fn placement_group_unscheduled(&self, pg_id: &[u8]) {
        let mut pgs = self.placement_groups.lock();
        if let Some(g) = pgs.groups.get_mut(pg_id) {
            g.scheduling = false;
        }
        if pgs.retry_armed {
            return;
        }
        pgs.retry_armed = true;
        let me = self.me();
        tokio::spawn(async move {
            tokio::time::sleep(RETRY).await;
            let pending: Vec<Vec<u8>> = {
                let mut pgs = me.placement_groups.lock();
                pgs.retry_armed = false;
                pgs.groups
                    .iter()
                    .filter(|(_, g)| awaits_nodes(&g.info.state) && !g.scheduling)
                    .map(|(id, _)| id.clone())
                    .collect()
            };
            for id in pending {
                me.schedule_placement_group(id);
            }
        });
    }

    /// Nodes died (head only): the bundles they held are reserved again on
    /// other nodes; their groups are `RESCHEDULING` meanwhile.
    pub(crate) fn placement_groups_lost_nodes(&self, dead: &[Vec<u8>]) {
        let affected: Vec<Vec<u8>> = {
            let mut pgs = self.placement_groups.lock();
            let mut out = Vec::new();
            for (id, g) in pgs.groups.iter_mut() {
                if g.info.state == state::REMOVED {
                    continue;
                }
                let mut lost = false;
                for b in g.info.bundles.iter_mut() {
                    if dead.contains(&b.node_id) {
                        b.node_id.clear();
                        lost = true;
                    }
                }
                if lost {
                    if g.info.state == state::CREATED {
                        g.info.state = state::RESCHEDULING.into();
                    }
                    out.push(id.clone());
                }
            }
            for id in &out {
                self.journal_group(&pgs, id);
            }
            out
        };
        for id in affected {
            tracing::info!(
                "rescheduling bundles of placement group {} lost with a node",
                hex(&id)
            );
            self.schedule_placement_group(id);
        }
    }

    /// Queues group `pg_id` as it is now for the head's journal (a removed
    /// one is forgotten there).
    fn journal_group(&self, pgs: &PlacementGroups, pg_id: &[u8]) {
        if self.journal.is_none() {
            return;
        }
        let entry = pgs
            .groups
            .get(pg_id)
            .filter(|g| g.info.state != state::REMOVED)
            .map(|g| PlacementGroupJournalEntry {
                info: Some(g.info.clone()),
                owner: g.owner.clone(),
            });
        self.journal_queue.group_changed(pg_id, entry);
    }

    /// Puts back the groups a restarted head's journal held. Bundles on
    /// the previous head are gone with it and are reserved again; so are,
    /// once the other nodes had time to reconnect, those on nodes that did
    /// not.
    pub(crate) fn restore_placement_groups(
        &self,
        groups: Vec<(Vec<u8>, PlacementGroupJournalEntry)>,
        previous_head: Option<NodeId>,
    ) {
        if groups.is_empty() {
            return;
        }
        let pending: Vec<Vec<u8>> = {
            let mut pgs = self.placement_groups.lock();
            for (id, entry) in groups {
                let info = entry.info.unwrap_or_default();
                if !info.name.is_empty() {
                    pgs.names
                        .insert((info.namespace.clone(), info.name.clone()), id.clone());
                }
                pgs.groups.insert(
                    id,
                    Group {
                        info,
                        owner: entry.owner,
                        scheduling: false,
                    },
                );
            }
            pgs.groups
                .iter()
                .filter(|(_, g)| g.info.state == state::PENDING)
                .map(|(id, _)| id.clone())
                .collect()
        };
        if let Some(head) = previous_head {
            self.placement_groups_lost_nodes(&[head.0.to_vec()]);
        }
        for id in pending {
            self.schedule_placement_group(id);
        }
        let me = self.me();
        tokio::spawn(async move {
            tokio::time::sleep(crate::cluster::head_reconnect_timeout() + RETRY).await;
            let alive: Vec<Vec<u8>> = me
                .control
                .nodes()
                .into_iter()
                .filter(|n| n.alive)
                .map(|n| n.node_id.0.to_vec())
                .collect();
            let missing: Vec<Vec<u8>> = {
                let pgs = me.placement_groups.lock();
                let mut ids: Vec<Vec<u8>> = pgs
                    .groups
                    .values()
                    .flat_map(|g| g.info.bundles.iter())
                    .map(|b| b.node_id.clone())
                    .filter(|n| !n.is_empty() && !alive.contains(n))
                    .collect();
                ids.sort();
                ids.dedup();
                ids
            };
            if !missing.is_empty() {
                me.placement_groups_lost_nodes(&missing);
            }
        });
    }

    /// Every live node with the resources it has free now.
    fn live_nodes_free(&self) -> Vec<(NodeId, ResourceSet)> {
        let mine = (self.node_id, self.state.lock().ledger.available().clone());
        let Some(link) = &self.link else {
            return vec![mine];
        };
        let view = link.view.lock();
        let mut out = vec![mine];
        out.extend(
            view.iter()
                .filter(|(id, n)| **id != self.node_id && n.alive)
                .map(|(id, n)| (*id, n.available.clone())),
        );
        out
    }

    /// Asks node `node` to reserve bundles; whether it did.
    async fn reserve_on(&self, node: NodeId, request: ReserveBundles) -> bool {
        if node == self.node_id {
            return self.reserve_bundles(request).is_ok();
        }
        let Some(address) = self
            .link
            .as_ref()
            .and_then(|l| l.view.lock().get(&node).map(|n| n.address.clone()))
        else {
            return false;
        };
        let Some(link) = &self.link else { return false };
        match link.peers.get(&address).await {
            Ok(peer) => matches!(
                peer.call(Body::ReserveBundles(request)).await,
                Ok(Body::Ack(_))
            ),
            Err(_) => false,
        }
    }

    /// Asks node `node` to give back a group's bundles.
    fn return_on(&self, node: NodeId, pg_id: Vec<u8>) {
        if node == self.node_id {
            self.return_bundles(&pg_id);
            return;
        }
        let Some(link) = &self.link else { return };
        let Some(address) = link.view.lock().get(&node).map(|n| n.address.clone()) else {
            return;
        };
        let peers = link.peers.clone();
        tokio::spawn(async move {
            if let Ok(peer) = peers.get(&address).await {
                peer.send(Body::ReturnBundles(ReturnBundles { pg_id }));
            }
        });
    }

    /// Reserves bundles on this node, all or none.
    pub(crate) fn reserve_bundles(&self, r: ReserveBundles) -> Result<(), String> {
        let pg_hex = hex(&r.pg_id);
        let mut st = self.state.lock();
        let mut taken = Vec::new();
        for b in &r.bundles {
            let shape = ResourceSet::from_units(b.resources.iter());
            let extra = group_resources(&pg_hex, b);
            match st.ledger.reserve_bundle(&shape, &extra) {
                Some(alloc) => taken.push((alloc, extra)),
                None => {
                    for (alloc, extra) in &taken {
                        st.ledger.return_bundle(alloc, extra);
                    }
                    return Err(format!(
                        "node {} has not enough free for bundle {}",
                        self.node_id.hex(),
                        b.index
                    ));
                }
            }
        }
        st.bundles
            .by_group
            .entry(r.pg_id)
            .or_default()
            .extend(taken);
        self.resources_changed();
        self.dispatch(&mut st);
        Ok(())
    }

    /// Gives back a group's bundles on this node, stopping the workers
    /// leased with its resources.
    pub(crate) fn return_bundles(&self, pg_id: &[u8]) {
        let pg_hex = hex(pg_id);
        let mut st = self.state.lock();
        let Some(held) = st.bundles.by_group.remove(pg_id) else {
            return;
        };
        let suffix = format!("_{pg_hex}");
        let in_group = |alloc: &Allocation| {
            alloc
                .resources
                .iter()
                .any(|(name, _)| name.contains("_group_") && name.ends_with(&suffix))
        };
        let leases: Vec<u64> = st.leases_where(in_group);
        for lease in leases {
            self.end_lease(&mut st, lease, true);
        }
        for (alloc, extra) in &held {
            st.ledger.return_bundle(alloc, extra);
        }
        self.resources_changed();
        self.dispatch(&mut st);
    }

    /// Looks a group up; with `wait`, answers once it is created or removed.
    pub(crate) fn get_placement_group(&self, req: u64, g: GetPlacementGroup, writer: &FrameWriter) {
        let mut pgs = self.placement_groups.lock();
        let id = if g.pg_id.is_empty() {
            pgs.names
                .get(&(g.namespace.clone(), g.name.clone()))
                .cloned()
        } else {
            Some(g.pg_id)
        };
        let Some(group) = id.as_ref().and_then(|id| pgs.groups.get(id)) else {
            let message = if g.name.is_empty() {
                "no such placement group".to_string()
            } else {
                format!("Failed to look up placement group with name: {}", g.name)
            };
            writer.reply(req, Body::ErrorReply(ErrorReply { message }));
            return;
        };
        if !g.wait || group.info.state != state::PENDING {
            let info = group.info.clone();
            self.journal_groups_now();
            writer.reply(req, Body::PlacementGroupInfo(info));
            return;
        }
        pgs.waiters.push((writer.clone(), req, id.expect("found")));
    }

    fn notify_placement_group_waiters(&self) {
        let mut pgs = self.placement_groups.lock();
        let answers = pgs.waiters.iter().any(|(_, _, id)| {
            pgs.groups
                .get(id)
                .is_some_and(|g| g.info.state != state::PENDING)
        });
        if answers {
            self.journal_groups_now();
        }
        let PlacementGroups {
            waiters, groups, ..
        } = &mut *pgs;
        waiters.retain(|(writer, req, id)| match groups.get(id) {
            Some(g) if g.info.state == state::PENDING => !writer.is_closed(),
            Some(g) => {
                writer.reply(*req, Body::PlacementGroupInfo(g.info.clone()));
                false
            }
            None => false,
        });
    }

    /// Removes a group: its bundles are returned everywhere (head only).
    pub(crate) fn remove_placement_group(&self, pg_id: &[u8]) {
        let nodes: Vec<NodeId> = {
            let mut pgs = self.placement_groups.lock();
            let Some(g) = pgs.groups.get_mut(pg_id) else {
                return;
            };
            g.info.state = state::REMOVED.into();
            let key = (g.info.namespace.clone(), g.info.name.clone());
            // The nodes holding its reserved bundles (none while pending;
            // a reservation in flight gives back what it took itself).
            let mut nodes: Vec<NodeId> = g
                .info
                .bundles
                .iter()
                .filter_map(|b| NodeId::from_bytes(&b.node_id))
                .collect();
            nodes.sort();
            nodes.dedup();
            if pgs.names.get(&key).is_some_and(|id| id == pg_id) {
                pgs.names.remove(&key);
            }
            self.journal_group(&pgs, pg_id);
            nodes
        };
        // Its actors end with it, for good (they could never start again).
        let suffix = format!("_{}", hex(pg_id));
        {
            let mut st = self.state.lock();
            let members: Vec<oxray_common::ActorId> = st
                .actors
                .iter()
                .filter(|(_, a)| {
                    a.resources
                        .iter()
                        .any(|(name, _)| name.contains("_group_") && name.ends_with(&suffix))
                })
                .map(|(id, _)| *id)
                .collect();
            for id in members {
                self.actor_ended(
                    &mut st,
                    id,
                    "The actor's placement group was removed.".into(),
                );
            }
        }
        for node in nodes {
            self.return_on(node, pg_id.to_vec());
        }
        self.notify_placement_group_waiters();
    }

    /// Every group (for `placement_group_table`).
    pub(crate) fn list_placement_groups(&self) -> PlacementGroupList {
        let pgs = self.placement_groups.lock();
        PlacementGroupList {
            groups: pgs.groups.values().map(|g| g.info.clone()).collect(),
        }
    }

    /// A process went: the groups it created (not detached) go with it.
    pub(crate) fn placement_groups_of_gone_owner(&self, owner: &str) {
        let owned: Vec<Vec<u8>> = {
            let pgs = self.placement_groups.lock();
            pgs.groups
                .iter()
                .filter(|(_, g)| {
                    g.owner == owner && !g.info.detached && g.info.state != state::REMOVED
                })
                .map(|(id, _)| id.clone())
                .collect()
        };
        for id in owned {
            self.remove_placement_group(&id);
        }
    }
}

impl State {
    /// Leases whose allocation matches `pred`.
    pub(crate) fn leases_where(&self, pred: impl Fn(&Allocation) -> bool) -> Vec<u64> {
        self.lease_allocations()
            .filter(|(_, a)| pred(a))
            .map(|(id, _)| id)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(cpu: f64) -> ResourceSet {
        ResourceSet::from_f64([("CPU", cpu)]).unwrap()
    }

    #[test]
    fn strategies_choose_nodes() {
        let (a, b) = (NodeId::random(), NodeId::random());
        let nodes = vec![(a, res(2.0)), (b, res(2.0))];
        let two = vec![res(1.0), res(1.0)];
        assert_eq!(assign(&two, "PACK", &nodes), Some(vec![a, a]));
        assert_eq!(assign(&two, "STRICT_PACK", &nodes), Some(vec![a, a]));
        assert_eq!(assign(&two, "SPREAD", &nodes), Some(vec![a, b]));
        assert_eq!(assign(&two, "STRICT_SPREAD", &nodes), Some(vec![a, b]));
        let three = vec![res(1.0), res(1.0), res(1.0)];
        assert_eq!(
            assign(&three, "STRICT_SPREAD", &nodes),
            None,
            "more bundles than nodes"
        );
        assert_eq!(assign(&three, "STRICT_PACK", &nodes), None);
        assert_eq!(assign(&three, "PACK", &nodes).map(|v| v.len()), Some(3));
        assert_eq!(assign(&[res(3.0)], "PACK", &nodes), None);
    }

    #[test]
    fn bundle_resources_are_named_as_in_ray() {
        let b = Bundle {
            resources: res(1.5).to_units(),
            node_id: vec![],
            index: 1,
        };
        let extra = group_resources("ab", &b);
        let names: Vec<&str> = extra.iter().map(|(n, _)| n).collect();
        assert!(
            names.contains(&"CPU_group_1_ab") && names.contains(&"CPU_group_ab"),
            "{names:?}"
        );
        assert!(
            names.contains(&"bundle_group_1_ab") && names.contains(&"bundle_group_ab"),
            "{names:?}"
        );
        assert_eq!(extra.get("CPU_group_ab").as_f64(), 1.5);
    }
}
