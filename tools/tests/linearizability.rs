//! The linearizability checker (`raftcfg_tools::history`) and
//! `raftcfg-tools check-history`: Jepsen's etcd histories get the verdicts
//! porcupine's test suite asserts; small hand-written histories, in both
//! formats, get the verdicts the register model implies; running out of
//! time is `unknown`, never a pass; any history of a real register is
//! linearizable; and on small arbitrary histories the checker agrees with
//! trying every order.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use proptest::prelude::*;
use raftcfg_tools::history::{
    self, Counterexample, History, JEPSEN_KEY, OpKind, Operation, Outcome, Verdict,
};

/// Time allowed for a check that must be decided.
const TIMEOUT: Duration = Duration::from_secs(60);

/// Jepsen's etcd histories (origin and licence in its README.md).
const JEPSEN_ETCD_DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/jepsen-etcd");

fn json(operations: &str) -> History {
    History::from_json(&format!(r#"{{"operations": [{operations}]}}"#)).unwrap()
}

/// A Jepsen log of these events (`0 :invoke :write 1`), one per line.
fn jepsen(events: &str) -> History {
    let log: String = events
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(|line| format!("INFO  jepsen.util - {line}\n"))
        .collect();
    History::from_jepsen(&log).unwrap()
}

fn assert_linearizable(history: &History) {
    let verdict = history::check(history, TIMEOUT);
    assert_eq!(verdict, Verdict::Linearizable, "{verdict}");
}

fn violation(history: &History) -> Counterexample {
    match history::check(history, TIMEOUT) {
        Verdict::NotLinearizable(counterexample) => counterexample,
        other => panic!("expected not linearizable, got {other}"),
    }
}

#[test]
fn jepsen_etcd_histories_get_porcupines_verdicts() {
    let dir = Path::new(JEPSEN_ETCD_DIR);
    let expected = fs::read_to_string(dir.join("expected.txt"))
        .unwrap_or_else(|e| panic!("the Jepsen etcd histories at {}: {e}", dir.display()));
    let expected: BTreeMap<&str, &str> = expected
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| line.split_once(' ').expect("FILE VERDICT"))
        .collect();
    let logs: BTreeSet<String> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().into_string().unwrap())
        .filter(|name| name.ends_with(".log"))
        .collect();
    assert_eq!(
        logs.iter().map(String::as_str).collect::<BTreeSet<_>>(),
        expected.keys().copied().collect()
    );

    let started = Instant::now();
    let mut wrong = Vec::new();
    let mut operations = 0;
    for (file, verdict) in &expected {
        let history = History::from_jepsen(&fs::read_to_string(dir.join(file)).unwrap())
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        let report = history::check_report(&history, TIMEOUT);
        operations += report.keys.iter().map(|key| key.operations).sum::<usize>();
        let right = match (verdict.trim(), &report.verdict) {
            ("linearizable", Verdict::Linearizable) => true,
            ("not-linearizable", Verdict::NotLinearizable(_)) => true,
            (other, _) => {
                assert!(
                    ["linearizable", "not-linearizable"].contains(&other),
                    "{file}: {other}"
                );
                false
            }
        };
        if !right {
            wrong.push(format!(
                "{file}: expected {verdict}, got {}",
                report.verdict
            ));
        }
    }
    eprintln!(
        "checked {} Jepsen etcd histories ({operations} operations) in {:.2?}",
        expected.len(),
        started.elapsed()
    );
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn a_stale_read_after_a_completed_write_is_not_linearizable() {
    let history = json(
        r#"{"process": 1, "key": "x", "op": "write", "value": "1", "call": 0, "return": 10, "outcome": "ok"},
           {"process": 2, "key": "x", "op": "read", "value": null, "call": 20, "return": 30, "outcome": "ok"}"#,
    );
    let counterexample = violation(&history);
    assert_eq!(counterexample.key, "x");
    assert_eq!(counterexample.stuck_at, 1);
    assert_eq!(
        counterexample
            .prefix
            .iter()
            .map(|placed| placed.index)
            .collect::<Vec<_>>(),
        [0]
    );
    assert_eq!(counterexample.state.as_deref(), Some("1"));
    assert_eq!(
        counterexample
            .unplaced
            .iter()
            .map(|(index, _)| *index)
            .collect::<Vec<_>>(),
        [1]
    );
    let text = Verdict::NotLinearizable(counterexample).to_string();
    assert!(text.starts_with("not linearizable\nkey \"x\""), "{text}");
    assert!(
        text.contains("process 2  read nil  ok  call 20  return 30"),
        "{text}"
    );

    let history = jepsen(
        "0 :invoke :write 1
         0 :ok :write 1
         1 :invoke :read nil
         1 :ok :read nil",
    );
    assert_eq!(violation(&history).key, JEPSEN_KEY);
}

#[test]
fn the_counterexample_is_the_first_point_where_no_order_exists() {
    let history = jepsen(
        "0 :invoke :write 1
         1 :invoke :read nil
         1 :ok :read 1
         0 :ok :write 1
         0 :invoke :write 2
         0 :ok :write 2
         1 :invoke :read nil
         2 :invoke :cas [2 3]
         1 :ok :read 1
         2 :ok :cas [2 3]
         1 :invoke :read nil
         1 :ok :read 3",
    );
    let counterexample = violation(&history);
    // The read of 1 after the write of 2 returned (operation 3); the
    // concurrent cas fits before it, so the longest prefix includes it.
    assert_eq!(counterexample.stuck_at, 3);
    let prefix: Vec<_> = counterexample
        .prefix
        .iter()
        .map(|placed| placed.index)
        .collect();
    assert_eq!(prefix, [0, 1, 2, 4]);
    let states: Vec<_> = counterexample
        .prefix
        .iter()
        .map(|placed| placed.state_after.as_deref())
        .collect();
    assert_eq!(states, [Some("1"), Some("1"), Some("2"), Some("3")]);
    assert_eq!(counterexample.state.as_deref(), Some("3"));
    assert_eq!(
        counterexample
            .unplaced
            .iter()
            .map(|(index, _)| *index)
            .collect::<Vec<_>>(),
        [3]
    );
}

#[test]
fn a_read_concurrent_with_a_write_may_see_either_value() {
    for seen in ["null", r#""1""#] {
        assert_linearizable(&json(&format!(
            r#"{{"process": 1, "key": "x", "op": "write", "value": "1", "call": 0, "return": 30, "outcome": "ok"}},
               {{"process": 2, "key": "x", "op": "read", "value": {seen}, "call": 10, "return": 20, "outcome": "ok"}}"#
        )));
    }
    for seen in ["nil", "1"] {
        assert_linearizable(&jepsen(&format!(
            "0 :invoke :write 1
             1 :invoke :read nil
             1 :ok :read {seen}
             0 :ok :write 1"
        )));
    }
    // Operations that only touch (one returns when the other is called)
    // count as concurrent.
    assert_linearizable(&json(
        r#"{"process": 1, "key": "x", "op": "write", "value": "1", "call": 0, "return": 10, "outcome": "ok"},
           {"process": 2, "key": "x", "op": "read", "value": null, "call": 10, "return": 20, "outcome": "ok"}"#,
    ));
}

#[test]
fn an_unknown_write_may_take_effect_long_after_its_call() {
    assert_linearizable(&json(
        r#"{"process": 1, "key": "x", "op": "write", "value": "1", "call": 0, "return": null, "outcome": "unknown"},
           {"process": 2, "key": "x", "op": "read", "value": null, "call": 10, "return": 20, "outcome": "ok"},
           {"process": 2, "key": "x", "op": "read", "value": null, "call": 500, "return": 600, "outcome": "ok"},
           {"process": 2, "key": "x", "op": "read", "value": "1", "call": 9000, "return": 9100, "outcome": "ok"}"#,
    ));
    assert_linearizable(&jepsen(
        "0 :invoke :write 1
         0 :info :write :timed-out
         1 :invoke :read nil
         1 :ok :read nil
         1 :invoke :read nil
         1 :ok :read nil
         1 :invoke :read nil
         1 :ok :read 1",
    ));
    // But not before its call, and once seen it stays (nothing else writes).
    let history = json(
        r#"{"process": 2, "key": "x", "op": "read", "value": "1", "call": 0, "return": 5, "outcome": "ok"},
           {"process": 1, "key": "x", "op": "write", "value": "1", "call": 10, "return": null, "outcome": "unknown"}"#,
    );
    assert_eq!(violation(&history).stuck_at, 0);
    let history = jepsen(
        "0 :invoke :write 1
         1 :invoke :read nil
         1 :ok :read 1
         1 :invoke :read nil
         1 :ok :read nil",
    );
    assert_eq!(violation(&history).stuck_at, 2);
}

#[test]
fn an_unknown_write_never_observed_is_linearizable() {
    assert_linearizable(&json(
        r#"{"process": 1, "key": "x", "op": "write", "value": "1", "call": 0, "return": 50, "outcome": "unknown"},
           {"process": 2, "key": "x", "op": "read", "value": null, "call": 100, "return": 110, "outcome": "ok"},
           {"process": 2, "key": "x", "op": "read", "value": null, "call": 200, "return": 210, "outcome": "ok"}"#,
    ));
    // An invoke that never completes is unknown too.
    assert_linearizable(&jepsen(
        "0 :invoke :write 1
         1 :invoke :read nil
         1 :ok :read nil
         1 :invoke :cas [nil 2]
         1 :ok :cas [nil 2]",
    ));
}

#[test]
fn failed_reads_and_writes_and_unknown_reads_constrain_nothing() {
    assert_linearizable(&json(
        r#"{"process": 1, "key": "x", "op": "write", "value": "1", "call": 0, "return": 10, "outcome": "fail"},
           {"process": 2, "key": "x", "op": "read", "value": "zzz", "call": 20, "return": 30, "outcome": "fail"},
           {"process": 3, "key": "x", "op": "read", "value": "zzz", "call": 20, "return": null, "outcome": "unknown"},
           {"process": 4, "key": "x", "op": "read", "call": 20, "return": 30, "outcome": "fail"},
           {"process": 2, "key": "x", "op": "read", "value": null, "call": 40, "return": 50, "outcome": "ok"}"#,
    ));
    assert_linearizable(&jepsen(
        "0 :invoke :write 1
         0 :fail :write 1
         1 :invoke :read nil
         1 :fail :read :timed-out
         2 :invoke :read nil
         2 :info :read :timed-out
         3 :invoke :read nil
         3 :ok :read nil",
    ));
}

#[test]
fn a_failed_cas_has_no_effect_and_found_another_value() {
    assert_linearizable(&json(
        r#"{"process": 1, "key": "x", "op": "write", "value": "1", "call": 0, "return": 10, "outcome": "ok"},
           {"process": 2, "key": "x", "op": "cas", "from": "2", "to": "3", "call": 20, "return": 30, "outcome": "fail"},
           {"process": 1, "key": "x", "op": "read", "value": "1", "call": 40, "return": 50, "outcome": "ok"}"#,
    ));
    // Its `to` never appears…
    let history = jepsen(
        "0 :invoke :write 1
         0 :ok :write 1
         1 :invoke :cas [2 3]
         1 :fail :cas [2 3]
         0 :invoke :read nil
         0 :ok :read 3",
    );
    assert_eq!(violation(&history).stuck_at, 2);
    // …and it cannot fail when the register holds `from`.
    let history = json(
        r#"{"process": 1, "key": "x", "op": "write", "value": "1", "call": 0, "return": 10, "outcome": "ok"},
           {"process": 2, "key": "x", "op": "cas", "from": "1", "to": "3", "call": 20, "return": 30, "outcome": "fail"}"#,
    );
    assert_eq!(violation(&history).stuck_at, 1);
}

#[test]
fn an_unknown_write_may_explain_a_failed_cas() {
    let history = jepsen(
        "0 :invoke :write 1
         0 :ok :write 1
         1 :invoke :write 2
         2 :invoke :cas [1 3]
         2 :fail :cas [1 3]
         2 :invoke :read nil
         2 :ok :read 1",
    );
    // The cas can only have failed after the unknown write of 2, and
    // nothing writes 1 again for the read.
    assert_eq!(violation(&history).stuck_at, 3);
    assert_linearizable(&jepsen(
        "0 :invoke :write 1
         0 :ok :write 1
         1 :invoke :write 2
         2 :invoke :cas [1 3]
         2 :fail :cas [1 3]
         2 :invoke :read nil
         2 :ok :read 2",
    ));
    // Without the unknown write, the cas could not fail.
    let history = jepsen(
        "0 :invoke :write 1
         0 :ok :write 1
         2 :invoke :cas [1 3]
         2 :fail :cas [1 3]",
    );
    assert_eq!(violation(&history).stuck_at, 1);
}

#[test]
fn a_successful_cas_needs_its_from_value() {
    let history = json(
        r#"{"process": 1, "key": "x", "op": "write", "value": "1", "call": 0, "return": 10, "outcome": "ok"},
           {"process": 2, "key": "x", "op": "cas", "from": "2", "to": "3", "call": 20, "return": 30, "outcome": "ok"}"#,
    );
    assert_eq!(violation(&history).stuck_at, 1);
    let history = jepsen(
        "0 :invoke :cas [nil 1]
         0 :ok :cas [nil 1]
         1 :invoke :cas [nil 2]
         1 :ok :cas [nil 2]",
    );
    assert_eq!(violation(&history).stuck_at, 1);
    assert_linearizable(&jepsen(
        "0 :invoke :cas [nil 1]
         0 :ok :cas [nil 1]
         1 :invoke :cas [1 2]
         1 :ok :cas [1 2]
         1 :invoke :read nil
         1 :ok :read 2",
    ));
}

#[test]
fn keys_are_checked_separately_and_each_may_need_its_own_order() {
    // Each key alone is linearizable, so the whole is (linearizability is
    // local), though the order must interleave the keys: y's write, x's
    // read of nil, y's read, x's write.
    let history = json(
        r#"{"process": 1, "key": "x", "op": "write", "value": "1", "call": 0, "return": 100, "outcome": "ok"},
           {"process": 2, "key": "y", "op": "write", "value": "1", "call": 10, "return": 20, "outcome": "ok"},
           {"process": 3, "key": "x", "op": "read", "value": null, "call": 30, "return": 40, "outcome": "ok"},
           {"process": 3, "key": "y", "op": "read", "value": "1", "call": 50, "return": 60, "outcome": "ok"},
           {"process": 2, "key": "x", "op": "read", "value": "1", "call": 70, "return": 80, "outcome": "ok"},
           {"process": 1, "key": "y", "op": "cas", "from": "1", "to": "2", "call": 110, "return": 120, "outcome": "ok"},
           {"process": 2, "key": "x", "op": "read", "call": 110, "return": null, "outcome": "unknown"}"#,
    );
    let report = history::check_report(&history, TIMEOUT);
    assert_eq!(report.verdict, Verdict::Linearizable, "{}", report.verdict);
    let counted: Vec<_> = report
        .keys
        .iter()
        .map(|key| (key.key.as_str(), key.operations))
        .collect();
    assert_eq!(counted, [("x", 3), ("y", 3)]);

    // A stale read on y alone makes the history not linearizable.
    let history = json(
        r#"{"process": 1, "key": "x", "op": "write", "value": "1", "call": 0, "return": 10, "outcome": "ok"},
           {"process": 2, "key": "y", "op": "write", "value": "1", "call": 0, "return": 10, "outcome": "ok"},
           {"process": 1, "key": "x", "op": "read", "value": "1", "call": 20, "return": 30, "outcome": "ok"},
           {"process": 2, "key": "y", "op": "read", "value": null, "call": 20, "return": 30, "outcome": "ok"}"#,
    );
    let counterexample = violation(&history);
    assert_eq!(
        (counterexample.key.as_str(), counterexample.stuck_at),
        ("y", 3)
    );
}

/// Many unknown writes of values that concurrent reads saw, and a read of a
/// value nobody wrote: proving that no order exists means trying every
/// subset of the writes.
fn hard_history() -> History {
    const WRITES: u64 = 30;
    let mut operations = Vec::new();
    for value in 0..WRITES {
        operations.push(Operation {
            process: value,
            key: "x".into(),
            kind: OpKind::Write {
                value: value.to_string(),
            },
            call_time: value,
            return_time: None,
            outcome: Outcome::Unknown,
        });
        operations.push(Operation {
            process: WRITES + value,
            key: "x".into(),
            kind: OpKind::Read {
                value: Some(value.to_string()),
            },
            call_time: value,
            return_time: Some(1000 + value),
            outcome: Outcome::Ok,
        });
    }
    operations.push(Operation {
        process: 2 * WRITES,
        key: "x".into(),
        kind: OpKind::Read {
            value: Some("never written".into()),
        },
        call_time: 0,
        return_time: Some(2000),
        outcome: Outcome::Ok,
    });
    History::new(operations).unwrap()
}

#[test]
fn running_out_of_time_is_unknown_never_a_pass() {
    let easy = json(
        r#"{"process": 1, "key": "x", "op": "write", "value": "1", "call": 0, "return": 10, "outcome": "ok"},
           {"process": 2, "key": "x", "op": "read", "value": "1", "call": 20, "return": 30, "outcome": "ok"}"#,
    );
    let Verdict::Unknown(why) = history::check(&easy, Duration::ZERO) else {
        panic!("a check with no time allowed decided");
    };
    assert!(
        why.contains("ran out of time") && why.contains("\"x\""),
        "{why}"
    );

    let started = Instant::now();
    let verdict = history::check(&hard_history(), Duration::from_millis(200));
    assert!(matches!(verdict, Verdict::Unknown(_)), "{verdict}");
    assert!(started.elapsed() < Duration::from_secs(5));
    assert!(verdict.to_string().starts_with("unknown\n"));
}

#[test]
fn check_history_prints_the_verdict_and_exits_with_it() {
    let dir = tempfile::tempdir().unwrap();
    let run = |args: &[&str], contents: &str| {
        let file = dir.path().join("history");
        fs::write(&file, contents).unwrap();
        let output = Command::new(env!("CARGO_BIN_EXE_raftcfg-tools"))
            .arg("check-history")
            .args(args)
            .arg(&file)
            .output()
            .unwrap();
        let stdout = String::from_utf8(output.stdout).unwrap();
        let stderr = String::from_utf8(output.stderr).unwrap();
        (output.status.code(), stdout, stderr)
    };
    let fine = History::new(vec![Operation {
        process: 1,
        key: "x".into(),
        kind: OpKind::Read { value: None },
        call_time: 0,
        return_time: Some(1),
        outcome: Outcome::Ok,
    }])
    .unwrap();
    let (code, stdout, _) = run(&[], &fine.to_json());
    assert_eq!((code, stdout.as_str()), (Some(0), "linearizable\n"));

    let stale = "0 :invoke :write 1\n0 :ok :write 1\n1 :invoke :read nil\n1 :ok :read nil\n";
    let stale: String = stale
        .lines()
        .map(|line| format!("INFO  jepsen.util - {line}\n"))
        .collect();
    let (code, stdout, _) = run(&["--format", "jepsen"], &stale);
    assert_eq!(code, Some(1));
    assert!(
        stdout.starts_with("not linearizable\nkey \"register\""),
        "{stdout}"
    );

    let (code, stdout, _) = run(&["--timeout", "0"], &fine.to_json());
    assert_eq!(code, Some(2));
    assert!(stdout.starts_with("unknown\n"), "{stdout}");

    let (code, stdout, stderr) = run(&[], "{\"operations\": [{}]}");
    assert_eq!((code, stdout.as_str()), (Some(3), ""));
    assert!(
        stderr.starts_with("raftcfg-tools: error: cannot parse") && stderr.lines().count() == 1,
        "{stderr}"
    );
}

/// One step of a run against a real register.
#[derive(Debug, Clone)]
enum Step {
    Read,
    Write(u8),
    Cas(Option<u8>, u8),
    /// A write that failed: it never happened.
    FailedWrite(u8),
    /// A read that failed or timed out, with a value that means nothing.
    LostRead(u8),
}

/// A step on a key by a process, with its outcome possibly unknown to the
/// client (and, then, whether it happened), and how far its call and
/// return lie from the moment it took effect.
type TimedStep = (Step, u8, u64, bool, bool, u64, u64);

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        3 => Just(Step::Read),
        3 => (0..4u8).prop_map(Step::Write),
        3 => (proptest::option::of(0..4u8), 0..4u8).prop_map(|(from, to)| Step::Cas(from, to)),
        1 => (0..4u8).prop_map(Step::FailedWrite),
        1 => (0..4u8).prop_map(Step::LostRead),
    ]
}

