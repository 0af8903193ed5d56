//! The fault tests' clients: concurrent processes doing reads, writes of
//! unique values and compare-and-swaps on a few keys through random nodes,
//! recording every call and return (or unknown outcome) in the checker's
//! JSON history format.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::RngExt as _;
use serde_json::{Value, json};

/// How long a client waits for one request before calling it unknown.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// What happened to an operation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It took effect (or, for a read, returned a value).
    Ok,
    /// It certainly did not take effect.
    Fail,
    /// It may or may not have taken effect.
    Unknown,
}

impl Outcome {
    fn name(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Fail => "fail",
            Self::Unknown => "unknown",
        }
    }
}

/// The shared record of a run's operations.
#[derive(Clone)]
pub struct Recorder {
    start: Instant,
    operations: Arc<Mutex<Vec<Value>>>,
    pub acknowledged_writes: Arc<AtomicU64>,
}

impl Recorder {
    pub fn new() -> Self {
        Self {
            start: Instant::now(),
            operations: Arc::default(),
            acknowledged_writes: Arc::default(),
        }
    }

    fn now(&self) -> u64 {
        self.start.elapsed().as_nanos() as u64
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &self,
        process: u64,
        key: &str,
        op: &str,
        fields: Value,
        call: u64,
        outcome: Outcome,
    ) {
        let returned = (outcome != Outcome::Unknown).then(|| self.now());
        let mut operation = json!({
            "process": process,
            "key": key,
            "op": op,
            "call": call,
            "return": returned,
            "outcome": outcome.name(),
        });
        if let (Value::Object(operation), Value::Object(fields)) = (&mut operation, fields) {
            operation.extend(fields);
        }
        if op != "read" && outcome == Outcome::Ok {
            self.acknowledged_writes.fetch_add(1, Ordering::Relaxed);
        }
        self.operations.lock().unwrap().push(operation);
    }

    /// The history as the checker's JSON.
    pub fn to_json(&self) -> String {
        let operations = self.operations.lock().unwrap().clone();
        serde_json::to_string_pretty(&json!({ "operations": operations })).unwrap()
    }

    pub fn len(&self) -> usize {
        self.operations.lock().unwrap().len()
    }

    /// Counts of ok, fail and unknown operations.
    pub fn outcomes(&self) -> (usize, usize, usize) {
        let operations = self.operations.lock().unwrap();
        let count = |name: &str| operations.iter().filter(|op| op["outcome"] == name).count();
        (count("ok"), count("fail"), count("unknown"))
    }
}

/// One client process.
pub struct Client {
    pub process: u64,
    pub endpoints: Arc<Mutex<Vec<String>>>,
    pub keys: usize,
    pub recorder: Recorder,
    pub http: reqwest::Client,
    counter: u64,
}

impl Client {
    pub fn new(
        process: u64,
        endpoints: Arc<Mutex<Vec<String>>>,
        keys: usize,
        recorder: Recorder,
    ) -> Self {
        Self {
            process,
            endpoints,
            keys,
            recorder,
            http: reqwest::Client::builder()
                .timeout(REQUEST_TIMEOUT)
                .build()
                .unwrap(),
            counter: 0,
        }
    }

    fn endpoint(&self) -> String {
        let endpoints = self.endpoints.lock().unwrap();
        endpoints[rand::rng().random_range(0..endpoints.len())].clone()
    }

    fn unique_value(&mut self) -> String {
        self.counter += 1;
        format!("p{}-{}", self.process, self.counter)
    }

    /// Runs operations until `stop` is set.
    pub async fn run(mut self, stop: Arc<AtomicBool>) {
        while !stop.load(Ordering::Relaxed) {
            let key = format!("k{}", rand::rng().random_range(0..self.keys));
            let choice = rand::rng().random_range(0..100);
            if choice < 40 {
                self.read(&key).await;
            } else if choice < 75 {
                self.write(&key).await;
            } else {
                self.cas(&key).await;
            }
        }
    }

