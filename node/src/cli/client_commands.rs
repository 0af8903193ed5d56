//! The client subcommands of `raftcfg` (get, put, del, ls, watch, member,
//! leader, status, snapshot save; auth, user and role are in
//! `auth_commands`): each parses its arguments, makes calls
//! through [`raftcfg_client::http::Client`] and prints the answer. They
//! talk to a cluster over its HTTP API only and never open a data
//! directory. Errors are returned, and printed as one line by `cli::main`.

use std::io::{IsTerminal, Write as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, bail};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use clap::{Args, Subcommand};
use futures::StreamExt;
use raftcfg_client::http::{
    Client, ClientError, ClientOptions, ClientTls, Consistency, Credentials, Precondition,
};
use raftcfg_client::wire::{
    AddMemberRequest, KeyValue, ListResponse, MemberList, NodeId, UpdateMemberRequest,
};
use serde::Serialize;
use tokio::io::AsyncReadExt;

use super::output::{OutputArgs, display_value, or_dash, print_json, role_name, table};
use super::status::StatusArgs;

/// Where the cluster is reached when neither `--endpoints` nor
/// `RAFTCFG_ENDPOINTS` says.
pub const DEFAULT_ENDPOINT: &str = "http://127.0.0.1:7379";

/// How long an endpoint has to answer unless `--timeout` says otherwise.
const DEFAULT_TIMEOUT: &str = "30s";

/// The cluster to talk to, and how long to wait; shared by every client
/// subcommand.
#[derive(Clone, Debug, PartialEq, Eq, Args)]
pub struct EndpointArgs {
    /// Client URLs of cluster members, comma-separated; requests fail over
    /// from one to the next.
    #[arg(
        long,
        env = "RAFTCFG_ENDPOINTS",
        value_delimiter = ',',
        value_name = "URL[,URL...]",
        default_value = DEFAULT_ENDPOINT
    )]
    pub endpoints: Vec<String>,
    /// How long an endpoint has to answer, e.g. 10s, 500ms, 2m. A read
    /// moves on to the next endpoint sooner (after 3 s, or this if less);
    /// a write that times out is reported as of unknown outcome, never
    /// retried.
    #[arg(long, env = "RAFTCFG_TIMEOUT", value_name = "DURATION", default_value = DEFAULT_TIMEOUT, value_parser = parse_timeout)]
    pub timeout: Duration,
    /// Trust only this CA (PEM) for https:// endpoints.
    #[arg(long, env = "RAFTCFG_CACERT", value_name = "FILE")]
    pub cacert: Option<PathBuf>,
    /// Present this client certificate (PEM) to nodes that ask for one.
    #[arg(
        long = "cert",
        id = "client_cert",
        env = "RAFTCFG_CERT",
        value_name = "FILE",
        requires = "client_key"
    )]
    pub cert: Option<PathBuf>,
    /// The private key (PEM) of --cert.
    #[arg(
        long = "key",
        id = "client_key",
        env = "RAFTCFG_KEY",
        value_name = "FILE",
        requires = "client_cert"
    )]
    pub key: Option<PathBuf>,
    /// Sign in as this user (where auth is enabled); the password comes
    /// from --password, RAFTCFG_PASSWORD or a prompt.
    #[arg(
        long,
        env = "RAFTCFG_USER",
        value_name = "NAME",
        conflicts_with = "token"
    )]
    pub user: Option<String>,
    /// The password of --user.
    #[arg(
        long,
        env = "RAFTCFG_PASSWORD",
        value_name = "PASSWORD",
        requires = "user",
        hide_env_values = true
    )]
    pub password: Option<String>,
    /// Sign in with this bearer token (from `raftcfg auth token`).
    #[arg(
        long,
        env = "RAFTCFG_TOKEN",
        value_name = "TOKEN",
        hide_env_values = true
    )]
    pub token: Option<String>,
}

impl EndpointArgs {
    /// A client of these endpoints with `--timeout`.
    pub(super) fn client(&self) -> anyhow::Result<Client> {
        self.client_within(self.timeout)
    }

