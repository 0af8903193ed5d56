//! `raftcfg dev` as a user runs it: start, use it with the CLI, stop with
//! SIGTERM, start again and find the data.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use support::RAFTCFG;
use support::patience::patience;
use support::ports::{ReservedPort, reserve_block};

/// How long `raftcfg dev` may take to say it is ready (before [`patience`]).
const READY_TIMEOUT: Duration = Duration::from_secs(60);
/// The ports of `raftcfg dev --base-port B`, as offsets from B.
const DEV_PORT_OFFSETS: [u16; 6] = [0, 1, 100, 101, 200, 201];

/// Starts `raftcfg dev` and waits for its "ready" line; the error is its
/// log if it exits or does not get there in time.
fn start_dev(data_dir: &std::path::Path, base_port: u16) -> Result<Child, String> {
    let log_path = data_dir.with_extension("log");
    let log = std::fs::File::create(&log_path).unwrap();
    let mut child = Command::new(RAFTCFG)
        .arg("dev")
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--base-port", &base_port.to_string()])
        .stdout(Stdio::piped())
        .stderr(log)
        .spawn()
        .expect("start raftcfg dev");
    let stdout = child.stdout.take().unwrap();
    // The reader sends `true` on the ready line and `false` when stdout
    // closes (the process exited).
    let (ready, ready_rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("3-node cluster ready") {
                let _ = ready.send(true);
            }
        }
        let _ = ready.send(false);
    });
    let limit = patience(READY_TIMEOUT);
    let why = match ready_rx.recv_timeout(limit) {
        Ok(true) => return Ok(child),
        Ok(false) | Err(mpsc::RecvTimeoutError::Disconnected) => {
            format!("raftcfg dev exited ({:?})", child.wait())
        }
        Err(mpsc::RecvTimeoutError::Timeout) => {
            format!("raftcfg dev was not ready within {limit:?}")
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    let log = std::fs::read_to_string(&log_path).unwrap_or_default();
    let lines: Vec<&str> = log.lines().collect();
    let tail = lines[lines.len().saturating_sub(40)..].join("\n");
    Err(format!("{why}; its log ends:\n{tail}"))
}

/// A base port for `raftcfg dev` with its six ports reserved.
fn reserve_dev_ports() -> (u16, Vec<ReservedPort>) {
    reserve_block(&DEV_PORT_OFFSETS)
}

fn stop(mut child: Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    assert!(exit.success(), "raftcfg dev exited with {exit}");
}

fn cli(endpoints: &str, args: &[&str]) -> (bool, String, String) {
    let output = Command::new(RAFTCFG)
        .args(args)
        .args(["--endpoints", endpoints])
        .output()
        .unwrap();
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn dev_starts_serves_the_cli_stops_cleanly_and_resumes_with_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("dev");
    let (base, _ports) = reserve_dev_ports();
    let endpoints = format!(
        "http://127.0.0.1:{},http://127.0.0.1:{},http://127.0.0.1:{}",
        base,
        base + 100,
        base + 200
    );

    let dev = start_dev(&data_dir, base).unwrap_or_else(|log| panic!("raftcfg dev failed:\n{log}"));
    let (ok, _, stderr) = cli(&endpoints, &["put", "app/db/url", "postgres://db:5432"]);
    assert!(ok, "{stderr}");
    let (ok, stdout, stderr) = cli(&endpoints, &["get", "app/db/url"]);
    assert!(ok, "{stderr}");
    assert_eq!(stdout.trim_end(), "postgres://db:5432");
    let (ok, stdout, stderr) = cli(&endpoints, &["status"]);
    assert!(ok, "{stderr}");
    assert_eq!(stdout.matches("dev-").count(), 3, "{stdout}");
    stop(dev);

    let dev = start_dev(&data_dir, base).unwrap_or_else(|log| panic!("raftcfg dev failed:\n{log}"));
    let (ok, stdout, stderr) = cli(&endpoints, &["get", "app/db/url"]);
    assert!(ok, "{stderr}");
    assert_eq!(stdout.trim_end(), "postgres://db:5432");
    stop(dev);
}

#[test]
fn a_node_whose_data_directory_was_lost_is_replaced_not_added() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("dev");
    let (base, _ports) = reserve_dev_ports();
    let endpoints = format!("http://127.0.0.1:{base},http://127.0.0.1:{}", base + 100);
    let dev = start_dev(&data_dir, base).unwrap_or_else(|log| panic!("raftcfg dev failed:\n{log}"));
    let (ok, _, stderr) = cli(&endpoints, &["put", "k", "v"]);
    assert!(ok, "{stderr}");
    stop(dev);

    std::fs::remove_dir_all(data_dir.join("dev-3")).unwrap();
    let dev = start_dev(&data_dir, base).unwrap_or_else(|log| panic!("raftcfg dev failed:\n{log}"));
    let (ok, stdout, stderr) = cli(&endpoints, &["member", "list"]);
    assert!(ok, "{stderr}");
    let members: Vec<&str> = stdout.lines().skip(1).collect();
    assert_eq!(members.len(), 3, "three members, not four:\n{stdout}");
    assert!(
        members.iter().all(|line| line.contains(" voter ")),
        "every member is a voter:\n{stdout}"
    );
    assert_eq!(stdout.matches("dev-3").count(), 1, "{stdout}");
    let (ok, stdout, stderr) = cli(&endpoints, &["get", "k"]);
    assert!(ok, "{stderr}");
    assert_eq!(stdout.trim_end(), "v");
    stop(dev);
}

#[test]
fn a_user_mistake_is_one_line_and_a_non_zero_exit() {
    let (ok, stdout, stderr) = cli("http://127.0.0.1:1", &["get", "a//b"]);
    assert!(!ok);
    assert!(stdout.is_empty());
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
    assert!(stderr.starts_with("raftcfg: error:"), "{stderr}");
    let (ok, _, stderr) = cli("http://127.0.0.1:1", &["get", "app/x"]);
    assert!(!ok);
    assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
}
