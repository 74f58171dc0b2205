//! Which node serves a lease request: the cluster's resource view and
//! Ray's policies over it (default, spread, node affinity).
//!
//! Every node daemon keeps a [`ClusterView`]: each node's total and
//! available resources, as the head last published them (its own entry
//! is always current). A request is served locally when the policy allows;
//! otherwise the caller is told to ask another node (a *spillback*).

use std::collections::BTreeMap;

use oxray_common::{NodeId, ResourceSet};
use oxray_proto::{NodeInfo, SchedulingStrategy};

/// How many fitting nodes a default decision compares.
const TOP_K: usize = 4;
/// A node busier than this (share of its CPUs in use) sends work to less
/// loaded nodes; below it, work stays local (Ray's default, 0.5).
const LOCAL_THRESHOLD: f64 = 0.5;

/// How long resources sent to a node count as taken there, when the node
/// reports nothing new: a lease granted and returned between two of its
/// reports changes nothing it would report.
const DEBIT_TTL: std::time::Duration = std::time::Duration::from_millis(100);

/// One node as the view knows it.
#[derive(Clone, Debug)]
pub struct NodeView {
    /// The node daemon's address (where spilled requests go).
    pub address: String,
    /// Everything the node has.
    pub total: ResourceSet,
    /// What it had free at its last report.
    pub available: ResourceSet,
    /// Dead nodes stay listed but are never chosen.
    pub alive: bool,
    /// Version of `available`; older reports are ignored.
    pub version: u64,
    /// Sent there since its last report, and when (see [`DEBIT_TTL`]).
    pub debit: Option<(ResourceSet, std::time::Instant)>,
    /// Requests waiting there, as it last reported them.
    pub pending: Vec<oxray_proto::Demand>,
}

impl NodeView {
    /// Whether `shape` fits in what the node has free now, less what was
    /// lately sent there.
    pub fn fits_now(&self, shape: &ResourceSet) -> bool {
        match &self.debit {
            Some((debit, at)) if at.elapsed() < DEBIT_TTL => {
                let mut need = shape.clone();
                need.add(debit);
                need.fits_in(&self.available)
            }
            _ => shape.fits_in(&self.available),
        }
    }
}

/// The resources of every node of the cluster.
#[derive(Default, Debug)]
pub struct ClusterView {
    /// Ordered by id, so that every node walks them in the same order.
    nodes: BTreeMap<NodeId, NodeView>,
    /// Where the last `SPREAD` request went, to go round the nodes.
    spread_cursor: usize,
    /// Where default decisions start looking, moved on at each one.
    default_cursor: usize,
    /// Nodes seen to die since [`ClusterView::take_deaths`] last ran.
    deaths: Vec<(NodeId, String)>,
}

/// Where a request goes.
#[derive(Debug, PartialEq, Eq)]
pub enum Decision {
    /// Serve it here (grant now, or queue until resources free up).
    Local,
    /// Ask this node instead.
    Remote {
        /// The node chosen.
        node_id: NodeId,
        /// Its daemon's address.
        address: String,
    },
    /// No node of the cluster can ever serve it (yet): keep it here,
    /// pending, and warn once.
    Infeasible,
    /// The request can never be served as asked.
    Fail(String),
}

impl ClusterView {
    /// Replaces the view with what the head published, keeping this
    /// node's own entry (`me`), which is always current here.
    pub fn replace(&mut self, nodes: &[NodeInfo], me: NodeId) {
        let mine = self.nodes.remove(&me);
        let old = std::mem::take(&mut self.nodes);
        for n in nodes {
            let Some(id) = NodeId::from_bytes(&n.node_id) else {
                continue;
            };
            let view = view_of(n);
            if !view.alive && old.get(&id).is_some_and(|o| o.alive) {
                self.deaths.push((id, view.address.clone()));
            }
            self.nodes.insert(id, view);
        }
        if let Some(mine) = mine {
            self.nodes.insert(me, mine);
        }
    }