/// Runs the steps, in order, on one register per key: step `i` takes effect
/// at time `100 * i`, within its interval.
fn run_register(steps: &[TimedStep]) -> History {
    let mut registers: BTreeMap<u8, Option<String>> = BTreeMap::new();
    let mut operations = Vec::new();
    for (i, (step, key, process, unknown, happened, before, after)) in steps.iter().enumerate() {
        let at = 100 * (i as u64 + 1);
        let register = registers.entry(*key).or_default();
        let value = |v: &u8| format!("v{v}");
        let (kind, outcome) = match step {
            Step::Read => (
                OpKind::Read {
                    value: register.clone(),
                },
                Outcome::Ok,
            ),
            Step::Write(v) => {
                if !*unknown || *happened {
                    *register = Some(value(v));
                }
                let outcome = if *unknown {
                    Outcome::Unknown
                } else {
                    Outcome::Ok
                };
                (OpKind::Write { value: value(v) }, outcome)
            }
            Step::Cas(from, to) => {
                let holds = *register == from.as_ref().map(value);
                if holds && (!*unknown || *happened) {
                    *register = Some(value(to));
                }
                let outcome = match (*unknown, holds) {
                    (true, _) => Outcome::Unknown,
                    (false, true) => Outcome::Ok,
                    (false, false) => Outcome::Fail,
                };
                (
                    OpKind::Cas {
                        from: from.as_ref().map(value),
                        to: value(to),
                    },
                    outcome,
                )
            }
            Step::FailedWrite(v) => (OpKind::Write { value: value(v) }, Outcome::Fail),
            Step::LostRead(v) => {
                let outcome = if *unknown {
                    Outcome::Unknown
                } else {
                    Outcome::Fail
                };
                (
                    OpKind::Read {
                        value: Some(value(v)),
                    },
                    outcome,
                )
            }
        };
        let return_time = (outcome != Outcome::Unknown).then_some(at + after);
        operations.push(Operation {
            process: *process,
            key: format!("k{key}"),
            kind,
            call_time: at - before,
            return_time,
            outcome,
        });
    }
    History::new(operations).unwrap()
}

