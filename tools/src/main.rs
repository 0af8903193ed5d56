//! The `raftcfg-tools` binary: see [`raftcfg_tools::cli`].

fn main() -> std::process::ExitCode {
    raftcfg_tools::cli::main()
}