    /// Adds or updates one node. A report older than what is known for
    /// that node is ignored; returns whether anything changed.
    pub fn update(&mut self, id: NodeId, node: NodeView) -> bool {
        match self.nodes.get(&id) {
            Some(old) if old.version > node.version && old.alive == node.alive => false,
            old => {
                if old.is_some_and(|o| o.alive) && !node.alive {
                    self.deaths.push((id, node.address.clone()));
                }
                self.nodes.insert(id, node);
                true
            }
        }
    }

    /// Sets this node's own available resources (always current here,
    /// whatever the versions).
    pub fn set_available(&mut self, id: NodeId, available: ResourceSet) {
        if let Some(n) = self.nodes.get_mut(&id) {
            n.available = available;
            n.debit = None;
        }
    }

    /// Takes `shape` off node `id`'s available resources (until its next
    /// report says otherwise).
    pub fn debit(&mut self, id: &NodeId, shape: &ResourceSet) {
        if let Some(n) = self.nodes.get_mut(id) {
            let fresh = n
                .debit
                .as_ref()
                .is_some_and(|(_, at)| at.elapsed() < DEBIT_TTL);
            let mut total = if fresh {
                n.debit.take().map(|(d, _)| d).unwrap_or_default()
            } else {
                ResourceSet::new()
            };
            total.add(shape);
            n.debit = Some((total, std::time::Instant::now()));
        }
    }

    /// Marks a node dead: it is never chosen again.
    pub fn mark_dead(&mut self, id: &NodeId) {
        if let Some(n) = self.nodes.get_mut(id) {
            if n.alive {
                self.deaths.push((*id, n.address.clone()));
            }
            n.alive = false;
            n.available = ResourceSet::new();
        }
    }

    /// The nodes (id, daemon address) that died since the last call.
    pub fn take_deaths(&mut self) -> Vec<(NodeId, String)> {
        std::mem::take(&mut self.deaths)
    }

    /// The node `id`.
    pub fn get(&self, id: &NodeId) -> Option<&NodeView> {
        self.nodes.get(id)
    }

    /// Every node.
    pub fn iter(&self) -> impl Iterator<Item = (&NodeId, &NodeView)> {
        self.nodes.iter()
    }

    /// Chooses the node for a request of `shape` made on node `me`.
    /// `spilled` requests were sent here by another node: they stay unless
    /// this node can never serve them.
    pub fn place(
        &mut self,
        me: NodeId,
        shape: &ResourceSet,
        strategy: Option<&SchedulingStrategy>,
        spilled: bool,
    ) -> Decision {
        let local_feasible = self.nodes.get(&me).is_some_and(|n| shape.fits_in(&n.total));
        if spilled && local_feasible {
            return Decision::Local;
        }
        let kind = strategy.map_or("DEFAULT", |s| s.kind.as_str());
        match kind {
            "NODE_AFFINITY" => {
                let s = strategy.expect("kind came from it");
                let target = NodeId::from_bytes(&s.node_id);
                let alive =
                    target.and_then(|t| self.nodes.get(&t).filter(|n| n.alive).map(|n| (t, n)));
                match alive {
                    Some((t, n)) if shape.fits_in(&n.total) || !s.soft => {
                        if t == me {
                            Decision::Local
                        } else {
                            Decision::Remote { node_id: t, address: n.address.clone() }
                        }
                    }
                    _ if s.soft => self.place_default(me, shape, local_feasible),
                    _ => Decision::Fail(format!(
                        "The node specified via NodeAffinitySchedulingStrategy (node id {}) doesn't exist any more \
                         or is infeasible, and soft=False was specified.",
                        target.map_or_else(|| "invalid".to_string(), |t| t.hex())
                    )),
                }
            }
            "SPREAD" => self.place_spread(me, shape),
            _ => self.place_default(me, shape, local_feasible),
        }
    }