    /// A client of these endpoints that waits `timeout` for an answer.
    pub(super) fn client_within(&self, timeout: Duration) -> anyhow::Result<Client> {
        let read = |flag: &str, path: &Path| {
            std::fs::read(path).with_context(|| format!("cannot read {flag} {}", path.display()))
        };
        let mut tls = ClientTls::default();
        if let Some(path) = &self.cacert {
            tls.ca_pem = Some(read("--cacert", path)?);
        }
        if let (Some(cert), Some(key)) = (&self.cert, &self.key) {
            let mut pem = read("--cert", cert)?;
            pem.push(b'\n');
            pem.extend(read("--key", key)?);
            tls.identity_pem = Some(pem);
        }
        let credentials = match (&self.user, &self.token) {
            (_, Some(token)) => Some(Credentials::Token(token.clone())),
            (Some(user), None) => Some(Credentials::Password {
                user: user.clone(),
                password: match &self.password {
                    Some(password) => password.clone(),
                    None => {
                        super::auth_commands::prompt_password(&format!("password of {user}: "))?
                    }
                },
            }),
            (None, None) => None,
        };
        let options = ClientOptions {
            request_timeout: timeout,
            read_failover_timeout: timeout.min(ClientOptions::default().read_failover_timeout),
            tls,
            credentials,
            ..ClientOptions::default()
        };
        Ok(Client::with_options(&self.endpoints, options)?)
    }
}

/// A `--timeout`: a positive duration such as `10s`, `500ms` or `2m`.
fn parse_timeout(text: &str) -> Result<Duration, String> {
    let duration = humantime::parse_duration(text)
        .map_err(|e| format!("'{text}' is not a duration such as 10s, 500ms or 2m ({e})"))?;
    if duration.is_zero() {
        return Err("the timeout must be more than zero".to_owned());
    }
    Ok(duration)
}

/// The client subcommands.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Print a key's value (raw bytes) to stdout.
    Get(GetArgs),
    /// Write a key (the value from the argument, or else from stdin) and
    /// print the new revision.
    Put(PutArgs),
    /// Delete a key and print the revision of the deletion.
    Del(DelArgs),
    /// List keys under a prefix: key, mod_revision and value, tab-separated.
    Ls(LsArgs),
    /// Print every change under a prefix as it happens, until Ctrl-C.
    Watch(WatchArgs),
    /// Found a one-member cluster on the node at the first endpoint (a new
    /// node, which no cluster has yet).
    Bootstrap(BootstrapArgs),
    /// List, add, promote, update or remove cluster members.
    #[command(subcommand)]
    Member(MemberCommand),
    /// Move leadership.
    #[command(subcommand)]
    Leader(LeaderCommand),
    /// Show every member's Raft progress and check that members at the same
    /// applied index hold the same state.
    Status(StatusArgs),
    /// Back up the cluster's state.
    #[command(subcommand)]
    Snapshot(SnapshotCommand),
    /// Turn authentication on or off, see whether it is on, get a token.
    #[command(subcommand)]
    Auth(super::auth_commands::AuthCommand),
    /// Add, list, delete users, set passwords, grant and revoke roles.
    #[command(subcommand)]
    User(super::auth_commands::UserCommand),
    /// Add, list, delete roles, grant and revoke their permissions.
    #[command(subcommand)]
    Role(super::auth_commands::RoleCommand),
}

