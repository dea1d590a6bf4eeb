//! Replica placement: which brokers hold each partition's replicas, the first of them
//! being the preferred leader. A pure function of the brokers (with their racks), the
//! partition count, the replication factor and a seed, so the controller can compute it
//! once, store the result, and every test can check its properties.
//!
//! The scheme is Kafka's (`AdminUtils.assignReplicasToBrokers`), which keeps two
//! properties clients and operators rely on:
//! - **Leaders spread evenly**: partition `p`'s first replica is broker
//!   `(start + p) mod n`, so preferred leaders differ by at most one per broker.
//! - **Followers spread too**: the other replicas follow the first at a distance that
//!   shifts every `n` partitions, so a broker's followers are not always the same
//!   brokers (a failed broker's load moves to many, not one).
//!
//! With racks, brokers are first ordered alternating between racks (`a1, b1, c1, a2,
//! ...`), so consecutive leaders land on different racks, and a replica is placed on a
//! rack that holds none of the partition's replicas yet whenever such a rack is left:
//! the replicas of a partition span `min(replication factor, racks)` racks. As in Kafka,
//! racks must be given for all brokers or for none.
//!
//! Explicit assignments (CreateTopics `assignments`, CreatePartitions) are checked by
//! [`check_explicit`], not changed.

use std::collections::{BTreeMap, BTreeSet};

/// A broker as placement sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Broker {
    pub id: i32,
    pub rack: Option<String>,
}

impl Broker {
    pub fn new(id: i32, rack: Option<&str>) -> Broker {
        Broker { id, rack: rack.map(str::to_string) }
    }
}

/// Why a placement cannot be made; the Kafka error each maps to is named.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlacementError {
    /// INVALID_REPLICATION_FACTOR.
    #[error("replication factor {factor} is larger than the {brokers} available brokers")]
    NotEnoughBrokers { factor: i16, brokers: usize },
    /// INVALID_REPLICATION_FACTOR.
    #[error("replication factor must be at least 1, not {0}")]
    BadReplicationFactor(i16),
    /// INVALID_PARTITIONS.
    #[error("number of partitions must be at least 1, not {0}")]
    BadPartitionCount(i32),
    /// INVALID_REPLICA_ASSIGNMENT (Kafka: "Not all brokers have rack information").
    #[error("not all brokers have rack information: give every broker a broker.rack, or none")]
    MixedRacks,
    /// INVALID_REPLICA_ASSIGNMENT.
    #[error("partition {partition}: {reason}")]
    BadAssignment { partition: i32, reason: String },
}

/// Replicas for partitions `first_partition ..first_partition + partitions`, each list
/// starting with its preferred leader. `seed` picks where the pattern starts (Kafka picks
/// at random; pass the same seed to get the same placement). `first_partition > 0`
/// continues a topic's pattern when partitions are added.
pub fn assign(
    brokers: &[Broker],
    partitions: i32,
    replication_factor: i16,
    first_partition: i32,
    seed: u64,
) -> Result<Vec<Vec<i32>>, PlacementError> {
    if partitions < 1 {
        return Err(PlacementError::BadPartitionCount(partitions));
    }
    if replication_factor < 1 {
        return Err(PlacementError::BadReplicationFactor(replication_factor));
    }
    let factor = replication_factor as usize;
    let ordered = ordered_brokers(brokers)?;
    let n = ordered.len();
    if factor > n {
        return Err(PlacementError::NotEnoughBrokers { factor: replication_factor, brokers: n });
    }
    let racks: BTreeSet<&str> = ordered.iter().filter_map(|b| b.rack.as_deref()).collect();
    let start = (seed % n as u64) as usize;
    let first_shift = ((seed >> 32) % n as u64) as usize;
    let mut out = Vec::with_capacity(partitions as usize);
    for p in first_partition.max(0)..first_partition.max(0).saturating_add(partitions) {
        let p = p as usize;
        // The follower distance moves on every `n` partitions (a pure function of `p`, so
        // added partitions continue the pattern).
        let shift = first_shift + p / n;
        let first = (p + start) % n;
        let mut chosen = vec![first];
        let mut used_racks: BTreeSet<&str> = ordered[first].rack.as_deref().into_iter().collect();
        for j in 0..factor - 1 {
            // Candidates in Kafka's follower order from this replica's slot; with racks,
            // the first on a rack not used yet (while one is left) and not chosen yet.
            let pick =
                (0..n).map(|k| follower_index(first, shift, j + k, n)).filter(|i| !chosen.contains(i)).find(|&i| {
                    match ordered[i].rack.as_deref() {
                        Some(rack) if used_racks.len() < racks.len() => !used_racks.contains(rack),
                        _ => true,
                    }
                });
            // `factor <= n` and `chosen` holds fewer than `factor`: a candidate is left.
            let Some(i) = pick else { break };
            used_racks.extend(ordered[i].rack.as_deref());
            chosen.push(i);
        }
        out.push(chosen.into_iter().map(|i| ordered[i].id).collect());
    }
    Ok(out)
}