    /// Data locality: a default request whose arguments sit on the node
    /// at `address` goes there when it fits there now.
    pub fn prefer(
        &self,
        address: &str,
        shape: &ResourceSet,
        strategy: Option<&SchedulingStrategy>,
        spilled: bool,
    ) -> Option<Decision> {
        if address.is_empty() || spilled || strategy.is_some_and(|s| s.kind != "DEFAULT") {
            return None;
        }
        let (id, n) = self.nodes.iter().find(|(_, n)| n.address == address)?;
        (n.alive && n.fits_now(shape)).then(|| Decision::Remote {
            node_id: *id,
            address: n.address.clone(),
        })
    }

    /// Ray's default (hybrid) policy: here while this node is less than
    /// [`LOCAL_THRESHOLD`] busy and it fits; else the least loaded of this
    /// node and a few others where it fits now (the first [`TOP_K`] found,
    /// from a point that moves on at each decision, so that a large cluster
    /// costs no more per decision than a small one); else here if it ever
    /// fits here (queued); else any node where it ever fits.
    fn place_default(&mut self, me: NodeId, shape: &ResourceSet, local_feasible: bool) -> Decision {
        let here = self
            .nodes
            .get(&me)
            .filter(|n| n.fits_now(shape))
            .map(free_share);
        if here.is_some_and(|free| free > 1.0 - LOCAL_THRESHOLD) {
            return Decision::Local;
        }
        let start = self.default_cursor % self.nodes.len().max(1);
        self.default_cursor = self.default_cursor.wrapping_add(1);
        let fits_now = self
            .nodes
            .iter()
            .skip(start)
            .chain(self.nodes.iter().take(start))
            .filter(|(id, n)| **id != me && n.alive && n.fits_now(shape))
            .take(TOP_K)
            .max_by(|a, b| free_share(a.1).total_cmp(&free_share(b.1)));
        match (here, fits_now) {
            (Some(free_here), Some((_, n))) if free_share(n) <= free_here => {
                return Decision::Local
            }
            (_, Some((id, n))) => {
                return Decision::Remote {
                    node_id: *id,
                    address: n.address.clone(),
                }
            }
            (Some(_), None) => return Decision::Local,
            (None, None) => {}
        }
        if local_feasible {
            return Decision::Local;
        }
        match self.alive_others(me).find(|(_, n)| shape.fits_in(&n.total)) {
            Some((id, n)) => Decision::Remote {
                node_id: *id,
                address: n.address.clone(),
            },
            None => Decision::Infeasible,
        }
    }

    /// `SPREAD`: round the nodes, taking the next one where it fits now
    /// (or, when none has room, the next one where it ever fits).
    fn place_spread(&mut self, me: NodeId, shape: &ResourceSet) -> Decision {
        let candidates: Vec<(NodeId, bool)> = self
            .nodes
            .iter()
            .filter(|(_, n)| n.alive && shape.fits_in(&n.total))
            .map(|(id, n)| (*id, n.fits_now(shape)))
            .collect();
        if candidates.is_empty() {
            return Decision::Infeasible;
        }
        let start = self.spread_cursor;
        let pick = (0..candidates.len())
            .map(|i| (start + i) % candidates.len())
            .find(|i| candidates[*i].1)
            .unwrap_or(start % candidates.len());
        self.spread_cursor = pick + 1;
        let id = candidates[pick].0;
        if id == me {
            Decision::Local
        } else {
            Decision::Remote {
                node_id: id,
                address: self.nodes[&id].address.clone(),
            }
        }
    }

    fn alive_others(&self, me: NodeId) -> impl Iterator<Item = (&NodeId, &NodeView)> {
        self.nodes
            .iter()
            .filter(move |(id, n)| **id != me && n.alive)
    }
}

