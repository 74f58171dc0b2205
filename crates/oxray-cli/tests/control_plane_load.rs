//! The control-plane load test, at a small scale: a head, 50 simulated
//! nodes, actors and placement groups placed on them. The full scale (1,000
//! nodes) is a benchmark: `oxray-loadtest --nodes 1000`.

use std::process::Command;

#[test]
fn simulated_nodes_join_and_take_actors_and_placement_groups() {
    let out = Command::new(env!("CARGO_BIN_EXE_oxray-loadtest"))
        .args(["--daemon", env!("CARGO_BIN_EXE_oxray")])
        .args([
            "--nodes",
            "50",
            "--actors",
            "200",
            "--placement-groups",
            "100",
            "--steady-seconds",
            "0.5",
        ])
        .output()
        .expect("the load test runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "load test failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for figure in [
        "50 nodes joined",
        "actor placements",
        "placement groups create+remove",
        "head memory",
    ] {
        assert!(stdout.contains(figure), "no '{figure}' in:\n{stdout}");
    }
}