fn timed_steps() -> impl Strategy<Value = Vec<TimedStep>> {
    // Calls and returns up to 250 away from the moment of effect, so up to
    // about five operations overlap.
    let timed = (
        step(),
        0..3u8,
        0..6u64,
        proptest::bool::weighted(0.15),
        any::<bool>(),
        0..100u64,
        0..250u64,
    );
    proptest::collection::vec(timed, 0..60)
}

/// Whether some order of `operations` exists, by trying every order: the
/// definition, independent of the checker's list, memoization, partition by
/// key and reductions.
fn linearizable_by_brute_force(operations: &[Operation]) -> bool {
    // Failed or unknown reads and failed writes constrain nothing.
    let ops: Vec<&Operation> = operations
        .iter()
        .filter(|op| match op.kind {
            OpKind::Read { .. } => op.outcome == Outcome::Ok,
            OpKind::Write { .. } => op.outcome != Outcome::Fail,
            OpKind::Cas { .. } => true,
        })
        .collect();
    fn search(
        ops: &[&Operation],
        placed: &mut Vec<bool>,
        state: &mut BTreeMap<String, Option<String>>,
    ) -> bool {
        let done = ops
            .iter()
            .zip(placed.iter())
            .all(|(op, &placed)| placed || op.outcome == Outcome::Unknown);
        if done {
            return true;
        }
        for (i, op) in ops.iter().enumerate() {
            // Next only if no other operation left returned before its call.
            let blocked = ops
                .iter()
                .zip(placed.iter())
                .enumerate()
                .any(|(j, (other, &placed))| {
                    j != i
                        && !placed
                        && other.outcome != Outcome::Unknown
                        && other.return_time.unwrap() < op.call_time
                });
            if placed[i] || blocked {
                continue;
            }
            let before = state.get(&op.key).cloned().flatten();
            let after = match (&op.kind, op.outcome) {
                (OpKind::Read { value }, _) => (*value == before).then(|| before.clone()),
                (OpKind::Write { value }, _) => Some(Some(value.clone())),
                (OpKind::Cas { from, to }, Outcome::Ok) => {
                    (*from == before).then(|| Some(to.clone()))
                }
                (OpKind::Cas { from, .. }, Outcome::Fail) => {
                    (*from != before).then(|| before.clone())
                }
                (OpKind::Cas { from, to }, Outcome::Unknown) => Some(if *from == before {
                    Some(to.clone())
                } else {
                    before.clone()
                }),
            };
            let Some(after) = after else { continue };
            placed[i] = true;
            state.insert(op.key.clone(), after);
            if search(ops, placed, state) {
                return true;
            }
            placed[i] = false;
            state.insert(op.key.clone(), before);
        }
        false
    }
    search(&ops, &mut vec![false; ops.len()], &mut BTreeMap::new())
}

