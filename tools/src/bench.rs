//! `raftcfg-tools bench`: a closed-loop load generator for raftcfg or, for
//! comparison, etcd (through its v3 JSON gateway).
//!
//! `concurrency` workers; worker `i` talks to endpoint `i mod n`, over a
//! connection of its own for http:// (see `link`). Each sends one request
//! at a time for `warmup + duration` seconds; only requests that start
//! after the warm-up are counted, their latencies recorded in a
//! log-bucketed [`Histogram`]. For read workloads every key is written
//! once first. Failed requests are counted, and fatal only if every
//! request failed. The result is one line (or, with `--json`, one JSON
//! object that the comparison script parses). This module measures; it
//! never retries a request (a worker whose connection closed opens another
//! for its next one).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use rand::rngs::SmallRng;
use rand::{RngExt, SeedableRng};
use reqwest::Method;
use serde::Serialize;

mod link;

use link::{CONNECT_TIMEOUT, Call, Link};

/// Options of `raftcfg-tools bench`.
#[derive(Debug, clap::Args)]
pub struct BenchArgs {
    /// Client URLs of the members to load, comma-separated; worker `i`
    /// talks to the `i mod n`th.
    #[arg(
        long,
        env = "RAFTCFG_ENDPOINTS",
        value_delimiter = ',',
        value_name = "URL[,URL...]",
        default_value = "http://127.0.0.1:7379"
    )]
    pub endpoints: Vec<String>,
    /// The system under test.
    #[arg(long, value_enum, default_value_t = Target::Raftcfg)]
    pub target: Target,
    /// What each request does.
    #[arg(long, value_enum, default_value_t = Workload::Write)]
    pub workload: Workload,
    /// Requests in flight at once (one per worker).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..))]
    pub concurrency: u32,
    /// Size of each written value.
    #[arg(long, value_name = "BYTES", default_value_t = 256)]
    pub value_size: usize,
    /// Number of distinct keys, chosen uniformly at random.
    #[arg(long, value_name = "N", default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..))]
    pub keys: u64,
    /// Seconds measured.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    pub duration: f64,
    /// Seconds of load before measuring starts.
    #[arg(long, value_name = "SECS", default_value_t = 1.0)]
    pub warmup: f64,
    /// Prefix of the benchmark's keys (letters, digits, `/`, `_`, `-`, `.`).
    #[arg(long, default_value = "bench/")]
    pub key_prefix: String,
    /// Seconds before a request counts as failed.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    pub request_timeout: f64,
    /// Print the result as one JSON object.
    #[arg(long)]
    pub json: bool,
    /// Share one pooled client among the workers over http:// too, as
    /// over https:// (to compare plain and TLS runs at the same cost to
    /// the generator); by default each worker owns a connection.
    #[arg(long)]
    pub pooled: bool,
    /// Trust only this CA (PEM) for https:// endpoints.
    #[arg(long, value_name = "FILE")]
    pub cacert: Option<std::path::PathBuf>,
    /// Present this client certificate and key (one PEM file) to servers
    /// that ask for one.
    #[arg(long, value_name = "FILE")]
    pub identity: Option<std::path::PathBuf>,
    /// Send this bearer token with every request (raftcfg with auth on).
    #[arg(
        long,
        env = "RAFTCFG_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
}

/// The system under test.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    /// raftcfg's HTTP API (`PUT`/`GET /v1/kv/{key}`).
    Raftcfg,
    /// etcd's v3 JSON gateway (`POST /v3/kv/put`, `POST /v3/kv/range`).
    Etcd,
}

/// What each request does.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Workload {
    /// Unconditional writes of random keys.
    Write,
    /// Linearizable reads of random keys.
    Read,
    /// Serializable (local) reads of random keys.
    SerializableRead,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Self::Raftcfg => "raftcfg",
            Self::Etcd => "etcd",
        }
    }
}

impl Workload {
    fn name(self) -> &'static str {
        match self {
            Self::Write => "write",
            Self::Read => "read",
            Self::SerializableRead => "serializable-read",
        }
    }
}

/// Everything the workers share.
struct Bench {
    /// reqwest's pooled client, for https:// endpoints (and http:// ones
    /// with `--pooled`).
    pooled: reqwest::Client,
    /// The bearer token every request carries, if any.
    token: Option<String>,
    request_timeout: Duration,
    /// Whether http:// endpoints go through `pooled` too.
    always_pooled: bool,
    target: Target,
    endpoints: Vec<reqwest::Url>,
    /// Key names (for raftcfg URLs) and their base64 (for etcd bodies).
    keys: Vec<(String, String)>,
    value: Bytes,
    value_base64: String,
}