/// Kafka's follower slot: the `j`-th replica after `first`, at a distance that `shift`
/// moves every `n` partitions; never `first` itself.
fn follower_index(first: usize, shift: usize, j: usize, n: usize) -> usize {
    if n == 1 {
        return first;
    }
    (first + 1 + (shift + j) % (n - 1)) % n
}

/// Brokers by id, or, with racks, alternating between racks (each rack's brokers by id,
/// racks by name), so that neighbours in the order sit on different racks.
fn ordered_brokers(brokers: &[Broker]) -> Result<Vec<Broker>, PlacementError> {
    let with_rack = brokers.iter().filter(|b| b.rack.is_some()).count();
    let mut sorted = brokers.to_vec();
    sorted.sort_by_key(|b| b.id);
    sorted.dedup_by_key(|b| b.id);
    if with_rack == 0 {
        return Ok(sorted);
    }
    if with_rack != brokers.len() {
        return Err(PlacementError::MixedRacks);
    }
    let mut by_rack: BTreeMap<&str, Vec<&Broker>> = BTreeMap::new();
    for b in &sorted {
        by_rack.entry(b.rack.as_deref().unwrap_or_default()).or_default().push(b);
    }
    let deepest = by_rack.values().map(Vec::len).max().unwrap_or(0);
    let mut ordered = Vec::with_capacity(sorted.len());
    for depth in 0..deepest {
        for rack in by_rack.values() {
            if let Some(b) = rack.get(depth) {
                ordered.push((*b).clone());
            }
        }
    }
    Ok(ordered)
}

/// Checks explicit replica lists (CreateTopics `assignments`, CreatePartitions): every
/// partition has the same number of replicas (at least one), no broker twice, and only
/// brokers that exist. Returns the replication factor.
pub fn check_explicit(
    brokers: &[Broker],
    assignment: &[Vec<i32>],
    first_partition: i32,
) -> Result<i16, PlacementError> {
    let known: BTreeSet<i32> = brokers.iter().map(|b| b.id).collect();
    let mut factor = None;
    for (i, replicas) in assignment.iter().enumerate() {
        let partition = first_partition.saturating_add(i as i32);
        let bad = |reason: String| PlacementError::BadAssignment { partition, reason };
        if replicas.is_empty() {
            return Err(bad("no replicas".into()));
        }
        let distinct: BTreeSet<i32> = replicas.iter().copied().collect();
        if distinct.len() != replicas.len() {
            return Err(bad(format!("duplicate brokers in {replicas:?}")));
        }
        if let Some(unknown) = replicas.iter().find(|id| !known.contains(id)) {
            return Err(bad(format!("broker {unknown} is not in the cluster")));
        }
        match factor {
            None => factor = Some(replicas.len()),
            Some(f) if f != replicas.len() => {
                return Err(bad(format!("{} replicas where earlier partitions have {f}", replicas.len())));
            }
            Some(_) => {}
        }
    }
    let factor = factor.ok_or(PlacementError::BadPartitionCount(0))?;
    i16::try_from(factor).map_err(|_too_many| PlacementError::BadAssignment {
        partition: first_partition,
        reason: format!("{factor} replicas"),
    })
}

#[cfg(test)]
#[path = "placement_tests.rs"]
mod tests;