/// `raftcfg get`.
#[derive(Debug, Args)]
pub struct GetArgs {
    /// The key, e.g. app/db/url.
    pub key: String,
    /// Read from the answering node's state, which may lag the leader.
    #[arg(long)]
    pub serializable: bool,
    /// Print the key's revisions and version, then the value as text.
    #[arg(long, conflicts_with = "output")]
    pub meta: bool,
    #[command(flatten)]
    pub endpoints: EndpointArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `raftcfg put`.
#[derive(Debug, Args)]
pub struct PutArgs {
    /// The key, e.g. app/db/url.
    pub key: String,
    /// The value; read from stdin when absent.
    pub value: Option<String>,
    /// Write only if the key's mod_revision is REV (compare-and-swap).
    #[arg(long, value_name = "REV", conflicts_with = "if_absent")]
    pub if_mod_revision: Option<u64>,
    /// Write only if the key does not exist.
    #[arg(long)]
    pub if_absent: bool,
    #[command(flatten)]
    pub endpoints: EndpointArgs,
}

/// `raftcfg del`.
#[derive(Debug, Args)]
pub struct DelArgs {
    /// The key.
    pub key: String,
    /// Delete only if the key's mod_revision is REV.
    #[arg(long, value_name = "REV")]
    pub if_mod_revision: Option<u64>,
    #[command(flatten)]
    pub endpoints: EndpointArgs,
}

/// `raftcfg ls`.
#[derive(Debug, Args)]
pub struct LsArgs {
    /// The prefix, e.g. app/ (empty: every key).
    #[arg(default_value = "")]
    pub prefix: String,
    /// Print at most N keys (default: all, page by page).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub limit: Option<u32>,
    /// Read from the answering node's state, which may lag the leader.
    #[arg(long)]
    pub serializable: bool,
    #[command(flatten)]
    pub endpoints: EndpointArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `raftcfg watch`.
#[derive(Debug, Args)]
pub struct WatchArgs {
    /// The prefix, e.g. app/ (empty: every key).
    #[arg(default_value = "")]
    pub prefix: String,
    /// Start at this revision (inclusive) instead of now.
    #[arg(long, value_name = "REV")]
    pub from: Option<u64>,
    #[command(flatten)]
    pub endpoints: EndpointArgs,
}

/// `raftcfg member ...`.
#[derive(Debug, Subcommand)]
pub enum MemberCommand {
    /// List the members.
    List(MemberListArgs),
    /// Add a node as a learner (promote it once it has caught up).
    Add(MemberAddArgs),
    /// Promote a caught-up learner to voter.
    Promote(MemberIdArgs),
    /// Remove a member.
    Remove(MemberIdArgs),
    /// Record a member's new URLs (after it moved); its name stays.
    Update(MemberUpdateArgs),
    /// Recover from a quorum lost for good: make the voter at the first
    /// endpoint its cluster's only voter, keeping its data and cluster id.
    /// Entries only the lost voters held are gone. Then add the others back
    /// as new nodes (with empty data directories).
    ForceNewCluster(ForceNewClusterArgs),
}

/// `raftcfg member force-new-cluster`.
#[derive(Debug, Args)]
pub struct ForceNewClusterArgs {
    /// Say that the other voters are lost for good. If they come back with
    /// their data, two clusters of the same id each accept writes.
    #[arg(long)]
    pub confirm_quorum_lost: bool,
    #[command(flatten)]
    pub endpoints: EndpointArgs,
}

/// `raftcfg bootstrap`.
#[derive(Debug, Args)]
pub struct BootstrapArgs {
    #[command(flatten)]
    pub endpoints: EndpointArgs,
}

/// `raftcfg member update`.
#[derive(Debug, Args)]
pub struct MemberUpdateArgs {
    /// The member's node id.
    pub id: u64,
    /// Where peers reach it now, e.g. http://10.0.0.5:7380.
    #[arg(long, value_name = "URL")]
    pub peer_url: String,
    /// Where clients reach it now, e.g. http://10.0.0.5:7379.
    #[arg(long, value_name = "URL")]
    pub client_url: String,
    #[command(flatten)]
    pub endpoints: EndpointArgs,
}

/// `raftcfg member list`.
#[derive(Debug, Args)]
pub struct MemberListArgs {
    #[command(flatten)]
    pub endpoints: EndpointArgs,
    #[command(flatten)]
    pub output: OutputArgs,
}

/// `raftcfg member add`.
#[derive(Debug, Args)]
pub struct MemberAddArgs {
    /// The new node's id, as its `GET /v1/node` reports.
    #[arg(long, value_name = "ID")]
    pub node_id: u64,
    /// Its name.
    #[arg(long)]
    pub name: String,
    /// Where peers reach it, e.g. http://10.0.0.4:7380.
    #[arg(long, value_name = "URL")]
    pub peer_url: String,
    /// Where clients reach it, e.g. http://10.0.0.4:7379.
    #[arg(long, value_name = "URL")]
    pub client_url: String,
    #[command(flatten)]
    pub endpoints: EndpointArgs,
}

/// `raftcfg member promote|remove ID`.
#[derive(Debug, Args)]
pub struct MemberIdArgs {
    /// The member's node id.
    pub id: u64,
    #[command(flatten)]
    pub endpoints: EndpointArgs,
}

/// `raftcfg leader ...`.
#[derive(Debug, Subcommand)]
pub enum LeaderCommand {
    /// Hand leadership to a voter (by default the most caught-up one).
    Transfer(LeaderTransferArgs),
}

/// `raftcfg leader transfer`.
#[derive(Debug, Args)]
pub struct LeaderTransferArgs {
    /// The voter to lead.
    #[arg(long, value_name = "ID")]
    pub to: Option<u64>,
    #[command(flatten)]
    pub endpoints: EndpointArgs,
}

/// `raftcfg snapshot ...`.
#[derive(Debug, Subcommand)]
pub enum SnapshotCommand {
    /// Download a consistent backup of the state to FILE.
    Save(SnapshotSaveArgs),
    /// Create a new single-node cluster from a backup, in a new data directory.
    Restore(SnapshotRestoreArgs),
}

/// `raftcfg snapshot restore`.
#[derive(Debug, Args)]
pub struct SnapshotRestoreArgs {
    /// The backup, as written by `raftcfg snapshot save`.
    pub file: PathBuf,
    /// The new node's data directory; must not exist or be empty.
    #[arg(long)]
    pub data_dir: PathBuf,
    /// The new node's name (give the same to `raftcfg serve --name`).
    #[arg(long)]
    pub name: String,
}

/// `raftcfg snapshot save`.
#[derive(Debug, Args)]
pub struct SnapshotSaveArgs {
    /// Where to write it; written to a temporary file first, then renamed.
    pub file: PathBuf,
    #[command(flatten)]
    pub endpoints: EndpointArgs,
}

/// Runs a client subcommand.
pub async fn run(command: ClientCommand) -> anyhow::Result<()> {
    match command {
        ClientCommand::Get(args) => get(args).await,
        ClientCommand::Put(args) => put(args).await,
        ClientCommand::Del(args) => del(args).await,
        ClientCommand::Ls(args) => ls(args).await,
        ClientCommand::Watch(args) => watch(args).await,
        ClientCommand::Bootstrap(args) => bootstrap(args).await,
        ClientCommand::Member(command) => member(command).await,
        ClientCommand::Leader(LeaderCommand::Transfer(args)) => leader_transfer(args).await,
        ClientCommand::Status(args) => super::status::run(args).await,
        ClientCommand::Auth(command) => super::auth_commands::auth(command).await,
        ClientCommand::User(command) => super::auth_commands::user(command).await,
        ClientCommand::Role(command) => super::auth_commands::role(command).await,
        ClientCommand::Snapshot(SnapshotCommand::Save(args)) => snapshot_save(args).await,
        ClientCommand::Snapshot(SnapshotCommand::Restore(args)) => {
            super::restore::restore_backup(&args.file, &args.data_dir, &args.name)
        }
    }
}

fn consistency(serializable: bool) -> Consistency {
    if serializable {
        Consistency::Serializable
    } else {
        Consistency::Linearizable
    }
}

async fn get(args: GetArgs) -> anyhow::Result<()> {
    let client = args.endpoints.client()?;
    let Some(value) = client
        .get(&args.key, consistency(args.serializable))
        .await?
    else {
        bail!("the key {} does not exist", args.key);
    };
    if args.output.json() {
        return print_json(&GetOutput {
            item: KeyValue {
                key: args.key,
                value_base64: BASE64.encode(&value.bytes),
                create_revision: value.create_revision,
                mod_revision: value.mod_revision,
                version: value.version,
            },
            revision: value.revision,
        });
    }
    let mut stdout = std::io::stdout().lock();
    if args.meta {
        writeln!(
            stdout,
            "key: {}\ncreate_revision: {}\nmod_revision: {}\nversion: {}\nrevision: {}\nvalue: {}",
            args.key,
            value.create_revision,
            value.mod_revision,
            value.version,
            value.revision,
            display_value(&value.bytes)
        )?;
    } else {
        stdout.write_all(&value.bytes)?;
        // Raw bytes for pipes; a newline so a terminal prompt starts afresh.
        if std::io::stdout().is_terminal() && !value.bytes.ends_with(b"\n") {
            stdout.write_all(b"\n")?;
        }
    }
    stdout.flush()?;
    Ok(())
}

/// `get -o json`: the key as `GET /v1/kv` lists it, and the store's
/// revision when it was read.
#[derive(Serialize)]
struct GetOutput {
    #[serde(flatten)]
    item: KeyValue,
    revision: u64,
}

async fn put(args: PutArgs) -> anyhow::Result<()> {
    let client = args.endpoints.client()?;
    let value = match args.value {
        Some(value) => Bytes::from(value),
        None => {
            let mut buffer = Vec::new();
            tokio::io::stdin()
                .read_to_end(&mut buffer)
                .await
                .context("cannot read the value from stdin")?;
            Bytes::from(buffer)
        }
    };
    let precondition = match (args.if_mod_revision, args.if_absent) {
        (Some(revision), _) => Precondition::ModRevision(revision),
        (None, true) => Precondition::Absent,
        (None, false) => Precondition::None,
    };
    let answer = client.put(&args.key, value, precondition).await?;
    println!("{}", answer.revision);
    Ok(())
}

async fn del(args: DelArgs) -> anyhow::Result<()> {
    let client = args.endpoints.client()?;
    let precondition = args
        .if_mod_revision
        .map_or(Precondition::None, Precondition::ModRevision);
    let answer = match client.delete(&args.key, precondition).await {
        Err(e) if e.is_not_found() => bail!("the key {} does not exist", args.key),
        other => other?,
    };
    println!("{}", answer.revision);
    Ok(())
}

async fn ls(args: LsArgs) -> anyhow::Result<()> {
    let client = args.endpoints.client()?;
    let consistency = consistency(args.serializable);
    let mut remaining = args.limit;
    let mut start_after: Option<String> = None;
    // For -o json: every page's items, under the first page's revision.
    let mut listed: Option<ListResponse> = None;
    let mut stdout = std::io::stdout().lock();
    // Each page is a read of its own; a long listing is not one snapshot.
    while remaining != Some(0) {
        let page = client
            .list(&args.prefix, remaining, start_after.as_deref(), consistency)
            .await?;
        if !args.output.json() {
            for item in &page.items {
                let value = item
                    .value()
                    .with_context(|| format!("the value of {} is not valid base64", item.key))?;
                writeln!(
                    stdout,
                    "{}\t{}\t{}",
                    item.key,
                    item.mod_revision,
                    display_value(&value)
                )?;
            }
        }
        if let Some(left) = &mut remaining {
            *left = left.saturating_sub(u32::try_from(page.items.len()).unwrap_or(u32::MAX));
        }
        let next = page.items.last().map(|last| last.key.clone());
        let more = page.more;
        match &mut listed {
            None => listed = Some(page),
            Some(listed) => {
                listed.items.extend(page.items);
                listed.more = more;
            }
        }
        if !more {
            break;
        }
        let Some(next) = next else {
            bail!("the server said more keys follow but sent none");
        };
        start_after = Some(next);
    }
    if args.output.json() {
        let listed = listed.unwrap_or(ListResponse {
            items: Vec::new(),
            more: false,
            revision: 0,
        });
        serde_json::to_writer_pretty(&mut stdout, &listed)?;
        writeln!(stdout)?;
    }
    stdout.flush()?;
    Ok(())
}

async fn watch(args: WatchArgs) -> anyhow::Result<()> {
    let client = args.endpoints.client()?;
    let mut events = client.watch(&args.prefix, args.from);
    loop {
        let event = tokio::select! {
            _ = tokio::signal::ctrl_c() => return Ok(()),
            event = events.next() => event,
        };
        let Some(event) = event else {
            return Ok(());
        };
        let event = event?;
        match event.value() {
            None => println!("{}\tdelete\t{}", event.revision, event.key),
            Some(value) => {
                let value = value
                    .with_context(|| format!("the value of {} is not valid base64", event.key))?;
                println!(
                    "{}\tput\t{}\t{}",
                    event.revision,
                    event.key,
                    display_value(&value)
                );
            }
        }
    }
}

async fn member(command: MemberCommand) -> anyhow::Result<()> {
    match command {
        MemberCommand::List(args) => {
            let list = args.endpoints.client()?.members_from_leader().await?;
            if args.output.json() {
                print_json(&list)?;
            } else {
                print!("{}", member_table(&list));
            }
        }
        MemberCommand::Add(args) => {
            let request = AddMemberRequest {
                node_id: NodeId(args.node_id),
                name: args.name,
                peer_url: args.peer_url,
                client_url: args.client_url,
            };
            let answer = args.endpoints.client()?.add_member(&request).await?;
            println!(
                "added member {} ({}) as a learner at log index {}",
                request.node_id, request.name, answer.index
            );
        }
        MemberCommand::Promote(args) => {
            let answer = args.endpoints.client()?.promote(NodeId(args.id)).await?;
            println!(
                "promoted member {} to voter at log index {}",
                args.id, answer.index
            );
        }
        MemberCommand::Remove(args) => {
            let answer = args
                .endpoints
                .client()?
                .remove_member(NodeId(args.id))
                .await?;
            println!("removed member {} at log index {}", args.id, answer.index);
        }
        MemberCommand::Update(args) => {
            let request = UpdateMemberRequest {
                peer_url: args.peer_url,
                client_url: args.client_url,
            };
            let answer = args
                .endpoints
                .client()?
                .update_member(NodeId(args.id), &request)
                .await?;
            println!(
                "member {} ({}) is now at peer URL {} and client URL {}",
                answer.node_id, answer.name, answer.peer_url, answer.client_url
            );
        }
        MemberCommand::ForceNewCluster(args) => force_new_cluster(args).await?,
    }
    Ok(())
}

async fn force_new_cluster(args: ForceNewClusterArgs) -> anyhow::Result<()> {
    if !args.confirm_quorum_lost {
        anyhow::bail!(
            "forcing a new cluster drops every other member; pass --confirm-quorum-lost once you are sure \
             they are lost for good (if they come back with their data, two clusters accept writes)"
        );
    }
    let answer = args.endpoints.client()?.force_new_cluster().await?;
    let removed: Vec<String> = answer.removed.iter().map(ToString::to_string).collect();
    println!(
        "node {} is now the only voter of cluster {}; removed members: {}",
        answer.node_id,
        answer.cluster_id,
        if removed.is_empty() {
            "none (it was alone)".to_owned()
        } else {
            removed.join(", ")
        }
    );
    println!(
        "kept every entry up to log index {} (term {}); it knew entries up to {} were committed",
        answer.last_index, answer.last_term, answer.commit
    );
    println!(
        "entries the lost members committed after index {} are gone; add them back as new nodes \
         (empty data directories) with `raftcfg member add`",
        answer.last_index
    );
    Ok(())
}

async fn bootstrap(args: BootstrapArgs) -> anyhow::Result<()> {
    let answer = args.endpoints.client()?.bootstrap().await?;
    println!(
        "bootstrapped cluster {} on node {} ({})",
        answer.cluster_id, answer.node_id, args.endpoints.endpoints[0]
    );
    Ok(())
}

async fn leader_transfer(args: LeaderTransferArgs) -> anyhow::Result<()> {
    let answer = args
        .endpoints
        .client()?
        .transfer_leader(args.to.map(NodeId))
        .await?;
    println!("member {} leads", answer.leader_id);
    Ok(())
}

async fn snapshot_save(args: SnapshotSaveArgs) -> anyhow::Result<()> {
    let client = args.endpoints.client()?;
    let temporary = temporary_path(&args.file)?;
    let result = save_to(&client, &temporary, &args.file).await;
    if result.is_err() {
        let _ = tokio::fs::remove_file(&temporary).await;
    }
    let bytes = result?;
    println!("wrote {bytes} bytes to {}", args.file.display());
    Ok(())
}

/// A sibling of `file` for the download, so the rename stays on one file
/// system.
fn temporary_path(file: &Path) -> anyhow::Result<PathBuf> {
    let name = file
        .file_name()
        .with_context(|| format!("{} is not a file name", file.display()))?;
    let mut temporary = name.to_os_string();
    temporary.push(format!(".tmp.{}", std::process::id()));
    Ok(file.with_file_name(temporary))
}

/// Downloads into `temporary`, syncs it and renames it to `file`.
async fn save_to(client: &Client, temporary: &Path, file: &Path) -> anyhow::Result<u64> {
    let mut out = tokio::fs::File::create(temporary)
        .await
        .with_context(|| format!("cannot create {}", temporary.display()))?;
    let bytes = match client.snapshot(&mut out).await {
        Err(ClientError::Write(e)) => {
            return Err(e).with_context(|| format!("cannot write {}", temporary.display()));
        }
        other => other?,
    };
    out.sync_all()
        .await
        .with_context(|| format!("cannot sync {}", temporary.display()))?;
    drop(out);
    tokio::fs::rename(temporary, file).await.with_context(|| {
        format!(
            "cannot rename {} to {}",
            temporary.display(),
            file.display()
        )
    })?;
    // Make the rename itself durable.
    if let Some(directory) = file.parent().filter(|d| !d.as_os_str().is_empty())
        && let Ok(directory) = std::fs::File::open(directory)
    {
        let _ = directory.sync_all();
    }
    Ok(bytes)
}

/// `member list` output.
fn member_table(list: &MemberList) -> String {
    let rows: Vec<Vec<String>> = list
        .members
        .iter()
        .map(|m| {
            vec![
                m.id.to_string(),
                m.name.clone(),
                role_name(m.role).to_owned(),
                if m.leader { "*" } else { "" }.to_owned(),
                or_dash(m.match_index),
                or_dash(m.healthy),
                m.peer_url.clone(),
                m.client_url.clone(),
            ]
        })
        .collect();
    table(
        &[
            "ID",
            "NAME",
            "ROLE",
            "LEADER",
            "MATCH",
            "HEALTHY",
            "PEER URL",
            "CLIENT URL",
        ],
        &rows,
    )
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, Parser};