    /// A linearizable read; returns the value and mod_revision if it
    /// succeeded (`Some(None)` = absent).
    pub async fn read(&mut self, key: &str) -> Option<Option<(String, String)>> {
        let call = self.recorder.now();
        let url = format!("{}/v1/kv/{key}", self.endpoint());
        let result = self.http.get(url).send().await;
        let (outcome, value) = match result {
            Ok(response) if response.status() == 200 => {
                let revision = response
                    .headers()
                    .get("x-raftcfg-mod-revision")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_owned();
                match response.text().await {
                    Ok(text) => (Outcome::Ok, Some(Some((text, revision)))),
                    Err(_) => (Outcome::Unknown, None),
                }
            }
            Ok(response) if response.status() == 404 => (Outcome::Ok, Some(None)),
            Ok(response) if response.status() == 503 => (Outcome::Fail, None),
            _ => (Outcome::Unknown, None),
        };
        let read = value
            .as_ref()
            .map(|value| value.as_ref().map(|(text, _)| text.clone()));
        let fields = match (outcome, read) {
            (Outcome::Ok, Some(value)) => json!({ "value": value }),
            _ => json!({}),
        };
        self.recorder
            .record(self.process, key, "read", fields, call, outcome);
        value
    }

    /// A write of a unique value.
    pub async fn write(&mut self, key: &str) {
        let value = self.unique_value();
        let call = self.recorder.now();
        let url = format!("{}/v1/kv/{key}", self.endpoint());
        let result = self.http.put(url).body(value.clone()).send().await;
        let outcome = write_outcome(result);
        self.recorder.record(
            self.process,
            key,
            "write",
            json!({ "value": value }),
            call,
            outcome,
        );
    }

    /// Reads the key, then swaps in a unique value if it is unchanged.
    pub async fn cas(&mut self, key: &str) {
        let Some(current) = self.read(key).await else {
            return;
        };
        let to = self.unique_value();
        let call = self.recorder.now();
        let url = format!("{}/v1/kv/{key}", self.endpoint());
        let (request, from) = match current {
            Some((value, revision)) => (
                self.http
                    .put(url)
                    .header("if-match", format!("\"{revision}\"")),
                Some(value),
            ),
            None => (self.http.put(url).header("if-none-match", "*"), None),
        };
        let result = request.body(to.clone()).send().await;
        // A failed cas in the history means "the comparison did not hold"
        // (412). Refused without being tried (503), it observed nothing and
        // changed nothing: it is left out.
        let outcome = match &result {
            Ok(response) if response.status() == 412 => Outcome::Fail,
            _ => match write_outcome(result) {
                Outcome::Fail => return,
                other => other,
            },
        };
        self.recorder.record(
            self.process,
            key,
            "cas",
            json!({ "from": from, "to": to }),
            call,
            outcome,
        );
    }
}

/// A write's outcome from its answer: 200 happened; 503 certainly did not
/// (the API's contract); anything else, or no answer, is unknown.
fn write_outcome(result: reqwest::Result<reqwest::Response>) -> Outcome {
    match result {
        Ok(response) if response.status() == 200 => Outcome::Ok,
        Ok(response) if response.status() == 503 => Outcome::Fail,
        _ => Outcome::Unknown,
    }
}

/// Writers of unique keys (`{prefix}/{writer}/{n}`, value = key) through
/// the endpoints in turn, until `stop`; every key acknowledged with a 200
/// is pushed to the returned list.
pub struct UniqueWriters {
    pub acknowledged: Arc<Mutex<Vec<String>>>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl UniqueWriters {
    pub fn start(
        writers: usize,
        prefix: &str,
        endpoints: Arc<Mutex<Vec<String>>>,
        stop: Arc<AtomicBool>,
    ) -> Self {
        let acknowledged = Arc::new(Mutex::new(Vec::new()));
        let tasks = (0..writers)
            .map(|writer| {
                let (endpoints, acknowledged, stop) =
                    (endpoints.clone(), acknowledged.clone(), stop.clone());
                let prefix = prefix.to_owned();
                tokio::spawn(async move {
                    let http = reqwest::Client::builder()
                        .timeout(REQUEST_TIMEOUT)
                        .build()
                        .unwrap();
                    let mut n = 0;
                    while !stop.load(Ordering::Relaxed) {
                        n += 1;
                        let key = format!("{prefix}/{writer}/{n}");
                        let endpoint = {
                            let endpoints = endpoints.lock().unwrap();
                            endpoints[n % endpoints.len()].clone()
                        };
                        let response = http
                            .put(format!("{endpoint}/v1/kv/{key}"))
                            .body(key.clone())
                            .send()
                            .await;
                        if matches!(&response, Ok(r) if r.status() == 200) {
                            acknowledged.lock().unwrap().push(key);
                        }
                    }
                })
            })
            .collect();
        Self {
            acknowledged,
            tasks,
        }
    }

    /// Waits for the writers (after `stop` was set); the acknowledged keys.
    pub async fn join(self) -> Vec<String> {
        for task in self.tasks {
            task.await.unwrap();
        }
        self.acknowledged.lock().unwrap().clone()
    }
}