/// What one request does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Op {
    Write,
    Read { serializable: bool },
}

impl Bench {
    /// Worker `worker`'s link to its endpoint, the `worker mod n`th.
    fn link(&self, worker: usize) -> anyhow::Result<Link> {
        let endpoint = &self.endpoints[worker % self.endpoints.len()];
        Link::new(
            endpoint,
            &self.pooled,
            self.always_pooled,
            self.token.as_deref(),
            self.request_timeout,
        )
        .map_err(|e| anyhow::anyhow!(e))
    }

    /// The request that does `op` on key number `key`.
    fn call(&self, key: usize, op: Op) -> Call {
        let (name, name_base64) = &self.keys[key];
        match (self.target, op) {
            (Target::Raftcfg, Op::Write) => Call {
                method: Method::PUT,
                path: format!("/v1/kv/{name}"),
                body: self.value.clone(),
                json: false,
            },
            (Target::Raftcfg, Op::Read { serializable }) => Call {
                method: Method::GET,
                path: if serializable {
                    format!("/v1/kv/{name}?consistency=serializable")
                } else {
                    format!("/v1/kv/{name}")
                },
                body: Bytes::new(),
                json: false,
            },
            // Base64 needs no escaping in a JSON string.
            (Target::Etcd, Op::Write) => Call {
                method: Method::POST,
                path: "/v3/kv/put".to_owned(),
                body: format!(
                    r#"{{"key":"{name_base64}","value":"{}"}}"#,
                    self.value_base64
                )
                .into(),
                json: true,
            },
            (Target::Etcd, Op::Read { serializable }) => Call {
                method: Method::POST,
                path: "/v3/kv/range".to_owned(),
                body: if serializable {
                    format!(r#"{{"key":"{name_base64}","serializable":true}}"#)
                } else {
                    format!(r#"{{"key":"{name_base64}"}}"#)
                }
                .into(),
                json: true,
            },
        }
    }
}

/// One worker's tally.
#[derive(Debug, Default)]
struct Tally {
    latencies: Histogram,
    errors: u64,
    first_error: Option<String>,
}

/// Runs the benchmark.
pub async fn run(args: BenchArgs) -> anyhow::Result<()> {
    let summary = bench(&args).await?;
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        println!("{}", summary.line());
    }
    Ok(())
}

async fn bench(args: &BenchArgs) -> anyhow::Result<Summary> {
    let seconds = |name: &str, value: f64| -> anyhow::Result<Duration> {
        Duration::try_from_secs_f64(value)
            .ok()
            .with_context(|| format!("--{name} must be a non-negative number of seconds"))
    };
    let duration = seconds("duration", args.duration)?;
    let warmup = seconds("warmup", args.warmup)?;
    let request_timeout = seconds("request-timeout", args.request_timeout)?;
    if duration.is_zero() {
        bail!("--duration must be more than zero");
    }
    let endpoints = args
        .endpoints
        .iter()
        .map(|e| check_endpoint(e))
        .collect::<anyhow::Result<Vec<_>>>()?;
    if endpoints.is_empty() {
        bail!("no endpoints given");
    }
    if !args
        .key_prefix
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "/_-.".contains(c))
    {
        bail!("--key-prefix may only hold letters, digits, '/', '_', '-' and '.'");
    }
    let concurrency = args.concurrency as usize;
    let mut http = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(request_timeout)
        .tcp_nodelay(true)
        .redirect(reqwest::redirect::Policy::none());
    if let Some(path) = &args.cacert {
        let pem = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        http = http.tls_certs_only(
            reqwest::Certificate::from_pem_bundle(&pem)
                .with_context(|| format!("no CA certificate in {}", path.display()))?,
        );
    }
    if let Some(path) = &args.identity {
        let pem = std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        http = http.identity(
            reqwest::Identity::from_pem(&pem)
                .with_context(|| format!("no certificate and key in {}", path.display()))?,
        );
    }
    let pooled = http.build().context("cannot set up the HTTP client")?;
    let keys = (0..args.keys)
        .map(|i| {
            let name = format!("{}{i:08}", args.key_prefix);
            let name_base64 = BASE64.encode(&name);
            (name, name_base64)
        })
        .collect();
    let value = Bytes::from(value_of_size(args.value_size));
    let bench = Arc::new(Bench {
        pooled,
        token: args.token.clone(),
        request_timeout,
        always_pooled: args.pooled,
        target: args.target,
        endpoints,
        keys,
        value_base64: BASE64.encode(&value),
        value,
    });

