//! Resource accounting of one node: what it has, what is leased, which GPU
//! instances each lease holds.

use oxray_common::resources::{InstanceSlots, CPU, GPU};
use oxray_common::{FixedAmount, ResourceSet};

/// What one lease holds.
#[derive(Clone, Debug, Default)]
pub struct Allocation {
    /// The amounts taken from the node.
    pub resources: ResourceSet,
    /// GPU instances taken, with the share of each.
    pub gpus: Vec<(usize, FixedAmount)>,
    /// Whether the holder is blocked and has lent its CPUs back.
    pub lent_cpu: bool,
}

impl Allocation {
    /// GPU ids for `CUDA_VISIBLE_DEVICES`.
    pub fn gpu_ids(&self) -> Vec<u32> {
        self.gpus.iter().map(|(i, _)| *i as u32).collect()
    }
}

/// The node's totals and what is free now.
#[derive(Debug)]
pub struct ResourceLedger {
    total: ResourceSet,
    available: ResourceSet,
    gpus: InstanceSlots,
}

impl ResourceLedger {
    /// A ledger for a node with `total` resources; GPU instances come from
    /// the whole part of `total[GPU]`.
    pub fn new(total: ResourceSet) -> Self {
        let gpu_count = total.get(GPU).as_f64().floor() as usize;
        Self {
            available: total.clone(),
            gpus: InstanceSlots::new(gpu_count),
            total,
        }
    }

    /// The node's totals.
    pub fn total(&self) -> &ResourceSet {
        &self.total
    }

    /// What is free now.
    pub fn available(&self) -> &ResourceSet {
        &self.available
    }

    /// Whether `shape` could ever run on this node.
    pub fn is_feasible(&self, shape: &ResourceSet) -> bool {
        shape.fits_in(&self.total) && gpu_shape_valid(shape.get(GPU))
    }

    /// Takes `shape` if it fits now.
    pub fn try_acquire(&mut self, shape: &ResourceSet) -> Option<Allocation> {
        if !shape.fits_in(&self.available) {
            return None;
        }
        let gpus = self.gpus.allocate(shape.get(GPU))?;
        self.available.subtract_allow_negative(shape);
        Some(Allocation {
            resources: shape.clone(),
            gpus,
            lent_cpu: false,
        })
    }

    /// Gives an allocation back.
    pub fn release(&mut self, alloc: &Allocation) {
        let mut back = alloc.resources.clone();
        if alloc.lent_cpu {
            back.set(CPU, FixedAmount(0));
        }
        self.available.add(&back);
        self.gpus.release(&alloc.gpus);
    }

    /// Sets resources aside for a placement group's bundles: `shape` leaves
    /// the pool, and the group's own resources (`extra`) join it. `None`
    /// when `shape` does not fit now.
    pub fn reserve_bundle(
        &mut self,
        shape: &ResourceSet,
        extra: &ResourceSet,
    ) -> Option<Allocation> {
        let alloc = self.try_acquire(shape)?;
        self.total.add(extra);
        self.available.add(extra);
        Some(alloc)
    }

    /// Returns a bundle: its group's resources (`extra`) leave the node,
    /// what it set aside comes back.
    pub fn return_bundle(&mut self, alloc: &Allocation, extra: &ResourceSet) {
        for (name, _) in extra.iter() {
            self.total.set(name, FixedAmount(0));
            self.available.set(name, FixedAmount(0));
        }
        self.release(alloc);
    }

    /// The holder blocked: lend its CPUs to others.
    pub fn lend_cpu(&mut self, alloc: &mut Allocation) {
        if !alloc.lent_cpu {
            alloc.lent_cpu = true;
            self.available.add(&alloc.resources.only(CPU));
        }
    }

    /// The holder resumed: take its CPUs back, even past zero.
    pub fn reclaim_cpu(&mut self, alloc: &mut Allocation) {
        if alloc.lent_cpu {
            alloc.lent_cpu = false;
            self.available
                .subtract_allow_negative(&alloc.resources.only(CPU));
        }
    }
}

/// GPU requests above one must be whole numbers, as in Ray.
fn gpu_shape_valid(amount: FixedAmount) -> bool {
    amount.0 <= oxray_common::resources::UNITS_PER_WHOLE || amount.whole().is_some()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(pairs: &[(&str, f64)]) -> ResourceSet {
        ResourceSet::from_f64(pairs.iter().copied()).unwrap()
    }

    #[test]
    fn never_exceeds_totals() {
        let mut l = ResourceLedger::new(set(&[("CPU", 2.0)]));
        let one = set(&[("CPU", 1.0)]);
        let a = l.try_acquire(&one).unwrap();
        let _b = l.try_acquire(&one).unwrap();
        assert!(l.try_acquire(&one).is_none());
        l.release(&a);
        assert!(l.try_acquire(&one).is_some());
    }

    #[test]
    fn infeasible_shapes_are_known() {
        let l = ResourceLedger::new(set(&[("CPU", 2.0), ("GPU", 2.0)]));
        assert!(!l.is_feasible(&set(&[("CPU", 3.0)])));
        assert!(!l.is_feasible(&set(&[("Custom", 1.0)])));
        assert!(!l.is_feasible(&set(&[("GPU", 1.5)])));
        assert!(l.is_feasible(&set(&[("GPU", 0.5)])));
    }

    #[test]
    fn gpu_ids_are_distinct_for_whole_gpus() {
        let mut l = ResourceLedger::new(set(&[("GPU", 2.0)]));
        let a = l.try_acquire(&set(&[("GPU", 1.0)])).unwrap();
        let b = l.try_acquire(&set(&[("GPU", 1.0)])).unwrap();
        assert_ne!(a.gpu_ids(), b.gpu_ids());
        assert!(l.try_acquire(&set(&[("GPU", 0.5)])).is_none());
    }

    #[test]
    fn blocked_holder_lends_cpu_and_takes_it_back() {
        let mut l = ResourceLedger::new(set(&[("CPU", 1.0)]));
        let mut a = l.try_acquire(&set(&[("CPU", 1.0)])).unwrap();
        l.lend_cpu(&mut a);
        let b = l.try_acquire(&set(&[("CPU", 1.0)])).unwrap();
        l.reclaim_cpu(&mut a);
        assert_eq!(
            l.available().get("CPU").0,
            -10_000,
            "briefly oversubscribed"
        );
        l.release(&b);
        l.release(&a);
        assert_eq!(l.available().get("CPU").as_f64(), 1.0);
    }

    #[test]
    fn release_after_lend_does_not_double_count() {
        let mut l = ResourceLedger::new(set(&[("CPU", 1.0)]));
        let mut a = l.try_acquire(&set(&[("CPU", 1.0)])).unwrap();
        l.lend_cpu(&mut a);
        l.release(&a);
        assert_eq!(l.available().get("CPU").as_f64(), 1.0);
    }
}
