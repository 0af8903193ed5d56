//! The `raftcfg` command-line tool: runs a node and talks to a cluster.

fn main() -> std::process::ExitCode {
    eprintln!("raftcfg: not yet implemented; see README");
    std::process::ExitCode::from(2)
}
