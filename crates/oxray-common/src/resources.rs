//! Resource amounts and sets, in fixed point so that fractional requests
//! (`num_gpus=0.5`) add up exactly.

use std::collections::BTreeMap;
use std::fmt;

use crate::error::{Error, Result};

/// Resolution of resource amounts: 1/10000 of a unit, as in Ray.
pub const UNITS_PER_WHOLE: i64 = 10_000;

/// The name of the CPU resource.
pub const CPU: &str = "CPU";
/// The name of the GPU resource.
pub const GPU: &str = "GPU";
/// The name of the memory resource (bytes).
pub const MEMORY: &str = "memory";
/// The name of the object store memory resource (bytes).
pub const OBJECT_STORE_MEMORY: &str = "object_store_memory";

/// A non-negative resource amount in units of 1/10000.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct FixedAmount(pub i64);

impl FixedAmount {
    /// Converts a user-supplied number, rejecting negative, non-finite and
    /// over-precise amounts.
    pub fn from_f64(name: &str, value: f64) -> Result<Self> {
        let invalid = |reason: &str| Error::InvalidResource {
            name: name.to_string(),
            reason: reason.to_string(),
        };
        if !value.is_finite() {
            return Err(invalid("the amount must be a finite number"));
        }
        if value < 0.0 {
            return Err(invalid(&format!(
                "the amount must be non-negative, got {value}"
            )));
        }
        let scaled = value * UNITS_PER_WHOLE as f64;
        if scaled > i64::MAX as f64 / 2.0 {
            return Err(invalid(&format!("the amount {value} is too large")));
        }
        let rounded = scaled.round();
        if (scaled - rounded).abs() > 1e-6 * scaled.max(1.0) {
            return Err(invalid(&format!(
                "the amount {value} has more than 4 decimal places"
            )));
        }
        Ok(Self(rounded as i64))
    }

    /// The amount as a float, for display and Python.
    pub fn as_f64(self) -> f64 {
        self.0 as f64 / UNITS_PER_WHOLE as f64
    }

    /// Whole units (e.g. 3 GPUs), if the amount is a whole number.
    pub fn whole(self) -> Option<i64> {
        (self.0 % UNITS_PER_WHOLE == 0).then_some(self.0 / UNITS_PER_WHOLE)
    }

    /// Whether the amount is zero.
    pub fn is_zero(self) -> bool {
        self.0 == 0
    }
}

impl fmt::Debug for FixedAmount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.as_f64())
    }
}

/// A bag of named resource amounts, e.g. `{CPU: 1, GPU: 0.5, Custom: 2}`.
/// Zero amounts are never stored.
#[derive(Clone, PartialEq, Eq, Default, Hash)]
pub struct ResourceSet(BTreeMap<String, FixedAmount>);

