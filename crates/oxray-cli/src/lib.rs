//! The `oxray` command: runs a node's daemon. Shared by the `oxray` binary
//! and the Python extension module (a wheel runs the daemon from there, so
//! it needs no separate binary).
//!
//! `oxray.init()` runs `oxray daemon ...` itself; users rarely call it by
//! hand.

use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Parser, Subcommand};
use oxray_common::ResourceSet;
use oxray_node::NodeConfig;
use std::ffi::OsString;

#[derive(Parser)]
#[command(
    name = "oxray",
    version,
    about = "oxray: Ray's core with a Rust runtime"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a head node daemon (control service plus node daemon) in the
    /// foreground.
    Daemon(DaemonArgs),
}

#[derive(clap::Args)]
struct DaemonArgs {
    /// Directory for the session's sockets and logs.
    #[arg(long)]
    session_dir: PathBuf,
    /// A resource the node offers, as NAME=AMOUNT (repeatable), e.g. CPU=4.
    #[arg(long = "resource", value_name = "NAME=AMOUNT")]
    resources: Vec<String>,
    /// The Python interpreter that runs workers.
    #[arg(long, default_value = "python3")]
    python: String,
    /// The Python module a worker runs.
    #[arg(long, default_value = "oxray._private.worker_main")]
    worker_module: String,
    /// The Python module of the template process that forks workers.
    #[arg(long, default_value = "oxray._private.zygote")]
    zygote_module: String,
    /// Start every worker as a new interpreter instead of forking it.
    #[arg(long)]
    no_zygote: bool,
    /// Workers to start before the first task.
    #[arg(long, default_value_t = 0)]
    prestart_workers: usize,
    /// Most workers starting at the same time.
    #[arg(long, default_value_t = 4)]
    max_starting_workers: usize,
    /// Stop the cluster when this process exits.
    #[arg(long)]
    owner_pid: Option<u32>,
    /// Size of the shared-memory object store in bytes.
    #[arg(long, default_value_t = 1 << 30)]
    object_store_memory: u64,
    /// Where objects are spilled when the store is full, and where those
    /// that cannot fit in it live (default: in the session directory).
    #[arg(long)]
    spill_dir: Option<PathBuf>,
    /// Take part in a multi-node cluster, listening on this IP (the node's
    /// address for other nodes). Without it the node is a single-node
    /// cluster reached over Unix sockets only.
    #[arg(long)]
    node_ip: Option<String>,
    /// The daemon's TCP port (0: any free port).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Join the cluster whose head listens at IP:PORT (without it, this
    /// node is the head).
    #[arg(long)]
    head_address: Option<String>,
    /// Serve `GET /healthz` over HTTP on this port, for container probes.
    #[arg(long)]
    health_port: Option<u16>,
    /// Serve Prometheus metrics (`GET /metrics`) on this port (0: any free
    /// one). A node of a multi-node cluster always serves them, on a free
    /// port by default; a single-node cluster only when this is given.
    #[arg(long)]
    metrics_port: Option<u16>,
    /// The head's journal: its tables (actors, key-value data, job ids)
    /// are kept in this file, and a head started again with it recovers
    /// them. Head only.
    #[arg(long)]
    journal: Option<PathBuf>,
}

/// The cluster token comes from the environment, never from the command
/// line, where every user of the machine could read it.
const TOKEN_VAR: &str = "OXRAY_AUTH_TOKEN";

fn parse_resources(specs: &[String]) -> Result<ResourceSet> {
    let mut pairs = Vec::new();
    for spec in specs {
        let Some((name, amount)) = spec.split_once('=') else {
            bail!("--resource expects NAME=AMOUNT, got '{spec}'");
        };
        let amount: f64 = amount
            .parse()
            .with_context(|| format!("--resource {name}: '{amount}' is not a number"))?;
        pairs.push((name.to_string(), amount));
    }
    Ok(ResourceSet::from_f64(
        pairs.iter().map(|(n, a)| (n.as_str(), *a)),
    )?)
}

/// Logs go to stderr, filtered by `OXRAY_LOG` (default `warn`). Once per
/// process.
pub fn init_logging() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("OXRAY_LOG")
                .unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .try_init();
}

/// Runs the command line `args` (the program name first), as the `oxray`
/// binary does. Returns when the daemon stops.
pub fn run<I, T>(args: I) -> Result<()>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    match Cli::parse_from(args).command {
        Command::Daemon(args) => {
            std::fs::create_dir_all(&args.session_dir)
                .with_context(|| format!("cannot create {}", args.session_dir.display()))?;
            let shm = PathBuf::from("/dev/shm");
            let store_dir = if shm.is_dir() {
                shm
            } else {
                args.session_dir.clone()
            };
            let session_name = args
                .session_dir
                .file_name()
                .map(|n| n.to_string_lossy().into_owned());
            let store_path = store_dir.join(format!("oxray-{}", session_name.unwrap_or_default()));
            let cluster = match args.node_ip {
                Some(node_ip) => {
                    let token = std::env::var(TOKEN_VAR).unwrap_or_default();
                    if token.len() < 16 {
                        bail!("a multi-node daemon needs the cluster token (16 characters or more) in {TOKEN_VAR}");
                    }
                    Some(oxray_node::ClusterConfig {
                        node_ip,
                        port: args.port,
                        head: args.head_address,
                        token,
                        journal: args.journal,
                    })
                }
                None => None,
            };
            let config = NodeConfig {
                cluster,
                health_port: args.health_port,
                metrics_port: args.metrics_port,
                spill_dir: args
                    .spill_dir
                    .unwrap_or_else(|| args.session_dir.join("spill")),
                store_path,
                object_store_memory: args.object_store_memory,
                socket_path: args.session_dir.join("daemon.sock"),
                session_dir: args.session_dir,
                resources: parse_resources(&args.resources)?,
                python: args.python,
                worker_module: args.worker_module,
                zygote_module: (!args.no_zygote).then_some(args.zygote_module),
                prestart_workers: args.prestart_workers,
                max_starting_workers: args.max_starting_workers.max(1),
                owner_pid: args.owner_pid,
            };
            oxray_node::run(config)?;
        }
    }
    Ok(())
}
