//! `raftcfg snapshot restore`: a new one-member cluster from a backup.

use std::path::Path;

use anyhow::Context as _;
use raftcfg_raft::Config;

use crate::kv::RestoreError;
use crate::replica::{Replica, ReplicaError};

/// Creates, in the new data directory `data_dir`, a node named `name`
/// that alone forms a new cluster whose state is the backup in `file`.
pub fn restore_backup(file: &Path, data_dir: &Path, name: &str) -> anyhow::Result<()> {
    let backup_bytes = std::fs::metadata(file)
        .with_context(|| format!("cannot read the backup {}", file.display()))?
        .len();
    if data_dir.exists()
        && std::fs::read_dir(data_dir)
            .with_context(|| format!("cannot read {}", data_dir.display()))?
            .next()
            .is_some()
    {
        anyhow::bail!(
            "{} is not empty; restore into a new directory so no existing data is overwritten",
            data_dir.display()
        );
    }
    crate::storage::create_private_dir(data_dir)
        .with_context(|| format!("cannot create {}", data_dir.display()))?;
    let result = (|| {
        let fresh_id = crate::ids::fresh_node_id();
        let mut replica = Replica::open(data_dir, name, fresh_id, Config::new(fresh_id))?;
        let cluster_id = crate::ids::fresh_cluster_id();
        replica.restore_backup(file, cluster_id)?;
        anyhow::Ok((
            replica.identity().node_id,
            cluster_id,
            replica.kv().revision(),
        ))
    })();
    let (node_id, cluster_id, revision) = match result {
        Ok(done) => done,
        Err(e) => {
            // Leave no half-made directory behind.
            let _ = std::fs::remove_dir_all(data_dir);
            if let Some(ReplicaError::Restore(
                why @ (RestoreError::Truncated | RestoreError::Checksum | RestoreError::Invalid(_)),
            )) = e.downcast_ref::<ReplicaError>()
            {
                anyhow::bail!(
                    "{} is not a raftcfg backup (one `raftcfg snapshot save` wrote): {why}",
                    file.display()
                );
            }
            return Err(e.context(format!("cannot restore {}", file.display())));
        }
    };
    println!(
        "restored {backup_bytes} bytes (revision {revision}) into {}: node {node_id}, new cluster {cluster_id}",
        data_dir.display()
    );
    println!(
        "start it with: raftcfg serve --name {name} --data-dir {}",
        data_dir.display()
    );
    Ok(())
}
