//! The PodDisruptionBudget that keeps voluntary disruptions (node drains,
//! cluster autoscaler evictions) from breaking quorum.

use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::ResourceExt as _;

use super::{object_meta, selector_labels};
use crate::crd::RaftCluster;

/// The PodDisruptionBudget `<name>` over the cluster's pods, with
/// `maxUnavailable` = [`max_unavailable`]`(members, spec.replicas)`.
///
/// `members` is the number of voters the leader reports (learners add
/// nothing a quorum needs). A change in flight adds or removes at most one
/// voter, and the smaller of `members` and `spec.replicas` is used.
///
/// `unhealthyPodEvictionPolicy` is left unset (`IfHealthyBudget`) on
/// purpose: `AlwaysAllow` would let a drain evict any pod that is not
/// ready, and a voter is not ready whenever it does not know a leader, e.g.
/// during an election, when evicting it may be what keeps quorum from
/// forming again.
pub fn pod_disruption_budget(rc: &RaftCluster, members: u32) -> PodDisruptionBudget {
    let spec_replicas = u32::try_from(rc.spec.replicas).unwrap_or(0);
    let max_unavailable = max_unavailable(members, spec_replicas);
    PodDisruptionBudget {
        metadata: object_meta(rc, rc.name_any()),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(
                i32::try_from(max_unavailable).unwrap_or(0),
            )),
            selector: Some(LabelSelector {
                match_labels: Some(selector_labels(rc)),
                ..LabelSelector::default()
            }),
            min_available: None,
            unhealthy_pod_eviction_policy: None,
        }),
        status: None,
    }
}

/// How many pods may be unavailable at once without losing quorum:
/// `(voters - 1) / 2`, the failures a Raft group of `voters` tolerates.
///
/// The eviction API counts pods that are already unavailable against the
/// budget, so with one pod of a 3-member cluster down no other may be
/// evicted. With 1 or 2 voters nothing may be evicted: drains block until
/// the cluster is scaled up, which is the safe choice, as losing either
/// voter of two stops all writes.
///
/// `voters` is the smaller of the members and `spec.replicas`: while the
/// cluster grows, the new pods are learners or not yet promoted and add
/// nothing to the failures tolerated (3 voters tolerate one failure
/// however many pods run); while it shrinks, the configuration being
/// entered is the smaller one. Evictions do not choose between voters and
/// learners, so the budget must hold even if every eviction hits a voter.
fn max_unavailable(members: u32, spec_replicas: u32) -> u32 {
    members.min(spec_replicas).saturating_sub(1) / 2
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resources::test_cluster;

    fn budget(members: u32, spec_replicas: i32) -> IntOrString {
        pod_disruption_budget(&test_cluster(spec_replicas), members)
            .spec
            .and_then(|s| s.max_unavailable)
            .expect("maxUnavailable")
    }

    #[test]
    fn the_budget_never_allows_more_than_a_minority_to_be_disrupted() {
        let table = [(1, 0), (2, 0), (3, 1), (4, 1), (5, 2), (6, 2), (7, 3)];
        for (members, allowed) in table {
            let spec_replicas = i32::try_from(members).expect("small");
            assert_eq!(
                budget(members, spec_replicas),
                IntOrString::Int(allowed),
                "{members} members"
            );
            // A majority of the voters stays up even if every disruption
            // hits a voter.
            let allowed = u32::try_from(allowed).expect("non-negative");
            assert!(members - allowed > members / 2, "{members} members");
        }
    }

    #[test]
    fn a_pending_scale_out_does_not_widen_the_budget() {
        assert_eq!(budget(3, 5), IntOrString::Int(1));
        assert_eq!(budget(1, 3), IntOrString::Int(0));
    }

    #[test]
    fn a_pending_scale_in_narrows_the_budget_to_the_smaller_cluster() {
        assert_eq!(budget(5, 3), IntOrString::Int(1));
        assert_eq!(budget(3, 1), IntOrString::Int(0));
    }

    #[test]
    fn a_cluster_without_members_allows_no_disruption() {
        assert_eq!(budget(0, 3), IntOrString::Int(0));
    }

    #[test]
    fn the_budget_selects_the_clusters_pods_and_keeps_the_default_unhealthy_policy() {
        let rc = test_cluster(3);
        let pdb = pod_disruption_budget(&rc, 3);
        assert_eq!(pdb.metadata.name.as_deref(), Some("config"));
        let spec = pdb.spec.expect("spec");
        assert_eq!(
            spec.selector.and_then(|s| s.match_labels),
            Some(selector_labels(&rc))
        );
        assert_eq!(spec.min_available, None);
        assert_eq!(spec.unhealthy_pod_eviction_policy, None);
    }
}
