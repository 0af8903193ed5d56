//! Where each member is reached, as far as this node knows: the replicated
//! member directory first, then the learners this leader is adding (their
//! `AddLearner` entry is not applied yet), then peer URLs that senders
//! told us. This node's own address is always its own.
//!
//! Every round ships messages and publishes a view with the addresses, so
//! the book keeps the last map it made ([`AddressBook::current`]) and
//! makes a new one only when the directory or the book has changed.

use std::collections::BTreeMap;
use std::sync::Arc;

use raftcfg_raft::NodeId;

use crate::kv::MemberAddress;

/// Member addresses by id.
type Addresses = BTreeMap<NodeId, MemberAddress>;

/// The addresses a node knows beyond the replicated directory.
#[derive(Debug)]
pub(super) struct AddressBook {
    own_id: NodeId,
    own: MemberAddress,
    /// Learners this leader is adding, until the directory holds them.
    adding: Addresses,
    /// Peer URLs senders told us, for members not yet in the directory.
    learned_urls: BTreeMap<NodeId, String>,
    /// The last map [`AddressBook::current`] made and the directory it
    /// was made from; `None` once the book has changed since.
    made: Option<(Addresses, Arc<Addresses>)>,
}

impl AddressBook {
    /// A book for node `own_id`, reached at `own`.
    pub(super) fn new(own_id: NodeId, own: MemberAddress) -> Self {
        Self {
            own_id,
            own,
            adding: BTreeMap::new(),
            learned_urls: BTreeMap::new(),
            made: None,
        }
    }

    /// Remembers the address of a learner being added.
    pub(super) fn adding(&mut self, id: NodeId, address: MemberAddress) {
        self.adding.insert(id, address);
        self.made = None;
    }

    /// Remembers the peer URL a message from `id` came with.
    pub(super) fn learned(&mut self, id: NodeId, peer_url: &str) {
        if self
            .learned_urls
            .get(&id)
            .is_none_or(|known| known != peer_url)
        {
            self.learned_urls.insert(id, peer_url.to_owned());
            self.made = None;
        }
    }

    /// Forgets the learners `directory` now holds.
    pub(super) fn forget_recorded(&mut self, directory: &Addresses) {
        let before = self.adding.len();
        self.adding.retain(|id, _| !directory.contains_key(id));
        if self.adding.len() != before {
            self.made = None;
        }
    }

    /// [`AddressBook::addresses`], shared: the map made last time if
    /// neither `directory` nor the book has changed since.
    pub(super) fn current(&mut self, directory: &Addresses) -> Arc<Addresses> {
        if let Some((from, made)) = &self.made
            && from == directory
        {
            return made.clone();
        }
        let made = Arc::new(self.addresses(directory));
        self.made = Some((directory.clone(), made.clone()));
        made
    }

    /// Every member's address, `directory` first.
    pub(super) fn addresses(&self, directory: &Addresses) -> Addresses {
        let mut addresses = directory.clone();
        for (id, address) in &self.adding {
            addresses.entry(*id).or_insert_with(|| address.clone());
        }
        for (id, url) in &self.learned_urls {
            addresses.entry(*id).or_insert_with(|| MemberAddress {
                name: String::new(),
                peer_url: url.clone(),
                client_url: String::new(),
            });
        }
        addresses.insert(self.own_id, self.own.clone());
        addresses
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn address(name: &str) -> MemberAddress {
        MemberAddress {
            name: name.into(),
            peer_url: format!("http://{name}:7380"),
            client_url: format!("http://{name}:7379"),
        }
    }

    #[test]
    fn the_directory_wins_over_what_is_being_added_which_wins_over_learned_urls() {
        let mut book = AddressBook::new(NodeId(1), address("me"));
        book.adding(NodeId(2), address("added"));
        book.adding(NodeId(3), address("added-too"));
        book.learned(NodeId(3), "http://sender-3:7380");
        book.learned(NodeId(4), "http://sender-4:7380");
        let directory = BTreeMap::from([
            (NodeId(1), address("stale-me")),
            (NodeId(2), address("recorded")),
        ]);
        let addresses = book.addresses(&directory);
        assert_eq!(addresses[&NodeId(1)], address("me"), "own address is own");
        assert_eq!(addresses[&NodeId(2)], address("recorded"));
        assert_eq!(addresses[&NodeId(3)], address("added-too"));
        assert_eq!(addresses[&NodeId(4)].peer_url, "http://sender-4:7380");
        assert_eq!(addresses.len(), 4);
    }

    #[test]
    fn the_shared_map_is_made_again_only_after_the_directory_or_the_book_changed() {
        let mut book = AddressBook::new(NodeId(1), address("me"));
        let mut directory = BTreeMap::from([(NodeId(2), address("two"))]);
        let first = book.current(&directory);
        assert!(Arc::ptr_eq(&first, &book.current(&directory)), "unchanged");

        directory.insert(NodeId(2), address("two-moved"));
        let moved = book.current(&directory);
        assert_eq!(moved[&NodeId(2)], address("two-moved"));

        book.learned(NodeId(3), "http://sender-3:7380");
        let learned = book.current(&directory);
        assert_eq!(learned[&NodeId(3)].peer_url, "http://sender-3:7380");
        book.learned(NodeId(3), "http://sender-3:7380");
        assert!(
            Arc::ptr_eq(&learned, &book.current(&directory)),
            "told again"
        );

        book.adding(NodeId(4), address("four"));
        let adding = book.current(&directory);
        assert_eq!(adding[&NodeId(4)], address("four"));
        directory.insert(NodeId(4), address("four-recorded"));
        book.forget_recorded(&directory);
        assert_eq!(
            book.current(&directory)[&NodeId(4)],
            address("four-recorded")
        );
        assert_eq!(
            book.current(&directory),
            Arc::new(book.addresses(&directory))
        );
    }

    #[test]
    fn a_learner_is_forgotten_once_the_directory_holds_it() {
        let mut book = AddressBook::new(NodeId(1), address("me"));
        book.adding(NodeId(2), address("added"));
        let directory = BTreeMap::from([(NodeId(2), address("recorded"))]);
        book.forget_recorded(&directory);
        let addresses = book.addresses(&BTreeMap::new());
        assert!(!addresses.contains_key(&NodeId(2)), "{addresses:?}");
    }
}
