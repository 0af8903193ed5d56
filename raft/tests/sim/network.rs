//! [`Network`]: the simulated wire. It decides when (and whether, and how
//! many times) a sent message arrives: a base delay, an occasional extra
//! delay that reorders, a rare very long one, drops and duplicates, and partitions, which are sets
//! of cut directed links that start and heal over time. A message crossing a
//! cut link at delivery time is lost.

use std::collections::{BTreeMap, BTreeSet};

use raftcfg_raft::{Message, NodeId};

use crate::sim::dice::Dice;
use crate::sim::profile::Profile;

/// A partition: the directed links it cuts and what it is, for the trace.
pub struct Partition {
    pub links: BTreeSet<(NodeId, NodeId)>,
    pub description: String,
}

pub struct Network {
    delay_units: (u64, u64),
    extra_delay_permille: u32,
    max_extra_delay_units: u64,
    long_delay_permille: u32,
    max_long_delay_units: u64,
    drop_permille: u32,
    duplicate_permille: u32,
    partitions: BTreeMap<u64, Partition>,
    next_partition: u64,
}

/// What became of a sent message.
pub enum Routed {
    Dropped,
    Deliver(Vec<u64>),
}

impl Network {
    pub fn new(profile: &Profile) -> Self {
        Self {
            delay_units: profile.delay_units,
            extra_delay_permille: profile.extra_delay_permille,
            max_extra_delay_units: profile.max_extra_delay_units,
            long_delay_permille: profile.long_delay_permille,
            max_long_delay_units: profile.max_long_delay_units,
            drop_permille: profile.drop_permille,
            duplicate_permille: profile.duplicate_permille,
            partitions: BTreeMap::new(),
            next_partition: 1,
        }
    }

    /// The delivery times of a message sent at `now` (none if dropped).
    pub fn route(&mut self, dice: &mut Dice, now: u64) -> Routed {
        if dice.chance(self.drop_permille) {
            return Routed::Dropped;
        }
        let copies = if dice.chance(self.duplicate_permille) {
            2
        } else {
            1
        };
        let times = (0..copies)
            .map(|_| {
                let mut delay = dice.range(self.delay_units.0, self.delay_units.1);
                if dice.chance(self.extra_delay_permille) {
                    delay += dice.range(1, self.max_extra_delay_units);
                }
                if dice.chance(self.long_delay_permille) {
                    delay += dice.range(1, self.max_long_delay_units);
                }
                now + delay
            })
            .collect();
        Routed::Deliver(times)
    }

    /// Whether a partition cuts the link.
    pub fn blocked(&self, message: &Message) -> bool {
        self.partitions
            .values()
            .any(|p| p.links.contains(&(message.from, message.to)))
    }

    pub fn active_partitions(&self) -> usize {
        self.partitions.len()
    }

    /// Starts a partition; returns its id.
    pub fn cut(&mut self, partition: Partition) -> u64 {
        let id = self.next_partition;
        self.next_partition += 1;
        self.partitions.insert(id, partition);
        id
    }

    /// Ends a partition; returns it if it was still active.
    pub fn heal(&mut self, id: u64) -> Option<Partition> {
        self.partitions.remove(&id)
    }

    /// The end of the fault phase: no partitions, no drops or duplicates,
    /// only small delays.
    pub fn calm(&mut self) {
        self.partitions.clear();
        self.drop_permille = 0;
        self.duplicate_permille = 0;
        self.extra_delay_permille = 0;
        self.long_delay_permille = 0;
    }
}

/// The links that separate `group` from `others`, both ways.
pub fn split_links(group: &[NodeId], others: &[NodeId]) -> BTreeSet<(NodeId, NodeId)> {
    let mut links = BTreeSet::new();
    for a in group {
        for b in others {
            links.insert((*a, *b));
            links.insert((*b, *a));
        }
    }
    links
}