    let op = match args.workload {
        Workload::Write => Op::Write,
        Workload::Read => Op::Read {
            serializable: false,
        },
        Workload::SerializableRead => Op::Read { serializable: true },
    };
    if op == Op::Write {
        // One write first, so an unreachable target fails at once.
        bench
            .link(0)?
            .send(&bench.call(0, Op::Write))
            .await
            .map_err(|e| anyhow::anyhow!("the first write failed: {e}"))?;
    } else {
        preload(&bench, concurrency).await?;
    }

    let started = Instant::now();
    let measure_from = started + warmup;
    let deadline = measure_from + duration;
    let workers: Vec<_> = (0..concurrency)
        .map(|worker| {
            let bench = bench.clone();
            let mut link = bench.link(worker)?;
            Ok(tokio::spawn(async move {
                let mut rng = SmallRng::seed_from_u64(worker as u64);
                let mut tally = Tally::default();
                loop {
                    let start = Instant::now();
                    if start >= deadline {
                        break;
                    }
                    let key = rng.random_range(0..bench.keys.len());
                    let result = link.send(&bench.call(key, op)).await;
                    if start < measure_from {
                        continue;
                    }
                    match result {
                        Ok(()) => tally.latencies.record(start.elapsed()),
                        Err(e) => {
                            tally.errors += 1;
                            tally.first_error.get_or_insert(e);
                        }
                    }
                }
                tally
            }))
        })
        .collect::<anyhow::Result<_>>()?;
    let mut total = Tally::default();
    for worker in workers {
        let tally = worker.await.context("a benchmark worker panicked")?;
        total.latencies.merge(&tally.latencies);
        total.errors += tally.errors;
        if total.first_error.is_none() {
            total.first_error = tally.first_error;
        }
    }

    let ops = total.latencies.count();
    if let Some(first) = &total.first_error {
        if ops == 0 {
            bail!(
                "every request failed ({} of them); the first: {first}",
                total.errors
            );
        }
        eprintln!(
            "bench: {} requests failed; the first: {first}",
            total.errors
        );
    }
    // Milliseconds to the microsecond, the histogram's precision anyway.
    let ms = |d: Duration| (d.as_secs_f64() * 1e6).round() / 1e3;
    Ok(Summary {
        target: args.target,
        workload: args.workload,
        concurrency: args.concurrency,
        value_size: args.value_size,
        keys: args.keys,
        duration_secs: duration.as_secs_f64(),
        ops,
        errors: total.errors,
        throughput: (ops as f64 / duration.as_secs_f64() * 10.0).round() / 10.0,
        p50_ms: ms(total.latencies.quantile(0.5)),
        p99_ms: ms(total.latencies.quantile(0.99)),
        p999_ms: ms(total.latencies.quantile(0.999)),
        max_ms: ms(total.latencies.max()),
    })
}

/// An http(s) URL, checked as the client checks its endpoints.
fn check_endpoint(endpoint: &str) -> anyhow::Result<reqwest::Url> {
    Ok(raftcfg_client::parse_endpoint(endpoint)?)
}

/// Writes every key once, `concurrency` workers at a time, so reads find
/// values.
async fn preload(bench: &Arc<Bench>, concurrency: usize) -> anyhow::Result<()> {
    let workers = concurrency.min(bench.keys.len());
    let writers: Vec<_> = (0..workers)
        .map(|worker| {
            let bench = bench.clone();
            let mut link = bench.link(worker)?;
            Ok(tokio::spawn(async move {
                for key in (worker..bench.keys.len()).step_by(workers) {
                    if let Err(e) = link.send(&bench.call(key, Op::Write)).await {
                        bail!("writing {} before the reads failed: {e}", bench.keys[key].0);
                    }
                }
                Ok(())
            }))
        })
        .collect::<anyhow::Result<_>>()?;
    for writer in writers {
        writer.await.context("a preloading worker panicked")??;
    }
    Ok(())
}

/// Printable bytes that do not compress to nothing.
fn value_of_size(size: usize) -> Vec<u8> {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut rng = SmallRng::seed_from_u64(0x7261_6674);
    (0..size)
        .map(|_| ALPHABET[rng.random_range(0..ALPHABET.len())])
        .collect()
}

/// The result of a run; `--json` prints it as is.
#[derive(Clone, Debug, PartialEq, Serialize)]
struct Summary {
    target: Target,
    workload: Workload,
    concurrency: u32,
    value_size: usize,
    keys: u64,
    duration_secs: f64,
    /// Successful requests in the measured window.
    ops: u64,
    /// Failed requests in the measured window.
    errors: u64,
    /// Successful requests per second.
    throughput: f64,
    p50_ms: f64,
    p99_ms: f64,
    p999_ms: f64,
    max_ms: f64,
}

