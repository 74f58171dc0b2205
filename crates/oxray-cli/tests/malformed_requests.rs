//! A request naming no valid id gets an error reply, never silence (the
//! caller would wait forever), and the daemon serves on.

use std::process::{Child, Command};
use std::time::{Duration, Instant};

use oxray_proto::rpc::RpcPeer;
use oxray_proto::*;

/// A single-node daemon in a fresh session directory, killed on drop.
struct Daemon {
    child: Child,
    session: std::path::PathBuf,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // SIGTERM: the daemon removes its shared-memory file as it stops.
        if let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::Term);
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while matches!(self.child.try_wait(), Ok(None)) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.session);
    }
}

fn start_daemon() -> Daemon {
    let session = std::env::temp_dir().join(format!("oxray-malformed-{}", std::process::id()));
    std::fs::create_dir_all(&session).unwrap();
    let child = Command::new(env!("CARGO_BIN_EXE_oxray"))
        .args(["daemon", "--session-dir"])
        .arg(&session)
        .args([
            "--resource",
            "CPU=0",
            "--object-store-memory",
            "16777216",
            "--no-zygote",
        ])
        .arg("--owner-pid")
        .arg(std::process::id().to_string())
        .spawn()
        .expect("the daemon starts");
    let daemon = Daemon { child, session };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !daemon.session.join("daemon.sock").exists() {
        assert!(Instant::now() < deadline, "the daemon did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
    daemon
}

async fn answer(peer: &RpcPeer, body: Body) -> Body {
    let reply = peer.start_call(body).expect("the connection stays up");
    tokio::time::timeout(Duration::from_secs(10), reply)
        .await
        .expect("an answer, not silence")
        .expect("the connection stays up")
}

#[tokio::test]
async fn bad_ids_get_error_replies() {
    let daemon = start_daemon();
    let socket = daemon.session.join("daemon.sock");
    let (peer, _inbox) = RpcPeer::connect_unix(socket.to_str().unwrap())
        .await
        .unwrap();
    let bad = StoreObject {
        id: vec![1, 2, 3],
        source: String::new(),
    };
    for body in [
        Body::StoreGet(bad.clone()),
        Body::StoreCreate(StoreCreate {
            id: vec![9],
            size: 8,
            owner: String::new(),
        }),
    ] {
        match answer(&peer, body).await {
            Body::StoreReply(r) => {
                assert_eq!(r.failure, StoreFailure::NotFound as i32);
                assert!(r.error.contains("no valid object id"), "{}", r.error);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    // Actors it does not know, by a bad id or an unknown one.
    for actor_id in [vec![7], vec![7; 16]] {
        let body = Body::KillActor(KillActor {
            actor_id,
            no_restart: true,
        });
        match answer(&peer, body).await {
            Body::ErrorReply(e) => assert!(e.message.contains("no such actor"), "{}", e.message),
            other => panic!("unexpected {other:?}"),
        }
    }
    // Still serving.
    assert!(matches!(
        answer(&peer, Body::StoreStatsRequest(StoreStatsRequest::default())).await,
        Body::StoreStats(_)
    ));
}
