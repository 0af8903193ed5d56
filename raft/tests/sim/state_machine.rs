//! The simulated application's state machine: a key-value map built from
//! applied `key=value` commands, with the applied index, a running hash of
//! every applied entry (`chain`) and an order-independent hash of the map's
//! contents (`digest`). It is durable at apply time, like the node's
//! RocksDB state machine that writes the applied index in the same batch.

use std::collections::BTreeMap;

use bytes::Bytes;
use raftcfg_raft::{Entry, EntryPayload, LogIndex, MembershipChange, Snapshot, Term};

/// 64-bit FNV-1a, enough to tell entries and states apart in a test.
#[derive(Clone, Copy)]
pub struct Fnv(u64);

impl Fnv {
    pub fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }

    pub fn bytes(mut self, data: &[u8]) -> Self {
        for byte in data {
            self.0 ^= u64::from(*byte);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
        self
    }

    pub fn u64(self, value: u64) -> Self {
        self.bytes(&value.to_le_bytes())
    }

    pub fn finish(self) -> u64 {
        self.0
    }
}

/// A fingerprint of what an entry carries (not its index or term).
pub fn fingerprint(payload: &EntryPayload) -> u64 {
    match payload {
        EntryPayload::Noop => Fnv::new().u64(0).finish(),
        EntryPayload::Command(data) => Fnv::new().u64(1).bytes(data).finish(),
        EntryPayload::Config(change) => {
            let (kind, id) = match change.change {
                MembershipChange::AddLearner(id) => (0, id),
                MembershipChange::PromoteLearner(id) => (1, id),
                MembershipChange::Remove(id) => (2, id),
            };
            let mut h = Fnv::new().u64(2).u64(kind).u64(id.get());
            h = h.u64(change.config.voters.len() as u64);
            for v in &change.config.voters {
                h = h.u64(v.get());
            }
            h = h.u64(change.config.learners.len() as u64);
            for l in &change.config.learners {
                h = h.u64(l.get());
            }
            h.bytes(&change.context).finish()
        }
    }
}

/// The running hash after applying an entry on top of `chain`.
pub fn chain_after(chain: u64, index: LogIndex, term: Term, fingerprint: u64) -> u64 {
    Fnv::new()
        .u64(chain)
        .u64(index.get())
        .u64(term.get())
        .u64(fingerprint)
        .finish()
}

fn pair_hash(key: &str, value: &str) -> u64 {
    Fnv::new()
        .bytes(key.as_bytes())
        .bytes(b"=")
        .bytes(value.as_bytes())
        .finish()
}

/// The command that sets `key` to `value`.
pub fn command(key: &str, value: &str) -> Bytes {
    Bytes::from(format!("{key}={value}"))
}

/// The key and value of a command, if it is one.
pub fn parse_command(data: &[u8]) -> Option<(&str, &str)> {
    std::str::from_utf8(data).ok()?.split_once('=')
}

/// The application state of one node.
#[derive(Clone, Debug, Default)]
pub struct StateMachine {
    pub kv: BTreeMap<String, String>,
    pub applied: LogIndex,
    pub chain: u64,
    pub digest: u64,
}

impl StateMachine {
    /// Applies the next entry. Refuses an entry that is not the one after
    /// `applied` (the core must hand out committed entries in order).
    pub fn apply(&mut self, entry: &Entry) -> Result<u64, String> {
        if entry.index != self.applied.next() {
            return Err(format!(
                "asked to apply entry {} but applied is {}",
                entry.index, self.applied
            ));
        }
        let fp = fingerprint(&entry.payload);
        if let EntryPayload::Command(data) = &entry.payload
            && let Some((key, value)) = parse_command(data)
        {
            if let Some(old) = self.kv.insert(key.to_owned(), value.to_owned()) {
                self.digest ^= pair_hash(key, &old);
            }
            self.digest ^= pair_hash(key, value);
        }
        self.applied = entry.index;
        self.chain = chain_after(self.chain, entry.index, entry.term, fp);
        Ok(fp)
    }

    /// The snapshot data: a header line `applied chain digest`, then one
    /// `key=value` line per key.
    pub fn encode(&self) -> Bytes {
        let mut out = format!("{} {} {}\n", self.applied, self.chain, self.digest);
        for (key, value) in &self.kv {
            out.push_str(key);
            out.push('=');
            out.push_str(value);
            out.push('\n');
        }
        Bytes::from(out)
    }

    /// Replaces the state with a snapshot's. Fails if the data is not what
    /// `encode` wrote for the snapshot's index.
    pub fn install(&mut self, snapshot: &Snapshot) -> Result<(), String> {
        let text = std::str::from_utf8(&snapshot.data).map_err(|e| format!("not UTF-8: {e}"))?;
        let mut lines = text.lines();
        let header = lines.next().ok_or("no header line")?;
        let fields: Vec<u64> = header
            .split(' ')
            .map(|f| f.parse::<u64>())
            .collect::<Result<_, _>>()
            .map_err(|e| format!("bad header {header:?}: {e}"))?;
        let [applied, chain, digest] = fields[..] else {
            return Err(format!("bad header {header:?}"));
        };
        if applied != snapshot.metadata.index.get() {
            return Err(format!(
                "data is the state at {applied}, metadata says {}",
                snapshot.metadata.index
            ));
        }
        let mut kv = BTreeMap::new();
        let mut computed = 0;
        for line in lines {
            let (key, value) = line
                .split_once('=')
                .ok_or_else(|| format!("bad line {line:?}"))?;
            computed ^= pair_hash(key, value);
            kv.insert(key.to_owned(), value.to_owned());
        }
        if computed != digest {
            return Err(format!(
                "contents hash to {computed:#x}, header says {digest:#x}"
            ));
        }
        *self = Self {
            kv,
            applied: snapshot.metadata.index,
            chain,
            digest,
        };
        Ok(())
    }
}
