//! Healing the gossip view after a network partition (Serf's reconnect).
//!
//! memberlist gossips to a member it declared dead for 30 s only (its
//! `gossip_to_the_dead_time`) and probes and syncs with live members only. After a longer
//! partition both sides hold the other dead and never talk again: each broker's Metadata
//! would list its own side forever, and a leader on the minority side would never hear of
//! the new one. So every [`RECONNECT_INTERVAL`], each broker joins (a TCP push/pull of the
//! whole state) the members it saw that are not online now, and the seeds that are not
//! members, for [`FORGET_AFTER`] after it last saw them online. The first exchange tells
//! each side that the other holds it dead; each refutes, and the next exchange settles it.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Between rounds of joining the members not online.
pub const RECONNECT_INTERVAL: Duration = Duration::from_secs(10);
/// A member not seen online for this long is no longer joined (Serf's `reconnect_timeout`).
pub const FORGET_AFTER: Duration = Duration::from_secs(24 * 3600);

/// The members seen so far: node id → (gossip address, when last seen online).
#[derive(Debug, Default)]
pub struct Reconnect {
    known: HashMap<String, (SocketAddr, Instant)>,
}

impl Reconnect {
    /// One round: `members` are (id, address) of every member memberlist still holds,
    /// `online` the ids of those alive or suspected, `seeds` the resolved seed addresses.
    /// Returns the addresses to join now: members seen before that are not online, and
    /// seeds no online member is at; never `own`.
    pub fn round(
        &mut self,
        members: &[(String, SocketAddr)],
        online: &[String],
        seeds: &[SocketAddr],
        own: SocketAddr,
        now: Instant,
    ) -> Vec<SocketAddr> {
        for (id, addr) in members {
            let seen = if online.contains(id) { now } else { self.known.get(id).map_or(now, |(_, seen)| *seen) };
            self.known.insert(id.clone(), (*addr, seen));
        }
        self.known.retain(|_, (_, seen)| now.saturating_duration_since(*seen) < FORGET_AFTER);
        let online_addrs: BTreeSet<SocketAddr> =
            self.known.iter().filter(|(id, _)| online.contains(id)).map(|(_, (addr, _))| *addr).collect();
        let mut targets: BTreeSet<SocketAddr> =
            self.known.iter().filter(|(id, _)| !online.contains(id)).map(|(_, (addr, _))| *addr).collect();
        targets.extend(seeds.iter().filter(|s| !online_addrs.contains(s)));
        targets.remove(&own);
        targets.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn ids(ids: &[&str]) -> Vec<String> {
        ids.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn members_not_online_and_seeds_not_members_are_joined() {
        let mut r = Reconnect::default();
        let t0 = Instant::now();
        let members = [("1".to_string(), addr(1)), ("2".to_string(), addr(2)), ("3".to_string(), addr(3))];
        // Everyone online: nothing to do, and our own seed entry is skipped.
        let none = r.round(&members, &ids(&["1", "2", "3"]), &[addr(1), addr(2)], addr(1), t0);
        assert!(none.is_empty(), "{none:?}");
        // 3 is dead: joined again; a seed nobody is at is tried too.
        let got = r.round(&members, &ids(&["1", "2"]), &[addr(9)], addr(1), t0 + Duration::from_secs(10));
        assert_eq!(got, vec![addr(3), addr(9)]);
    }

    #[test]
    fn a_member_memberlist_forgot_is_joined_until_forget_after() {
        let mut r = Reconnect::default();
        let t0 = Instant::now();
        let both = [("1".to_string(), addr(1)), ("2".to_string(), addr(2))];
        r.round(&both, &ids(&["1", "2"]), &[], addr(1), t0);
        // memberlist reaped dead member 2: still joined, from memory.
        let me = [("1".to_string(), addr(1))];
        let later = t0 + Duration::from_secs(3600);
        assert_eq!(r.round(&me, &ids(&["1"]), &[], addr(1), later), vec![addr(2)]);
        // Past FORGET_AFTER since it was last online: given up.
        let much_later = t0 + FORGET_AFTER + Duration::from_secs(1);
        assert!(r.round(&me, &ids(&["1"]), &[], addr(1), much_later).is_empty());
    }

    #[test]
    fn a_member_back_online_is_not_joined() {
        let mut r = Reconnect::default();
        let t0 = Instant::now();
        let both = [("1".to_string(), addr(1)), ("2".to_string(), addr(2))];
        assert_eq!(r.round(&both, &ids(&["1"]), &[], addr(1), t0), vec![addr(2)]);
        assert!(r.round(&both, &ids(&["1", "2"]), &[addr(2)], addr(1), t0).is_empty());
    }
}