/// Small histories of arbitrary, mostly concurrent operations on two keys,
/// linearizable or not.
fn arbitrary_history() -> impl Strategy<Value = History> {
    let value = || proptest::option::of((0..3u8).prop_map(|v| format!("v{v}")));
    let kind = prop_oneof![
        value().prop_map(|value| OpKind::Read { value }),
        (0..3u8).prop_map(|v| OpKind::Write {
            value: format!("v{v}")
        }),
        (value(), 0..3u8).prop_map(|(from, to)| OpKind::Cas {
            from,
            to: format!("v{to}")
        }),
    ];
    let outcome =
        prop_oneof![3 => Just(Outcome::Ok), 2 => Just(Outcome::Fail), 2 => Just(Outcome::Unknown)];
    let operation = (kind, outcome, 0..2u8, 0..20u64, 0..12u64).prop_map(
        |(kind, outcome, key, call_time, duration)| Operation {
            process: 0,
            key: format!("k{key}"),
            kind,
            call_time,
            return_time: (outcome != Outcome::Unknown).then_some(call_time + duration),
            outcome,
        },
    );
    proptest::collection::vec(operation, 0..8)
        .prop_map(|operations| History::new(operations).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    #[test]
    fn every_history_of_a_real_register_is_linearizable(steps in timed_steps()) {
        let history = run_register(&steps);
        let verdict = history::check(&history, TIMEOUT);
        prop_assert_eq!(&verdict, &Verdict::Linearizable, "{}", verdict);
        let reparsed = History::from_json(&history.to_json()).unwrap();
        prop_assert_eq!(&reparsed, &history);
    }

    #[test]
    fn a_read_of_a_value_never_written_is_not_linearizable(
        steps in timed_steps(),
        position in any::<prop::sample::Index>(),
    ) {
        let mut operations = run_register(&steps).operations().to_vec();
        let at = position.index(operations.len() + 1);
        let time = 100 * at as u64 + 50;
        operations.insert(at, Operation {
            process: 99,
            key: "k0".into(),
            kind: OpKind::Read { value: Some("ghost".into()) },
            call_time: time,
            return_time: Some(time + 10),
            outcome: Outcome::Ok,
        });
        let history = History::new(operations).unwrap();
        match history::check(&history, TIMEOUT) {
            Verdict::NotLinearizable(counterexample) => {
                prop_assert_eq!(counterexample.key.as_str(), "k0");
                prop_assert_eq!(counterexample.stuck_at, at);
            }
            other => prop_assert!(false, "expected not linearizable, got {}", other),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1000, ..ProptestConfig::default() })]

    #[test]
    fn the_checker_agrees_with_trying_every_order(history in arbitrary_history()) {
        let expected = linearizable_by_brute_force(history.operations());
        let verdict = history::check(&history, TIMEOUT);
        prop_assert!(!matches!(verdict, Verdict::Unknown(_)));
        prop_assert_eq!(verdict == Verdict::Linearizable, expected, "{}\n{}", verdict, history.to_json());
    }
}
