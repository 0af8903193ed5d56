//! `raftcfg-tools bench` against a stand-in HTTP server that records what
//! it is sent: the requests each target and workload make, counting only
//! what the server answered, reconnecting when the server closes a
//! connection, and quoting the server's answer when requests fail.

use std::net::SocketAddr;
use std::process::{Command, Output};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::header::{CONNECTION, HeaderValue};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;

/// One request as the server saw it.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    path: String,
    host: Option<String>,
    content_type: Option<String>,
    authorization: Option<String>,
    accept: Option<String>,
    body: Bytes,
}

/// How the stand-in server answers.
#[derive(Clone, Copy)]
struct Behaviour {
    status: StatusCode,
    /// Close each connection after this many answers on it.
    close_after: Option<usize>,
}

/// What the server recorded.
#[derive(Default)]
struct Record {
    requests: Vec<Seen>,
    connections: usize,
}

/// Starts the stand-in server on a thread of its own; it runs until the
/// test process ends.
fn serve(behaviour: Behaviour) -> (SocketAddr, Arc<Mutex<Record>>) {
    let record = Arc::new(Mutex::new(Record::default()));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let address = listener.local_addr().unwrap();
    let shared = record.clone();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                shared.lock().unwrap().connections += 1;
                let record = shared.clone();
                tokio::spawn(async move {
                    let answered = Arc::new(Mutex::new(0usize));
                    let service = hyper::service::service_fn(move |request| {
                        answer(request, behaviour, record.clone(), answered.clone())
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
    });
    (address, record)
}

async fn answer(
    request: Request<Incoming>,
    behaviour: Behaviour,
    record: Arc<Mutex<Record>>,
    answered: Arc<Mutex<usize>>,
) -> Result<Response<Full<Bytes>>, hyper::Error> {
    let header = |name: &str| {
        request
            .headers()
            .get(name)
            .map(|value| value.to_str().unwrap().to_owned())
    };
    let seen = Seen {
        method: request.method().to_string(),
        path: request.uri().to_string(),
        host: header("host"),
        content_type: header("content-type"),
        authorization: header("authorization"),
        accept: header("accept"),
        body: Bytes::new(),
    };
    let body = request.into_body().collect().await?.to_bytes();
    record.lock().unwrap().requests.push(Seen { body, ..seen });
    let mut response = Response::new(Full::new(Bytes::from_static(b"{\"stand-in\":true}")));
    *response.status_mut() = behaviour.status;
    let mut answered = answered.lock().unwrap();
    *answered += 1;
    if behaviour.close_after == Some(*answered) {
        response
            .headers_mut()
            .insert(CONNECTION, HeaderValue::from_static("close"));
    }
    Ok(response)
}

fn bench(address: SocketAddr, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_raftcfg-tools"))
        .arg("bench")
        .arg("--endpoints")
        .arg(format!("http://{address}"))
        .args(["--duration", "0.3", "--warmup", "0.1", "--json"])
        .args(args)
        .output()
        .expect("raftcfg-tools runs")
}

fn report(output: &Output) -> serde_json::Value {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "bench failed: {stderr}");
    serde_json::from_slice(&output.stdout).unwrap()
}

const OK: Behaviour = Behaviour {
    status: StatusCode::OK,
    close_after: None,
};

#[test]
fn raftcfg_writes_are_puts_of_the_value_to_the_keys_and_only_answers_count() {
    let (address, record) = serve(OK);
    let output = bench(
        address,
        &[
            "--concurrency",
            "4",
            "--keys",
            "10",
            "--value-size",
            "100",
            "--token",
            "secret-token",
        ],
    );
    let report = report(&output);
    let record = record.lock().unwrap();
    let ops = report["ops"].as_u64().unwrap();
    assert!(ops > 0, "nothing measured: {report}");
    assert_eq!(report["errors"], 0);
    // The warm-up's requests and the first write are answered but not
    // counted.
    assert!(
        (ops as usize) < record.requests.len(),
        "{ops} counted, {} answered",
        record.requests.len()
    );
    // One connection per worker, plus the first write's.
    assert_eq!(record.connections, 5);
    for seen in &record.requests {
        assert_eq!(seen.method, "PUT");
        let key = seen.path.strip_prefix("/v1/kv/bench/").unwrap();
        assert!(
            key.len() == 8 && key.parse::<u64>().unwrap() < 10,
            "{seen:?}"
        );
        assert_eq!(seen.host.as_deref(), Some(address.to_string().as_str()));
        assert_eq!(seen.authorization.as_deref(), Some("Bearer secret-token"));
        assert_eq!(seen.accept, None, "sent by the pooled client");
        assert_eq!(seen.body.len(), 100);
    }
}

#[test]
fn with_pooled_plain_requests_go_through_the_pooled_client() {
    let (address, record) = serve(OK);
    let report = report(&bench(
        address,
        &["--concurrency", "4", "--pooled", "--token", "secret-token"],
    ));
    assert!(report["ops"].as_u64().unwrap() > 0, "{report}");
    assert_eq!(report["errors"], 0, "{report}");
    let record = record.lock().unwrap();
    for seen in &record.requests {
        assert_eq!(seen.method, "PUT");
        assert_eq!(seen.authorization.as_deref(), Some("Bearer secret-token"));
        // reqwest's default; a worker's own connection sends none.
        assert_eq!(seen.accept.as_deref(), Some("*/*"));
    }
}

#[test]
fn etcd_reads_post_json_ranges_after_writing_every_key() {
    let (address, record) = serve(OK);
    let output = bench(
        address,
        &[
            "--target",
            "etcd",
            "--workload",
            "serializable-read",
            "--concurrency",
            "3",
            "--keys",
            "7",
        ],
    );
    report(&output);
    let record = record.lock().unwrap();
    let body = |seen: &Seen| -> serde_json::Value { serde_json::from_slice(&seen.body).unwrap() };
    let (writes, reads): (Vec<&Seen>, Vec<&Seen>) = record
        .requests
        .iter()
        .partition(|seen| seen.path == "/v3/kv/put");
    let mut written: Vec<String> = writes
        .iter()
        .map(|seen| body(seen)["key"].as_str().unwrap().to_owned())
        .collect();
    written.sort();
    written.dedup();
    assert_eq!(written.len(), 7, "every key is written before the reads");
    assert!(!reads.is_empty());
    for seen in record.requests.iter() {
        assert_eq!(seen.method, "POST");
        assert_eq!(seen.content_type.as_deref(), Some("application/json"));
    }
    for seen in &reads {
        assert_eq!(seen.path, "/v3/kv/range");
        let body = body(seen);
        assert_eq!(body["serializable"], true);
        assert!(written.contains(&body["key"].as_str().unwrap().to_owned()));
    }
}

#[test]
fn a_worker_reconnects_when_the_server_closes_its_connection() {
    let (address, record) = serve(Behaviour {
        status: StatusCode::OK,
        close_after: Some(3),
    });
    let report = report(&bench(address, &["--concurrency", "2"]));
    assert_eq!(report["errors"], 0, "{report}");
    let record = record.lock().unwrap();
    // Each connection answers three requests at most.
    assert!(record.requests.len() > 30, "the run stopped early");
    assert!(record.connections >= record.requests.len() / 3);
}

#[test]
fn a_failing_answer_is_quoted_in_the_error() {
    let (address, _) = serve(Behaviour {
        status: StatusCode::SERVICE_UNAVAILABLE,
        close_after: None,
    });
    let output = bench(address, &["--concurrency", "2"]);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("503 Service Unavailable: {\"stand-in\":true}"),
        "unexpected error: {stderr}"
    );
}
