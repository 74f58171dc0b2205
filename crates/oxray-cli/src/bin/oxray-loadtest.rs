//! `oxray-loadtest`: a load test of the head's control plane.
//!
//! Starts a head daemon (no CPUs of its own, so everything goes to other
//! nodes), then simulates many node agents in this process: each registers
//! over TCP with the token, reports its resources every second, grants the
//! leases the head asks for, and answers creation tasks as if a worker ran
//! them. Then it creates actors and placement groups through the head and
//! measures how fast they are placed, and what the head costs in CPU and
//! memory meanwhile. Prints one JSON line per figure.
//!
//!     oxray-loadtest --daemon target/release/oxray --nodes 1000

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use oxray_common::{ActorId, NodeId};
use oxray_proto::frame::FrameWriter;
use oxray_proto::rpc::RpcPeer;
use oxray_proto::*;

#[derive(Parser)]
#[command(about = "Load test of the head's control plane with simulated nodes")]
struct Args {
    /// The `oxray` daemon binary.
    #[arg(long)]
    daemon: String,
    /// Simulated nodes.
    #[arg(long, default_value_t = 1000)]
    nodes: usize,
    /// Actors to place.
    #[arg(long, default_value_t = 5000)]
    actors: usize,
    /// Placement groups to create (and remove).
    #[arg(long, default_value_t = 2000)]
    placement_groups: usize,
    /// Seconds of steady state (every node reporting) to measure the head's
    /// idle cost.
    #[arg(long, default_value_t = 5.0)]
    steady_seconds: f64,
}

const TOKEN: &str = "loadtest-token-0123456789abcdef";
/// CPUs of each simulated node, in resource units (1 CPU = 10,000).
const NODE_CPUS: i64 = 16 * 10_000;

fn emit(name: &str, value: f64, unit: &str) {
    println!("{{\"name\": \"{name}\", \"value\": {value:.3}, \"unit\": \"{unit}\"}}");
}

/// CPU seconds used so far and resident memory (bytes) of process `pid`.
fn usage(pid: u32) -> Result<(f64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .context("malformed stat")?
        .1
        .split_whitespace()
        .collect();
    let ticks: f64 = fields[11].parse::<f64>()? + fields[12].parse::<f64>()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let rss_kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let hz = rustix::param::clock_ticks_per_second() as f64;
    Ok((ticks / hz, rss_kb * 1024))
}

/// Answers every request a simulated node gets: leases are granted at
/// once (on the shared fake worker), bundles reserved, creation tasks run.
async fn serve(
    mut reader: oxray_proto::frame::FrameReader<tokio::net::tcp::OwnedReadHalf>,
    writer: FrameWriter,
    worker: Arc<str>,
) {
    static LEASES: AtomicU64 = AtomicU64::new(1);
    while let Some(env) = reader.next().await {
        let reply = match env.body {
            Some(Body::RequestLease(_)) => Body::LeaseGranted(LeaseGranted {
                lease_id: LEASES.fetch_add(1, Ordering::Relaxed),
                worker_id: vec![7; 16],
                address: worker.to_string(),
                gpu_ids: vec![],
                pid: 1,
            }),
            Some(Body::ReserveBundles(_))
            | Some(Body::ReturnBundles(_))
            | Some(Body::ReturnLease(_)) => Body::Ack(Ack {}),
            Some(Body::PushTask(spec)) => Body::TaskReply(TaskReply {
                task_id: spec.task_id,
                returns: vec![Object {
                    data: Default::default(),
                    metadata: bytes::Bytes::from_static(b"P"),
                    nested: vec![],
                }],
                retryable: false,
                bounced: false,
            }),
            _ => continue,
        };
        if env.id != 0 {
            writer.reply(env.id, reply);
        }
    }
}