    use super::*;

    #[derive(Debug, Parser)]
    struct TestCli {
        #[command(subcommand)]
        command: ClientCommand,
    }

    fn parse(args: &[&str]) -> ClientCommand {
        TestCli::try_parse_from(std::iter::once("raftcfg").chain(args.iter().copied()))
            .unwrap()
            .command
    }

    fn fails(args: &[&str]) -> bool {
        TestCli::try_parse_from(std::iter::once("raftcfg").chain(args.iter().copied())).is_err()
    }

    #[test]
    fn the_command_definition_is_consistent() {
        TestCli::command().debug_assert();
    }

    #[test]
    fn endpoints_default_to_the_local_node_and_split_on_commas() {
        let ClientCommand::Get(get) = parse(&["get", "app/x"]) else {
            panic!("not get");
        };
        if std::env::var_os("RAFTCFG_ENDPOINTS").is_none() {
            assert_eq!(get.endpoints.endpoints, [DEFAULT_ENDPOINT]);
        }
        let ClientCommand::Get(get) = parse(&[
            "get",
            "app/x",
            "--serializable",
            "--endpoints",
            "http://a:1,http://b:2",
        ]) else {
            panic!("not get");
        };
        assert!(get.serializable);
        assert_eq!(get.endpoints.endpoints, ["http://a:1", "http://b:2"]);
    }

