//! Starting Python worker processes and relaying what they print.

use std::collections::VecDeque;
use std::process::Stdio;
use std::sync::Arc;

use oxray_common::WorkerId;
use parking_lot::Mutex;
use tokio::io::{AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::Command;

use crate::config::NodeConfig;

/// Lines kept from a worker's stderr to explain why it died at start-up.
const STDERR_TAIL: usize = 30;

/// Receives what a worker process does: each line it prints, and its exit.
pub trait WorkerEvents: Send + Sync + 'static {
    /// A line the worker printed (`stderr` tells which stream).
    fn on_line(&self, pid: u32, stderr: bool, line: String);
    /// The worker exited; `stderr_tail` holds its last lines of stderr.
    fn on_exit(&self, worker: WorkerId, pid: u32, stderr_tail: String);
}

/// A template Python process that has imported oxray and forks a worker on
/// request: a worker is ready in milliseconds instead of an interpreter
/// start-up, and workers share the template's memory pages.
pub struct Zygote {
    stdin: Mutex<Option<std::os::fd::OwnedFd>>,
    pid: u32,
}

impl Zygote {
    /// Starts the template process running `module`.
    pub fn start(
        config: &NodeConfig,
        module: &str,
        events: Arc<dyn WorkerEvents>,
    ) -> std::io::Result<Arc<Self>> {
        let mut cmd = Command::new(&config.python);
        cmd.arg("-m")
            .arg(module)
            .env("OXRAY_DAEMON_SOCKET", &config.socket_path)
            .env("OXRAY_SESSION_DIR", &config.session_dir)
            .env(
                "OXRAY_NODE_IP",
                config.cluster.as_ref().map_or("", |c| c.node_ip.as_str()),
            )
            .env("PYTHONUNBUFFERED", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn()?;
        let pid = child.id().unwrap_or(0);
        let stdin = child.stdin.take().map(|s| s.into_owned_fd()).transpose()?;
        if let Some(fd) = &stdin {
            // Requests are tiny; write them blocking.
            let flags = rustix::fs::fcntl_getfl(fd)?;
            rustix::fs::fcntl_setfl(fd, flags - rustix::fs::OFlags::NONBLOCK)?;
        }
        let zygote = Arc::new(Self {
            stdin: Mutex::new(stdin),
            pid,
        });
        if let Some(out) = child.stdout.take() {
            tokio::spawn(relay_lines(out, pid, false, events.clone(), None));
        }
        if let Some(err) = child.stderr.take() {
            tokio::spawn(relay_lines(err, pid, true, events, None));
        }
        let z = zygote.clone();
        tokio::spawn(async move {
            let _ = child.wait().await;
            z.stdin.lock().take();
        });
        Ok(zygote)
    }

    /// Asks for a worker; false when the template is gone.
    pub fn fork(&self, worker: WorkerId) -> bool {
        let mut stdin = self.stdin.lock();
        let Some(fd) = stdin.as_ref() else {
            return false;
        };
        let line = format!("{}\n", worker.hex());
        if rustix::io::write(fd, line.as_bytes())
            .map(|n| n == line.len())
            .unwrap_or(false)
        {
            return true;
        }
        stdin.take();
        false
    }

    /// Stops the template process.
    pub fn stop(&self) {
        self.stdin.lock().take();
        kill_pid(self.pid);
    }
}

/// Starts one worker process. Returns its pid.
pub fn spawn_worker(
    config: &NodeConfig,
    worker: WorkerId,
    events: Arc<dyn WorkerEvents>,
) -> std::io::Result<u32> {
    let mut cmd = Command::new(&config.python);
    cmd.arg("-m")
        .arg(&config.worker_module)
        .env("OXRAY_DAEMON_SOCKET", &config.socket_path)
        .env("OXRAY_SESSION_DIR", &config.session_dir)
        .env("OXRAY_WORKER_ID", worker.hex())
        .env(
            "OXRAY_NODE_IP",
            config.cluster.as_ref().map_or("", |c| c.node_ip.as_str()),
        )
        .env("PYTHONUNBUFFERED", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn()?;
    let pid = child.id().unwrap_or(0);
    let tail = Arc::new(Mutex::new(VecDeque::new()));
    if let Some(out) = child.stdout.take() {
        tokio::spawn(relay_lines(out, pid, false, events.clone(), None));
    }
    let stderr_done = child.stderr.take().map(|err| {
        tokio::spawn(relay_lines(
            err,
            pid,
            true,
            events.clone(),
            Some(tail.clone()),
        ))
    });
    tokio::spawn(async move {
        let _ = child.wait().await;
        if let Some(done) = stderr_done {
            let _ = done.await;
        }
        let text = tail
            .lock()
            .iter()
            .cloned()
            .collect::<Vec<String>>()
            .join("\n");
        events.on_exit(worker, pid, text);
    });
    Ok(pid)
}

async fn relay_lines<R: AsyncRead + Unpin>(
    stream: R,
    pid: u32,
    stderr: bool,
    events: Arc<dyn WorkerEvents>,
    tail: Option<Arc<Mutex<VecDeque<String>>>>,
) {
    let mut lines = BufReader::new(stream).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if let Some(tail) = &tail {
            let mut t = tail.lock();
            if t.len() == STDERR_TAIL {
                t.pop_front();
            }
            t.push_back(line.clone());
        }
        events.on_line(pid, stderr, line);
    }
}

/// Sends SIGKILL to a process, ignoring one that is already gone.
pub fn kill_pid(pid: u32) {
    if pid == 0 {
        return; // not known yet (a forked worker before it registered)
    }
    if let Some(pid) = rustix::process::Pid::from_raw(pid as i32) {
        let _ = rustix::process::kill_process(pid, rustix::process::Signal::Kill);
    }
}

/// Whether a process exists.
pub fn pid_alive(pid: u32) -> bool {
    match rustix::process::Pid::from_raw(pid as i32) {
        Some(p) => rustix::process::test_kill_process(p).is_ok(),
        None => false,
    }
}