impl ResourceSet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds a set from `(name, amount)` pairs given as floats.
    pub fn from_f64<'a>(pairs: impl IntoIterator<Item = (&'a str, f64)>) -> Result<Self> {
        let mut set = Self::new();
        for (name, value) in pairs {
            set.set(name, FixedAmount::from_f64(name, value)?);
        }
        Ok(set)
    }

    /// Sets one amount (removing it when zero).
    pub fn set(&mut self, name: &str, amount: FixedAmount) {
        if amount.is_zero() {
            self.0.remove(name);
        } else {
            self.0.insert(name.to_string(), amount);
        }
    }

    /// The amount of `name` (zero when absent).
    pub fn get(&self, name: &str) -> FixedAmount {
        self.0.get(name).copied().unwrap_or_default()
    }

    /// Iterates over the non-zero amounts.
    pub fn iter(&self) -> impl Iterator<Item = (&str, FixedAmount)> {
        self.0.iter().map(|(k, v)| (k.as_str(), *v))
    }

    /// Whether every amount in `self` is available in `available`.
    pub fn fits_in(&self, available: &ResourceSet) -> bool {
        self.iter().all(|(k, v)| available.get(k) >= v)
    }

    /// The resources of `self` that `total` lacks or has too little of.
    pub fn shortfall(&self, total: &ResourceSet) -> Vec<String> {
        self.iter()
            .filter(|(k, v)| total.get(k) < *v)
            .map(|(k, v)| format!("{k}: {} (node has {})", v.as_f64(), total.get(k).as_f64()))
            .collect()
    }

    /// Adds `other` into `self`.
    pub fn add(&mut self, other: &ResourceSet) {
        for (k, v) in other.iter() {
            let sum = FixedAmount(self.get(k).0 + v.0);
            self.set(k, sum);
        }
    }

    /// Subtracts `other` from `self`. Amounts may go negative only through
    /// [`ResourceSet::subtract_allow_negative`]; here they saturate at zero.
    pub fn subtract(&mut self, other: &ResourceSet) {
        for (k, v) in other.iter() {
            let diff = FixedAmount((self.get(k).0 - v.0).max(0));
            self.set(k, diff);
        }
    }

    /// Subtracts `other`, letting amounts go below zero. Used when a worker
    /// that lent its CPU while blocked takes it back: Ray lets the node be
    /// briefly oversubscribed rather than deadlock.
    pub fn subtract_allow_negative(&mut self, other: &ResourceSet) {
        for (k, v) in other.iter() {
            let diff = self.get(k).0 - v.0;
            if diff == 0 {
                self.0.remove(k);
            } else {
                self.0.insert(k.to_string(), FixedAmount(diff));
            }
        }
    }

    /// Only the entries named `name`.
    pub fn only(&self, name: &str) -> ResourceSet {
        let mut s = ResourceSet::new();
        s.set(name, self.get(name));
        s
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The amounts as floats.
    pub fn to_f64_map(&self) -> BTreeMap<String, f64> {
        self.iter()
            .map(|(k, v)| (k.to_string(), v.as_f64()))
            .collect()
    }

    /// The amounts in raw fixed-point units, for the wire.
    pub fn to_units(&self) -> BTreeMap<String, i64> {
        self.iter().map(|(k, v)| (k.to_string(), v.0)).collect()
    }

    /// Rebuilds a set from raw fixed-point units (negative amounts clamp).
    pub fn from_units<'a>(pairs: impl IntoIterator<Item = (&'a String, &'a i64)>) -> Self {
        let mut s = Self::new();
        for (k, v) in pairs {
            s.set(k, FixedAmount((*v).max(0)));
        }
        s
    }
}

impl fmt::Debug for ResourceSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.0.iter()).finish()
    }
}

/// Per-instance accounting for resources whose instances are handed out by id
/// (GPUs): each instance holds one whole unit that fractional requests share.
#[derive(Clone, Debug, Default)]
pub struct InstanceSlots {
    free: Vec<FixedAmount>,
}

impl InstanceSlots {
    /// `count` instances, each fully free.
    pub fn new(count: usize) -> Self {
        Self {
            free: vec![FixedAmount(UNITS_PER_WHOLE); count],
        }
    }

    /// Number of instances.
    pub fn len(&self) -> usize {
        self.free.len()
    }

    /// Whether there are no instances.
    pub fn is_empty(&self) -> bool {
        self.free.is_empty()
    }

    /// Picks instances for `amount`: a fraction shares one instance (the
    /// fullest that still fits, to keep whole instances free); a whole number
    /// takes that many fully free instances. Returns `(id, amount)` per
    /// instance taken, or `None` when it does not fit now.
    pub fn allocate(&mut self, amount: FixedAmount) -> Option<Vec<(usize, FixedAmount)>> {
        if amount.is_zero() {
            return Some(Vec::new());
        }
        if amount.0 < UNITS_PER_WHOLE {
            let pick = self
                .free
                .iter()
                .enumerate()
                .filter(|(_, f)| **f >= amount)
                .min_by_key(|(_, f)| f.0)
                .map(|(i, _)| i)?;
            self.free[pick].0 -= amount.0;
            return Some(vec![(pick, amount)]);
        }
        let whole = amount.whole()? as usize;
        let ids: Vec<usize> = self
            .free
            .iter()
            .enumerate()
            .filter(|(_, f)| f.0 == UNITS_PER_WHOLE)
            .map(|(i, _)| i)
            .take(whole)
            .collect();
        if ids.len() < whole {
            return None;
        }
        for &i in &ids {
            self.free[i].0 = 0;
        }
        Some(
            ids.into_iter()
                .map(|i| (i, FixedAmount(UNITS_PER_WHOLE)))
                .collect(),
        )
    }