impl Summary {
    /// The one-line form.
    fn line(&self) -> String {
        format!(
            "target={} workload={} concurrency={} ops={} errors={} throughput={:.1}/s \
             p50={:.2}ms p99={:.2}ms p999={:.2}ms",
            self.target.name(),
            self.workload.name(),
            self.concurrency,
            self.ops,
            self.errors,
            self.throughput,
            self.p50_ms,
            self.p99_ms,
            self.p999_ms
        )
    }
}

/// Sub-buckets per power of two: 2^6 = 64, so a recorded value is off by
/// at most 1/64 (1.6 %).
const SUB_BUCKET_BITS: u32 = 6;
const SUB_BUCKETS: usize = 1 << SUB_BUCKET_BITS;
/// Enough buckets for every u64: values below 64 exactly, then 64
/// sub-buckets for each of the 58 powers of two from 2^6 to 2^63.
const BUCKETS: usize = (64 - SUB_BUCKET_BITS as usize + 1) * SUB_BUCKETS;

/// A latency histogram with logarithmic buckets, in nanoseconds: each
/// power of two is split into 64 equal sub-buckets, so quantiles are exact
/// to within 1.6 % at any scale, in a fixed 30 KiB.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Histogram {
    counts: Vec<u64>,
    count: u64,
    max_ns: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            counts: vec![0; BUCKETS],
            count: 0,
            max_ns: 0,
        }
    }
}

impl Histogram {
    /// Records one latency.
    pub(crate) fn record(&mut self, latency: Duration) {
        let ns = u64::try_from(latency.as_nanos()).unwrap_or(u64::MAX);
        self.counts[bucket_of(ns)] += 1;
        self.count += 1;
        self.max_ns = self.max_ns.max(ns);
    }

    /// Adds another histogram's counts to this one.
    pub(crate) fn merge(&mut self, other: &Histogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(&other.counts) {
            *mine += theirs;
        }
        self.count += other.count;
        self.max_ns = self.max_ns.max(other.max_ns);
    }

    /// How many latencies were recorded.
    pub(crate) fn count(&self) -> u64 {
        self.count
    }

    /// The largest latency recorded.
    pub(crate) fn max(&self) -> Duration {
        Duration::from_nanos(self.max_ns)
    }