/// A TCP listener whose connections (after the token) are served by `serve`.
async fn listen(worker: Option<Arc<str>>) -> Result<(String, Arc<str>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = format!("tcp:{}", listener.local_addr()?);
    let worker: Arc<str> = worker.unwrap_or_else(|| Arc::from(addr.as_str()));
    let w = worker.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let w = w.clone();
            tokio::spawn(async move {
                if let Some((reader, writer)) = transport::accept_tcp(stream, TOKEN).await {
                    serve(reader, writer, w).await;
                }
            });
        }
    });
    Ok((addr, worker))
}

/// One simulated node: registers, then reports every second.
async fn run_node(head: String, worker: Arc<str>) -> Result<Arc<RpcPeer>> {
    let (address, _) = listen(Some(worker)).await?;
    let (peer, mut inbox) = RpcPeer::connect_tcp(&head, TOKEN).await?;
    let id = NodeId::random();
    let total: std::collections::BTreeMap<String, i64> = [("CPU".to_string(), NODE_CPUS)].into();
    let info = NodeInfo {
        node_id: id.0.to_vec(),
        address,
        alive: true,
        total: total.clone(),
        available: total.clone(),
        hostname: "sim".into(),
        is_head: false,
        ip: "127.0.0.1".into(),
        version: 1,
        pending: vec![],
        metrics_port: 0,
    };
    peer.call(Body::RegisterNode(RegisterNode { node: Some(info) }))
        .await?;
    let reporter = peer.clone();
    tokio::spawn(async move {
        // Keep the inbox (cluster views) drained, and report once a second.
        let mut version = 2;
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        loop {
            tokio::select! {
                msg = inbox.recv() => if msg.is_none() { return },
                _ = tick.tick() => {
                    version += 1;
                    reporter.send(Body::ResourceReport(ResourceReport {
                        node_id: id.0.to_vec(), version, available: total.clone(), total: total.clone(), pending: vec![],
                    }));
                }
            }
        }
    });
    Ok(peer)
}

async fn alive_nodes(client: &RpcPeer) -> Result<usize> {
    match client
        .call(Body::ClusterInfoRequest(ClusterInfoRequest {}))
        .await?
    {
        Body::ClusterInfo(c) => Ok(c.nodes.iter().filter(|n| n.alive && !n.is_head).count()),
        other => bail!("unexpected {other:?}"),
    }
}