    /// Gives back what [`InstanceSlots::allocate`] handed out.
    pub fn release(&mut self, taken: &[(usize, FixedAmount)]) {
        for (i, a) in taken {
            if let Some(slot) = self.free.get_mut(*i) {
                slot.0 = (slot.0 + a.0).min(UNITS_PER_WHOLE);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(pairs: &[(&str, f64)]) -> ResourceSet {
        ResourceSet::from_f64(pairs.iter().copied()).unwrap()
    }

    #[test]
    fn rejects_bad_amounts() {
        assert!(FixedAmount::from_f64("CPU", -1.0).is_err());
        assert!(FixedAmount::from_f64("CPU", f64::NAN).is_err());
        assert!(FixedAmount::from_f64("CPU", f64::INFINITY).is_err());
        assert!(FixedAmount::from_f64("GPU", 0.00001).is_err());
        assert_eq!(FixedAmount::from_f64("GPU", 0.5).unwrap().0, 5000);
    }

    #[test]
    fn fractions_add_up_exactly() {
        let mut avail = set(&[("GPU", 1.0)]);
        let third = set(&[("GPU", 0.3333)]);
        for _ in 0..3 {
            assert!(third.fits_in(&avail));
            avail.subtract(&third);
        }
        assert!(!third.fits_in(&avail));
        assert_eq!(avail.get("GPU").0, 1);
    }

    #[test]
    fn fits_and_shortfall() {
        let total = set(&[("CPU", 2.0), ("Custom", 1.0)]);
        assert!(set(&[("CPU", 2.0)]).fits_in(&total));
        assert!(!set(&[("CPU", 3.0)]).fits_in(&total));
        assert!(!set(&[("Other", 1.0)]).fits_in(&total));
        let short = set(&[("CPU", 3.0), ("Custom", 1.0)]).shortfall(&total);
        assert_eq!(short, vec!["CPU: 3 (node has 2)".to_string()]);
    }

    #[test]
    fn add_subtract_round_trip_and_zero_removed() {
        let mut a = set(&[("CPU", 2.0)]);
        a.subtract(&set(&[("CPU", 2.0)]));
        assert!(a.is_empty());
        a.add(&set(&[("CPU", 1.5)]));
        assert_eq!(a.get("CPU").as_f64(), 1.5);
        a.subtract_allow_negative(&set(&[("CPU", 2.0)]));
        assert_eq!(a.get("CPU").0, -5000);
    }

    #[test]
    fn gpu_instances_pack_fractions_and_keep_wholes() {
        let mut g = InstanceSlots::new(2);
        let half = FixedAmount(5000);
        let a = g.allocate(half).unwrap();
        let b = g.allocate(half).unwrap();
        assert_eq!(a[0].0, b[0].0, "two halves share one GPU");
        let whole = g.allocate(FixedAmount(UNITS_PER_WHOLE)).unwrap();
        assert_ne!(whole[0].0, a[0].0);
        assert!(g.allocate(half).is_none());
        g.release(&a);
        assert!(g.allocate(FixedAmount(UNITS_PER_WHOLE)).is_none());
        assert!(g.allocate(half).is_some());
    }

    #[test]
    fn whole_gpus_need_free_instances() {
        let mut g = InstanceSlots::new(4);
        let two = g.allocate(FixedAmount(2 * UNITS_PER_WHOLE)).unwrap();
        assert_eq!(two.len(), 2);
        assert!(g.allocate(FixedAmount(3 * UNITS_PER_WHOLE)).is_none());
        g.release(&two);
        assert_eq!(
            g.allocate(FixedAmount(4 * UNITS_PER_WHOLE)).unwrap().len(),
            4
        );
    }
}
