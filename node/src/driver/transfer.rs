//! Leadership transfers asked of this leader: choosing the target, and
//! answering the caller once leadership moved there, or after a timeout.

use raftcfg_raft::{NodeId, Status};
use tokio::sync::oneshot;

use super::DriverError;

/// Where an asked-for transfer goes: `to`, or else the voter (not this
/// node) whose log matches the leader's furthest, the lowest id on a tie.
pub(super) fn choose_target(status: &Status, to: Option<NodeId>) -> Option<NodeId> {
    to.or_else(|| {
        status
            .progress
            .iter()
            .filter(|(id, _)| **id != status.id && status.membership.is_voter(**id))
            .max_by_key(|(id, progress)| (progress.matched, std::cmp::Reverse(**id)))
            .map(|(id, _)| *id)
    })
}

/// The transfer in progress, if any.
#[derive(Debug, Default)]
pub(super) struct Transfers {
    pending: Option<Pending>,
}

#[derive(Debug)]
struct Pending {
    target: NodeId,
    ticks_left: u32,
    reply: oneshot::Sender<Result<NodeId, DriverError>>,
}

impl Transfers {
    /// Whether a transfer is in progress.
    pub(super) fn busy(&self) -> bool {
        self.pending.is_some()
    }

    /// Waits for leadership to reach `target` for at most `ticks` ticks.
    pub(super) fn start(
        &mut self,
        target: NodeId,
        ticks: u32,
        reply: oneshot::Sender<Result<NodeId, DriverError>>,
    ) {
        self.pending = Some(Pending {
            target,
            ticks_left: ticks,
            reply,
        });
    }

    /// One tick passed: a transfer out of time is answered as timed out.
    pub(super) fn tick(&mut self) {
        if let Some(pending) = &mut self.pending {
            pending.ticks_left = pending.ticks_left.saturating_sub(1);
            if pending.ticks_left == 0
                && let Some(pending) = self.pending.take()
            {
                let _ = pending
                    .reply
                    .send(Err(DriverError::TransferTimedOut(pending.target)));
            }
        }
    }

    /// The cluster's leader is now `leader`: a transfer to it is done.
    pub(super) fn leader_is(&mut self, leader: Option<NodeId>) {
        if self.pending.as_ref().map(|p| p.target) == leader
            && let Some(pending) = self.pending.take()
        {
            let _ = pending.reply.send(Ok(pending.target));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_transfer_is_answered_when_the_target_leads() {
        let mut transfers = Transfers::default();
        let (reply, mut answer) = oneshot::channel();
        transfers.start(NodeId(3), 5, reply);
        assert!(transfers.busy());
        transfers.leader_is(Some(NodeId(1)));
        transfers.tick();
        assert!(answer.try_recv().is_err(), "not answered yet");
        transfers.leader_is(Some(NodeId(3)));
        assert_eq!(answer.try_recv(), Ok(Ok(NodeId(3))));
        assert!(!transfers.busy());
    }

    #[test]
    fn a_transfer_that_does_not_happen_in_time_is_answered_as_timed_out() {
        let mut transfers = Transfers::default();
        let (reply, mut answer) = oneshot::channel();
        transfers.start(NodeId(3), 2, reply);
        transfers.tick();
        assert!(answer.try_recv().is_err());
        transfers.tick();
        assert_eq!(
            answer.try_recv(),
            Ok(Err(DriverError::TransferTimedOut(NodeId(3))))
        );
        assert!(!transfers.busy());
    }
}