async fn run(args: Args) -> Result<()> {
    raise_fd_limit();
    let session = std::env::temp_dir().join(format!("oxray-loadtest-{}", std::process::id()));
    std::fs::create_dir_all(&session)?;
    let mut head = std::process::Command::new(&args.daemon)
        .args(["daemon", "--session-dir"])
        .arg(&session)
        .args([
            "--node-ip",
            "127.0.0.1",
            "--port",
            "0",
            "--resource",
            "CPU=0",
            "--object-store-memory",
            "16777216",
            "--no-zygote",
        ])
        .arg("--owner-pid")
        .arg(std::process::id().to_string())
        .env("OXRAY_AUTH_TOKEN", TOKEN)
        .spawn()
        .context("cannot start the head daemon")?;
    let result = async {
        let address_file = session.join("node_address");
        let deadline = Instant::now() + Duration::from_secs(30);
        while !session.join("daemon.sock").exists() {
            if Instant::now() > deadline {
                bail!("the head did not start");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let address = std::fs::read_to_string(address_file)?;
        let head_tcp = transport::Address::parse(&address)
            .tcp
            .context("the head has no TCP address")?;
        let pid = head.id();
        let (client, _inbox) = RpcPeer::connect_tcp(&head_tcp, TOKEN).await?;
        let (_, worker) = listen(None).await?;

        // Join: every node registers at once.
        let t = Instant::now();
        let joins =
            (0..args.nodes).map(|_| tokio::spawn(run_node(head_tcp.clone(), worker.clone())));
        let mut nodes = Vec::with_capacity(args.nodes);
        for j in futures::future::join_all(joins).await {
            nodes.push(j??);
        }
        while alive_nodes(&client).await? < args.nodes {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        emit(
            &format!("{} nodes joined", args.nodes),
            t.elapsed().as_secs_f64(),
            "s",
        );

        // Steady state: every node reporting once a second.
        let (cpu0, _) = usage(pid)?;
        tokio::time::sleep(Duration::from_secs_f64(args.steady_seconds)).await;
        let (cpu1, rss) = usage(pid)?;
        emit(
            "head CPU, steady state",
            100.0 * (cpu1 - cpu0) / args.steady_seconds,
            "% of a core",
        );
        emit(
            "head memory (RSS), steady state",
            rss as f64 / (1 << 20) as f64,
            "MiB",
        );

        // Actor placements.
        let t = Instant::now();
        let creates = (0..args.actors).map(|i| {
            let id = ActorId::random();
            let spec = TaskSpec {
                task_id: vec![(i % 251) as u8; 16],
                actor_id: id.0.to_vec(),
                actor_creation: true,
                num_returns: 1,
                owner: "tcp:127.0.0.1:1".into(),
                function_name: "Sim".into(),
                ..Default::default()
            };
            let body = Body::CreateActor(CreateActor {
                spec: Some(spec),
                resources: [("CPU".to_string(), 10_000)].into(),
                detached: true,
                class_name: "Sim".into(),
                ..Default::default()
            });
            let client = client.clone();
            async move {
                client.call(body).await?;
                let wait = GetActorInfo {
                    actor_id: id.0.to_vec(),
                    wait: true,
                    ..Default::default()
                };
                match client.call(Body::GetActorInfo(wait)).await? {
                    Body::ActorInfo(a) if a.state == ActorState::Alive as i32 => Ok(()),
                    other => bail!("actor not alive: {other:?}"),
                }
            }
        });
        for r in futures::future::join_all(creates).await {
            r?;
        }
        emit(
            "actor placements",
            args.actors as f64 / t.elapsed().as_secs_f64(),
            "per_s",
        );

        // Placement groups, created, waited for and removed.
        let t = Instant::now();
        let groups = (0..args.placement_groups).map(|_| {
            let client = client.clone();
            async move {
                let pg_id = ActorId::random().0.to_vec();
                let bundle = Bundle {
                    resources: [("CPU".to_string(), 10_000)].into(),
                    ..Default::default()
                };
                let create = CreatePlacementGroup {
                    pg_id: pg_id.clone(),
                    bundles: vec![bundle],
                    strategy: "PACK".into(),
                    ..Default::default()
                };
                client.call(Body::CreatePlacementGroup(create)).await?;
                let wait = GetPlacementGroup {
                    pg_id: pg_id.clone(),
                    wait: true,
                    ..Default::default()
                };
                match client.call(Body::GetPlacementGroup(wait)).await? {
                    Body::PlacementGroupInfo(p) if p.state == "CREATED" => {}
                    other => bail!("placement group not created: {other:?}"),
                }
                client
                    .call(Body::RemovePlacementGroup(RemovePlacementGroup { pg_id }))
                    .await?;
                Ok(())
            }
        });
        for r in futures::future::join_all(groups).await {
            r?;
        }
        emit(
            "placement groups create+remove",
            args.placement_groups as f64 / t.elapsed().as_secs_f64(),
            "per_s",
        );
        let (_, rss) = usage(pid)?;
        emit(
            "head memory (RSS), after the load",
            rss as f64 / (1 << 20) as f64,
            "MiB",
        );
        drop(nodes);
        Ok(())
    }
    .await;
    let _ = head.kill();
    let _ = head.wait();
    let _ = std::fs::remove_dir_all(&session);
    // Killed, the daemon could not remove its shared-memory file.
    if let Some(name) = session.file_name() {
        let mut store = std::ffi::OsString::from("oxray-");
        store.push(name);
        let _ = std::fs::remove_file(std::path::Path::new("/dev/shm").join(store));
    }
    result
}

/// Many nodes mean many sockets: take the hard limit on open files.
fn raise_fd_limit() {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    let _ = rustix::process::setrlimit(
        rustix::process::Resource::Nofile,
        rustix::process::Rlimit {
            current: limit.maximum,
            maximum: limit.maximum,
        },
    );
}

fn main() -> Result<()> {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(run(args))
}
