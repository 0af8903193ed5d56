//! Prints the `RaftCluster` CustomResourceDefinition as YAML; the committed
//! `crds/raftcluster.yaml` is this output (`make crds` rewrites it, and
//! `make test` fails when the two differ).

fn main() -> anyhow::Result<()> {
    print!("{}", raftcfg_operator::crd::crd_yaml()?);
    Ok(())
}