/// The share of a node's CPUs free now (1.0 for a node without CPUs).
fn free_share(n: &NodeView) -> f64 {
    let total = n.total.get("CPU").as_f64();
    if total <= 0.0 {
        1.0
    } else {
        n.available.get("CPU").as_f64() / total
    }
}

/// A node of the view from its wire form.
pub fn view_of(n: &NodeInfo) -> NodeView {
    NodeView {
        address: n.address.clone(),
        total: ResourceSet::from_units(n.total.iter()),
        available: ResourceSet::from_units(n.available.iter()),
        alive: n.alive,
        version: n.version,
        debit: None,
        pending: n.pending.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn res(pairs: &[(&str, f64)]) -> ResourceSet {
        ResourceSet::from_f64(pairs.iter().copied()).unwrap()
    }

    fn node(addr: &str, total: &[(&str, f64)], avail: &[(&str, f64)]) -> NodeView {
        NodeView {
            address: addr.into(),
            total: res(total),
            available: res(avail),
            alive: true,
            version: 1,
            debit: None,
            pending: vec![],
        }
    }

    fn view() -> (ClusterView, NodeId, NodeId, NodeId) {
        let (a, b, c) = (NodeId::random(), NodeId::random(), NodeId::random());
        let mut v = ClusterView::default();
        v.update(a, node("a", &[("CPU", 1.0)], &[("CPU", 1.0)]));
        v.update(
            b,
            node(
                "b",
                &[("CPU", 2.0), ("gpu_box", 1.0)],
                &[("CPU", 2.0), ("gpu_box", 1.0)],
            ),
        );
        v.update(c, node("c", &[("CPU", 4.0)], &[("CPU", 0.0)]));
        (v, a, b, c)
    }

    #[test]
    fn deaths_are_reported_once_however_they_are_learned() {
        let (mut v, a, b, c) = view();
        assert!(v.take_deaths().is_empty());
        v.mark_dead(&a);
        v.mark_dead(&a);
        v.update(
            b,
            NodeView {
                alive: false,
                ..node("b", &[], &[])
            },
        );
        let dead_c = NodeInfo {
            node_id: c.0.to_vec(),
            address: "c".into(),
            alive: false,
            ..Default::default()
        };
        v.replace(std::slice::from_ref(&dead_c), a);
        let mut seen: Vec<String> = v.take_deaths().into_iter().map(|(_, a)| a).collect();
        seen.sort();
        assert_eq!(seen, ["a", "b", "c"]);
        v.replace(&[dead_c], a);
        assert!(v.take_deaths().is_empty(), "a dead node dies once");
    }

    #[test]
    fn default_stays_local_while_it_fits_then_spills_to_free_nodes() {
        let (mut v, a, b, _) = view();
        assert_eq!(
            v.place(a, &res(&[("CPU", 1.0)]), None, false),
            Decision::Local
        );
        v.update(
            a,
            NodeView {
                version: 2,
                ..node("a", &[("CPU", 1.0)], &[])
            },
        );
        assert_eq!(
            v.place(a, &res(&[("CPU", 1.0)]), None, false),
            Decision::Remote {
                node_id: b,
                address: "b".into()
            }
        );
        // A spilled request stays where it was sent.
        assert_eq!(
            v.place(a, &res(&[("CPU", 1.0)]), None, true),
            Decision::Local
        );
    }

    #[test]
    fn a_busy_node_sends_work_to_a_less_loaded_one() {
        let (mut v, a, b, _) = view();
        let one = res(&[("CPU", 1.0)]);
        v.update(
            a,
            NodeView {
                version: 2,
                ..node("a", &[("CPU", 4.0)], &[("CPU", 3.0)])
            },
        );
        assert_eq!(
            v.place(a, &one, None, false),
            Decision::Local,
            "25% busy: stays"
        );
        v.update(
            a,
            NodeView {
                version: 3,
                ..node("a", &[("CPU", 4.0)], &[("CPU", 1.0)])
            },
        );
        assert_eq!(
            v.place(a, &one, None, false),
            Decision::Remote {
                node_id: b,
                address: "b".into()
            },
            "75% busy"
        );
        v.update(
            b,
            NodeView {
                version: 2,
                ..node("b", &[("CPU", 8.0)], &[("CPU", 1.0)])
            },
        );
        assert_eq!(
            v.place(a, &one, None, false),
            Decision::Local,
            "the others are busier"
        );
    }

    #[test]
    fn custom_resources_route_to_their_node_and_unknown_shapes_are_infeasible() {
        let (mut v, a, b, _) = view();
        assert_eq!(
            v.place(a, &res(&[("gpu_box", 1.0)]), None, false),
            Decision::Remote {
                node_id: b,
                address: "b".into()
            }
        );
        assert_eq!(
            v.place(a, &res(&[("nothing", 1.0)]), None, false),
            Decision::Infeasible
        );
        v.mark_dead(&b);
        assert_eq!(
            v.place(a, &res(&[("gpu_box", 1.0)]), None, false),
            Decision::Infeasible
        );
    }

    #[test]
    fn what_was_sent_to_a_node_counts_there_until_it_reports() {
        let (mut v, a, b, _) = view();
        v.update(
            a,
            NodeView {
                version: 2,
                ..node("a", &[("CPU", 4.0)], &[])
            },
        );
        let two = res(&[("CPU", 2.0)]);
        assert_eq!(
            v.place(a, &two, None, false),
            Decision::Remote {
                node_id: b,
                address: "b".into()
            }
        );
        v.debit(&b, &two);
        // b is full until it reports (or the debit expires); a queues it.
        assert_eq!(v.place(a, &two, None, false), Decision::Local);
        v.update(
            b,
            NodeView {
                version: 2,
                ..node("b", &[("CPU", 2.0)], &[("CPU", 2.0)])
            },
        );
        assert_eq!(
            v.place(a, &two, None, false),
            Decision::Remote {
                node_id: b,
                address: "b".into()
            }
        );
    }

    #[test]
    fn stale_reports_are_ignored() {
        let (mut v, a, _, _) = view();
        assert!(v.update(
            a,
            NodeView {
                version: 5,
                ..node("a", &[("CPU", 1.0)], &[])
            }
        ));
        assert!(!v.update(
            a,
            NodeView {
                version: 4,
                ..node("a", &[("CPU", 1.0)], &[("CPU", 1.0)])
            }
        ));
        assert!(v.get(&a).unwrap().available.is_empty());
    }

    #[test]
    fn spread_goes_round_the_nodes_with_room() {
        let (mut v, a, _, _) = view();
        let spread = SchedulingStrategy {
            kind: "SPREAD".into(),
            ..Default::default()
        };
        let mut seen = std::collections::HashSet::new();
        for _ in 0..4 {
            let d = v.place(a, &res(&[("CPU", 1.0)]), Some(&spread), false);
            seen.insert(format!("{d:?}"));
        }
        // Node c has no CPU free, so a and b alternate.
        assert_eq!(seen.len(), 2, "{seen:?}");
    }

    #[test]
    fn node_affinity_hard_and_soft() {
        let (mut v, a, b, _) = view();
        let hard = SchedulingStrategy {
            kind: "NODE_AFFINITY".into(),
            node_id: b.0.to_vec(),
            soft: false,
        };
        assert_eq!(
            v.place(a, &res(&[("CPU", 1.0)]), Some(&hard), false),
            Decision::Remote {
                node_id: b,
                address: "b".into()
            }
        );
        v.mark_dead(&b);
        assert!(matches!(
            v.place(a, &res(&[("CPU", 1.0)]), Some(&hard), false),
            Decision::Fail(_)
        ));
        let soft = SchedulingStrategy { soft: true, ..hard };
        assert_eq!(
            v.place(a, &res(&[("CPU", 1.0)]), Some(&soft), false),
            Decision::Local
        );
    }
}
