//! `raftcfg-operator`: parses flags, sets up logging, serves `/metrics`,
//! `/healthz` and `/readyz`, waits for the leader Lease, runs the
//! controller until a shutdown signal, and then releases the Lease.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Context as _;
use clap::{Parser, ValueEnum};
use k8s_openapi::api::coordination::v1::Lease;
use kube::api::Api;
use kube::runtime::events::Reporter;
use raftcfg_operator::controller::{self, Context};
use raftcfg_operator::http::{HttpState, router};
use raftcfg_operator::kube_platform::KubePlatform;
use raftcfg_operator::lease::{LeaseLock, keep, lease_namespace};
use raftcfg_operator::reconcile::Reconciler;
use raftcfg_operator::world::HttpNodes;

/// Runs RaftCluster resources: a StatefulSet of raftcfg nodes per cluster,
/// with Raft membership changed one member at a time.
#[derive(Parser, Debug)]
#[command(version)]
struct Args {
    /// Where /metrics, /healthz and /readyz are served.
    #[arg(long, env = "RAFTCFG_OPERATOR_LISTEN", default_value = "0.0.0.0:8080")]
    listen: SocketAddr,
    /// Watch only this namespace (default: all namespaces).
    #[arg(long, env = "RAFTCFG_OPERATOR_NAMESPACE")]
    namespace: Option<String>,
    /// The namespace of the leader-election Lease (default: the pod's own
    /// namespace; required out of a cluster).
    #[arg(long, env = "POD_NAMESPACE")]
    lease_namespace: Option<String>,
    /// The leader-election Lease's name.
    #[arg(long, default_value = "raftcfg-operator")]
    lease_name: String,
    /// This replica's identity in the Lease (its pod name).
    #[arg(long, env = "POD_NAME")]
    identity: Option<String>,
    /// Log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

#[derive(Clone, Copy, Debug, ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

/// How long a Lease holds without renewal, how soon its holder stops if
/// it cannot renew (client-go's renew deadline), and how often it renews.
const LEASE_DURATION: Duration = Duration::from_secs(15);
const LEASE_RENEW_DEADLINE: Duration = Duration::from_secs(10);
const LEASE_RENEW_EVERY: Duration = Duration::from_secs(2);
/// Where a pod finds its own namespace.
const SERVICE_ACCOUNT_NAMESPACE: &str = "/var/run/secrets/kubernetes.io/serviceaccount/namespace";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    init_tracing(args.log_format);
    let lease_namespace = lease_namespace(
        args.lease_namespace.as_deref(),
        std::path::Path::new(SERVICE_ACCOUNT_NAMESPACE),
    )
    .map_err(anyhow::Error::msg)?;
    let client = kube::Client::try_default()
        .await
        .context("no Kubernetes configuration found (in-cluster or kubeconfig)")?;
    // Every replica needs its own identity: the pod name, else the host
    // name (a container's is its pod's), else something unique enough.
    let identity = args
        .identity
        .clone()
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()))
        .unwrap_or_else(|| {
            let nanos = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            format!("raftcfg-operator-{}-{nanos}", std::process::id())
        });

    let reconciler = Reconciler::new(
        KubePlatform::new(
            client.clone(),
            Reporter {
                controller: "raftcfg-operator".into(),
                instance: Some(identity.clone()),
            },
        ),
        HttpNodes::new(),
    );
    let ready = Arc::new(AtomicBool::new(false));
    let state = HttpState {
        metrics: reconciler.metrics.clone(),
        ready: ready.clone(),
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    tokio::spawn(async move { axum::serve(listener, router(state)).await });

    let lock = LeaseLock::new(
        Api::<Lease>::namespaced(client.clone(), &lease_namespace),
        &args.lease_name,
        &identity,
        LEASE_DURATION,
    );
    let mut waiting_for = None;
    loop {
        match lock.try_acquire_or_renew().await {
            Ok(true) => break,
            Ok(false) => {
                ready.store(true, Ordering::Relaxed);
                let holder = lock.holder_seen();
                if holder != waiting_for {
                    tracing::info!(
                        lease = %args.lease_name,
                        namespace = %lease_namespace,
                        holder = holder.as_deref().unwrap_or("(none)"),
                        "standing by: another replica holds the leader Lease"
                    );
                    waiting_for = holder;
                }
            }
            Err(error) => tracing::warn!(%error, "cannot read the leader Lease"),
        }
        tokio::select! {
            () = tokio::time::sleep(LEASE_RENEW_EVERY) => {}
            () = shutdown_signal() => {
                tracing::info!("stopping while standing by");
                return Ok(());
            }
        }
    }
    ready.store(true, Ordering::Relaxed);
    tracing::info!(%identity, lease = %args.lease_name, "leading; reconciling");
    let holder = lock.clone();
    tokio::spawn(async move {
        let lost = keep(&holder, LEASE_RENEW_EVERY, LEASE_RENEW_DEADLINE).await;
        // Another replica may lead now: stop acting at once; the
        // Deployment restarts this one as a candidate.
        tracing::error!(%lost, "stopping");
        std::process::exit(1);
    });

    let context = Arc::new(Context::new(reconciler, client));
    // Returns on SIGTERM or Ctrl-C, once reconciles in progress finish.
    controller::run(context, args.namespace.as_deref()).await;
    match lock.release().await {
        Ok(()) => tracing::info!(lease = %args.lease_name, "released the leader Lease; stopping"),
        Err(error) => tracing::warn!(%error, "could not release the leader Lease; stopping"),
    }
    Ok(())
}

/// SIGTERM (the kubelet stopping the pod) or Ctrl-C.
async fn shutdown_signal() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .expect("a SIGTERM handler");
    tokio::select! {
        _ = terminate.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colour only for a person at a terminal, not in collected logs.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()));
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}
