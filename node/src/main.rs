//! The `raftcfg` command-line tool: runs a node and talks to a cluster.

fn main() -> std::process::ExitCode {
    raftcfg_node::cli::main()
}
