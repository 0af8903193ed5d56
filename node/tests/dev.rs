//! `raftcfg dev` as a user runs it: start, use it with the CLI, stop with
//! SIGTERM, start again and find the data.

mod support;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use support::{RAFTCFG, free_port};

/// Starts `raftcfg dev` and waits for its "ready" line; the error is its
/// log if it does not get there.
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
    let (ready, ready_rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("3-node cluster ready") {
                let _ = ready.send(());
            }
        }
    });
    if ready_rx.recv_timeout(Duration::from_secs(60)).is_err() {
        let _ = child.kill();
        let _ = child.wait();
        return Err(std::fs::read_to_string(&log_path).unwrap_or_default());
    }
    Ok(child)
}

/// A base port whose six dev ports were free a moment ago.
fn free_base_port() -> u16 {
    loop {
        let base = free_port();
        if base > 65_000 {
            continue;
        }
        let all_free = [0, 1, 100, 101, 200, 201]
            .iter()
            .all(|offset| std::net::TcpListener::bind(("127.0.0.1", base + offset)).is_ok());
        if all_free {
            return base;
        }
    }
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
    let base = free_base_port();
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