    /// The latency at or below which a fraction `q` (0..=1) of the
    /// recordings fall: the upper end of the bucket holding the
    /// `ceil(q * count)`-th smallest, but never more than the maximum.
    /// Zero if nothing was recorded.
    pub(crate) fn quantile(&self, q: f64) -> Duration {
        if self.count == 0 {
            return Duration::ZERO;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (index, count) in self.counts.iter().enumerate() {
            seen += count;
            if seen >= rank {
                return Duration::from_nanos(highest_in(index).min(self.max_ns));
            }
        }
        self.max()
    }
}

/// The bucket of `value`: values below 64 have their own; above, the
/// exponent picks a group of 64 and the six bits after the leading one pick
/// the bucket within it.
fn bucket_of(value: u64) -> usize {
    if value < SUB_BUCKETS as u64 {
        return value as usize;
    }
    let exponent = 63 - value.leading_zeros();
    let shift = exponent - SUB_BUCKET_BITS;
    let sub_bucket = (value >> shift) as usize;
    (shift as usize + 1) * SUB_BUCKETS + (sub_bucket - SUB_BUCKETS)
}

/// The largest value in bucket `index`.
fn highest_in(index: usize) -> u64 {
    if index < SUB_BUCKETS {
        return index as u64;
    }
    let shift = (index / SUB_BUCKETS - 1) as u32;
    let sub_bucket = (index % SUB_BUCKETS + SUB_BUCKETS) as u64;
    (sub_bucket << shift) + ((1u64 << shift) - 1)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    fn micros(n: u64) -> Duration {
        Duration::from_micros(n)
    }

    /// Whether `actual` is within the histogram's 1/64 of `expected`.
    fn close(actual: Duration, expected: Duration) -> bool {
        let (a, e) = (actual.as_nanos() as f64, expected.as_nanos() as f64);
        (a - e).abs() <= e / 64.0
    }

    #[test]
    fn an_empty_histogram_reports_zero() {
        let histogram = Histogram::default();
        assert_eq!(histogram.quantile(0.5), Duration::ZERO);
        assert_eq!(histogram.count(), 0);
    }

    #[test]
    fn quantiles_of_a_uniform_spread_are_within_the_bucket_precision() {
        let mut histogram = Histogram::default();
        for us in 1..=10_000 {
            histogram.record(micros(us));
        }
        for (q, expected) in [
            (0.5, 5_000),
            (0.9, 9_000),
            (0.99, 9_900),
            (0.999, 9_990),
            (1.0, 10_000),
        ] {
            let got = histogram.quantile(q);
            assert!(
                close(got, micros(expected)),
                "q={q}: {got:?} vs {expected} us"
            );
        }
        assert_eq!(histogram.max(), micros(10_000));
    }

    #[test]
    fn small_values_are_exact_and_quantiles_never_exceed_the_maximum() {
        let mut histogram = Histogram::default();
        for ns in [1, 2, 3, 4] {
            histogram.record(Duration::from_nanos(ns));
        }
        assert_eq!(histogram.quantile(0.5), Duration::from_nanos(2));
        assert_eq!(histogram.quantile(0.75), Duration::from_nanos(3));
        let mut one = Histogram::default();
        one.record(micros(1_234));
        assert_eq!(one.quantile(0.999), micros(1_234));
    }

    #[test]
    fn a_slow_tail_shows_in_p999_but_not_p50() {
        let mut histogram = Histogram::default();
        for _ in 0..9_990 {
            histogram.record(micros(1_000));
        }
        for _ in 0..10 {
            histogram.record(micros(80_000));
        }
        assert!(close(histogram.quantile(0.5), micros(1_000)));
        assert!(close(histogram.quantile(0.99), micros(1_000)));
        assert!(close(histogram.quantile(0.9991), micros(80_000)));
    }

    #[test]
    fn merged_histograms_count_both() {
        let (mut a, mut b) = (Histogram::default(), Histogram::default());
        for us in 1..=500 {
            a.record(micros(us));
        }
        for us in 501..=1_000 {
            b.record(micros(us));
        }
        a.merge(&b);
        assert_eq!(a.count(), 1_000);
        assert!(close(a.quantile(0.5), micros(500)));
        assert_eq!(a.max(), micros(1_000));
    }

    #[test]
    fn buckets_are_contiguous_and_cover_every_u64() {
        for index in 0..BUCKETS - 1 {
            assert_eq!(
                bucket_of(highest_in(index) + 1),
                index + 1,
                "after bucket {index}"
            );
            assert_eq!(bucket_of(highest_in(index)), index);
        }
        assert_eq!(bucket_of(u64::MAX), BUCKETS - 1);
        assert_eq!(highest_in(BUCKETS - 1), u64::MAX);
    }

    #[derive(Debug, Parser)]
    struct TestCli {
        #[command(subcommand)]
        command: TestCommand,
    }

    #[derive(Debug, clap::Subcommand)]
    enum TestCommand {
        Bench(BenchArgs),
    }

    #[test]
    fn bench_options_parse_with_their_defaults() {
        let TestCommand::Bench(args) = TestCli::try_parse_from([
            "raftcfg-tools",
            "bench",
            "--target",
            "etcd",
            "--workload",
            "serializable-read",
            "--json",
        ])
        .unwrap()
        .command;
        assert_eq!(
            (args.target, args.workload, args.concurrency),
            (Target::Etcd, Workload::SerializableRead, 16)
        );
        assert_eq!((args.value_size, args.keys), (256, 1000));
        assert_eq!((args.duration, args.warmup), (10.0, 1.0));
        assert!(args.json);
        assert!(TestCli::try_parse_from(["raftcfg-tools", "bench", "--concurrency", "0"]).is_err());
    }

    #[test]
    fn the_summary_line_has_the_documented_shape() {
        let summary = Summary {
            target: Target::Raftcfg,
            workload: Workload::Write,
            concurrency: 16,
            value_size: 256,
            keys: 1000,
            duration_secs: 10.0,
            ops: 12_345,
            errors: 0,
            throughput: 1_234.5,
            p50_ms: 1.234,
            p99_ms: 4.56,
            p999_ms: 7.891,
            max_ms: 9.0,
        };
        assert_eq!(
            summary.line(),
            "target=raftcfg workload=write concurrency=16 ops=12345 errors=0 \
             throughput=1234.5/s p50=1.23ms p99=4.56ms p999=7.89ms"
        );
        let json: serde_json::Value = serde_json::to_value(&summary).unwrap();
        assert_eq!(json["workload"], "write");
        assert_eq!(json["throughput"], 1_234.5);
        assert_eq!(json["p999_ms"], 7.891);
    }
}