    #[test]
    fn put_takes_one_precondition_at_most() {
        let ClientCommand::Put(put) = parse(&["put", "k", "v", "--if-mod-revision", "7"]) else {
            panic!("not put");
        };
        assert_eq!(
            (put.value.as_deref(), put.if_mod_revision),
            (Some("v"), Some(7))
        );
        let ClientCommand::Put(put) = parse(&["put", "k", "--if-absent"]) else {
            panic!("not put");
        };
        assert!(put.if_absent && put.value.is_none());
        assert!(fails(&[
            "put",
            "k",
            "v",
            "--if-absent",
            "--if-mod-revision",
            "3"
        ]));
    }

    #[test]
    fn nested_subcommands_take_endpoints_at_the_leaf() {
        let ClientCommand::Member(MemberCommand::Add(add)) = parse(&[
            "member",
            "add",
            "--node-id",
            "9",
            "--name",
            "n9",
            "--peer-url",
            "http://n9:7380",
            "--client-url",
            "http://n9:7379",
            "--endpoints",
            "http://n1:7379",
        ]) else {
            panic!("not member add");
        };
        assert_eq!((add.node_id, add.name.as_str()), (9, "n9"));
        assert_eq!(add.endpoints.endpoints, ["http://n1:7379"]);
        assert!(matches!(
            parse(&["member", "promote", "9"]),
            ClientCommand::Member(MemberCommand::Promote(MemberIdArgs { id: 9, .. }))
        ));
        assert!(matches!(
            parse(&["leader", "transfer", "--to", "3"]),
            ClientCommand::Leader(LeaderCommand::Transfer(LeaderTransferArgs {
                to: Some(3),
                ..
            }))
        ));
        assert!(matches!(
            parse(&["snapshot", "save", "backup.snap"]),
            ClientCommand::Snapshot(SnapshotCommand::Save(_))
        ));
        assert!(fails(&["member", "add", "--node-id", "9"]));
    }

    #[test]
    fn ls_and_watch_default_to_every_key() {
        let ClientCommand::Ls(ls) = parse(&["ls", "--limit", "5"]) else {
            panic!("not ls");
        };
        assert_eq!((ls.prefix.as_str(), ls.limit), ("", Some(5)));
        assert!(fails(&["ls", "--limit", "0"]), "a limit of 0 lists nothing");
        let ClientCommand::Watch(watch) = parse(&["watch", "app/", "--from", "12"]) else {
            panic!("not watch");
        };
        assert_eq!((watch.prefix.as_str(), watch.from), ("app/", Some(12)));
    }
}
