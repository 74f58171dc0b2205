//! The node's Prometheus metrics, under Ray's names: CPU and memory of the
//! host, the object store's use, and the node's resources. Read at each
//! scrape, so the task path pays nothing for them.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

use crate::daemon::Node;

/// CPU time counters from `/proc/stat`, in clock ticks.
#[derive(Clone, Copy, Debug)]
pub(crate) struct CpuSample {
    busy: u64,
    total: u64,
}

type Labels = Vec<(String, String)>;
type Gauges = Family<Labels, Gauge<f64, AtomicU64>>;

impl Node {
    /// The port of this node's Prometheus endpoint (0: none).
    pub(crate) fn metrics_port(&self) -> u16 {
        self.metrics_port.get().copied().unwrap_or(0)
    }

    /// The node's metrics in Prometheus' text format.
    pub(crate) fn metrics_text(&self) -> String {
        let mut registry = Registry::default();
        let base: Labels = vec![
            ("NodeAddress".into(), self.metrics_address()),
            ("NodeId".into(), self.node_id.hex()),
            (
                "SessionName".into(),
                self.config
                    .session_dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
            ),
        ];
        let with = |extra: &[(&str, &str)]| -> Labels {
            let mut labels = base.clone();
            labels.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
            labels
        };
        // Help texts end without a period: the encoder adds one.
        let mut gauge = |name: &str, help: &str, samples: Vec<(Labels, f64)>| {
            let family = Gauges::default();
            for (labels, value) in samples {
                family.get_or_create(&labels).set(value);
            }
            registry.register(name, help, family);
        };

        if let Some(percent) = self.cpu_utilization() {
            gauge(
                "ray_node_cpu_utilization",
                "Total CPU use of the node's host, in percent",
                vec![(with(&[]), percent)],
            );
        }
        gauge(
            "ray_node_cpu_count",
            "CPUs of the node's host",
            vec![(
                with(&[]),
                std::thread::available_parallelism().map_or(1, |n| n.get()) as f64,
            )],
        );
        if let Some(mem) = MemInfo::read() {
            gauge(
                "ray_node_mem_used",
                "Memory used on the node's host, in bytes",
                vec![(with(&[]), mem.used() as f64)],
            );
            gauge(
                "ray_node_mem_available",
                "Memory available on the node's host, in bytes",
                vec![(with(&[]), mem.available as f64)],
            );
            gauge(
                "ray_node_mem_total",
                "Memory of the node's host, in bytes",
                vec![(with(&[]), mem.total as f64)],
            );
        }

        let stats = self.store.lock().stats();
        gauge(
            "ray_object_store_memory",
            "Bytes of objects in the object store, by where they are",
            vec![
                (with(&[("Location", "MMAP_SHM")]), stats.used as f64),
                (with(&[("Location", "SPILLED")]), stats.spilled_bytes as f64),
            ],
        );
        gauge(
            "ray_object_store_available_memory",
            "Bytes free in the object store's shared memory",
            vec![(with(&[]), stats.capacity.saturating_sub(stats.used) as f64)],
        );
        gauge(
            "ray_object_store_num_local_objects",
            "Objects in the object store (in memory or spilled)",
            vec![(with(&[]), stats.objects as f64)],
        );

        let (resources, workers) = {
            let st = self.state.lock();
            let total = st.ledger.total().clone();
            let available = st.ledger.available().clone();
            (
                total
                    .iter()
                    .map(|(name, amount)| {
                        let free = available.get(name).as_f64();
                        (name.to_string(), amount.as_f64(), free)
                    })
                    .collect::<Vec<_>>(),
                st.workers.len(),
            )
        };
        let mut samples = Vec::new();
        for (name, total, free) in resources {
            samples.push((with(&[("Name", &name), ("State", "USED")]), total - free));
            samples.push((with(&[("Name", &name), ("State", "AVAILABLE")]), free));
        }
        gauge(
            "ray_resources",
            "The node's logical resources, used and available",
            samples,
        );
        gauge(
            "ray_node_workers",
            "Worker processes of the node",
            vec![(with(&[]), workers as f64)],
        );

        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = encode(&mut out, &registry);
        out
    }

    fn metrics_address(&self) -> String {
        match self.ip() {
            "" => "127.0.0.1".to_string(),
            ip => ip.to_string(),
        }
    }

    /// CPU use since the previous scrape (since boot at the first one).
    fn cpu_utilization(&self) -> Option<f64> {
        let now = CpuSample::read()?;
        let before = self.cpu_sample.lock().replace(now);
        let (busy, total) = match before {
            Some(b) if now.total > b.total => {
                (now.busy - b.busy.min(now.busy), now.total - b.total)
            }
            _ => (now.busy, now.total),
        };
        (total > 0).then(|| 100.0 * busy as f64 / total as f64)
    }
}

impl CpuSample {
    fn read() -> Option<Self> {
        let stat = std::fs::read_to_string("/proc/stat").ok()?;
        let fields: Vec<u64> = stat
            .lines()
            .next()?
            .split_whitespace()
            .skip(1)
            .filter_map(|f| f.parse().ok())
            .collect();
        // user nice system idle iowait irq softirq steal
        let idle = fields.get(3)? + fields.get(4).copied().unwrap_or(0);
        let total: u64 = fields.iter().take(8).sum();
        Some(Self {
            busy: total.saturating_sub(idle),
            total,
        })
    }
}

/// What `/proc/meminfo` says, in bytes.
struct MemInfo {
    total: u64,
    available: u64,
}

impl MemInfo {
    fn read() -> Option<Self> {
        let text = std::fs::read_to_string("/proc/meminfo").ok()?;
        let field = |name: &str| -> Option<u64> {
            let line = text.lines().find(|l| l.starts_with(name))?;
            let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
            Some(kib * 1024)
        };
        Some(Self {
            total: field("MemTotal:")?,
            available: field("MemAvailable:")?,
        })
    }

    fn used(&self) -> u64 {
        self.total.saturating_sub(self.available)
    }
}
