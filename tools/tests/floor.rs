//! `raftcfg-tools floor` as a user runs it: a short run reports the writes
//! it timed and cleans up after itself; bad options fail with one line.

use std::process::{Command, Output};

fn floor(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_raftcfg-tools"))
        .arg("floor")
        .args(args)
        .output()
        .expect("raftcfg-tools runs")
}

#[test]
fn a_short_run_reports_its_writes_and_removes_its_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_str().unwrap();
    let output = floor(&[
        "--dir",
        path,
        "--duration",
        "0.3",
        "--warmup",
        "0.1",
        "--json",
    ]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "floor failed: {stderr}");
    let report: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    let writes = report["writes"].as_u64().unwrap();
    assert!(writes > 0, "no write timed: {report}");
    let throughput = report["throughput"].as_f64().unwrap();
    assert!(
        (throughput - writes as f64 / 0.3).abs() < 1e-6,
        "throughput is not writes per measured second: {report}"
    );
    let (p50, p99) = (
        report["p50_ms"].as_f64().unwrap(),
        report["p99_ms"].as_f64().unwrap(),
    );
    assert!(
        0.0 < p50 && p50 <= p99,
        "percentiles out of order: {report}"
    );
    let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
    assert!(left.is_empty(), "the run left files behind: {left:?}");
}

#[test]
fn a_missing_directory_fails_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("absent");
    let output = floor(&["--dir", missing.to_str().unwrap(), "--duration", "0.1"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with("raftcfg-tools: error: cannot make") && stderr.lines().count() == 1,
        "unexpected error: {stderr}"
    );
}

#[test]
fn a_write_smaller_than_its_sequence_number_is_refused() {
    let output = floor(&["--size", "4", "--duration", "0.1"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--size"), "unexpected error: {stderr}");
}

#[test]
fn a_duration_out_of_range_is_refused() {
    for duration in ["0", "-1", "1e30", "NaN"] {
        let output = floor(&[&format!("--duration={duration}")]);
        assert!(!output.status.success(), "--duration {duration} was taken");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("--duration") && stderr.lines().count() == 1,
            "--duration {duration}: unexpected error: {stderr}"
        );
    }
}
