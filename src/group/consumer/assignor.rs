//! Server-side assignors: `uniform` (Kafka's default: balanced and sticky) and `range`
//! (contiguous ranges per topic, co-partitioned when every member subscribes to the same
//! topics of equal size).
//!
//! Both are pure functions of the members' subscriptions (already resolved to topic ids),
//! the partition counts and, for `uniform`, the previous target assignment.

use std::collections::{BTreeMap, BTreeSet};

use uuid::Uuid;

use super::member::Assignment;

pub const UNIFORM: &str = "uniform";
pub const RANGE: &str = "range";
/// The assignors a member may ask for with `server_assignor`.
pub const SUPPORTED: [&str; 2] = [UNIFORM, RANGE];

/// What an assignor knows about one member.
#[derive(Debug, Clone)]
pub struct MemberSpec<'a> {
    pub instance_id: Option<&'a str>,
    /// Subscribed topics that exist, by id.
    pub topics: BTreeSet<Uuid>,
    /// The member's previous target assignment (stickiness).
    pub previous: &'a Assignment,
}

/// Computes a target assignment for every member (members without partitions get an empty
/// one). `partitions` holds the partition count of every topic some member subscribes to.
pub fn assign(
    assignor: &str,
    members: &BTreeMap<&str, MemberSpec<'_>>,
    partitions: &BTreeMap<Uuid, i32>,
) -> BTreeMap<String, Assignment> {
    match assignor {
        RANGE => range(members, partitions),
        _ => uniform(members, partitions),
    }
}

/// Balanced and sticky: every partition goes to a subscriber; a partition stays with its
/// previous owner unless that owner has at least two more partitions than another
/// subscriber of the topic; new partitions go to the least loaded subscriber.
fn uniform(members: &BTreeMap<&str, MemberSpec<'_>>, partitions: &BTreeMap<Uuid, i32>) -> BTreeMap<String, Assignment> {
    let ids: Vec<&str> = members.keys().copied().collect();
    let index: BTreeMap<&str, usize> = ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    let mut load = vec![0usize; ids.len()];
    // Subscribers of each topic (member indexes).
    let mut subscribers: BTreeMap<Uuid, Vec<usize>> = BTreeMap::new();
    for (i, id) in ids.iter().enumerate() {
        for topic in members.get(id).map(|m| &m.topics).into_iter().flatten() {
            if partitions.contains_key(topic) {
                subscribers.entry(*topic).or_default().push(i);
            }
        }
    }
    // Owner of each partition; previous owners that still subscribe keep theirs.
    let mut owner: BTreeMap<(Uuid, i32), usize> = BTreeMap::new();
    for (id, spec) in members {
        let Some(&i) = index.get(id) else { continue };
        for (topic, previous) in spec.previous {
            let count = partitions.get(topic).copied().unwrap_or(0);
            if !spec.topics.contains(topic) {
                continue;
            }
            for &p in previous.iter().filter(|&&p| p < count) {
                if let std::collections::btree_map::Entry::Vacant(e) = owner.entry((*topic, p)) {
                    e.insert(i);
                    load[i] += 1;
                }
            }
        }
    }
    // Unowned partitions: topics with the fewest subscribers first, so the constrained
    // ones are placed while everyone still has room.
    let mut topics: Vec<(&Uuid, &Vec<usize>)> = subscribers.iter().collect();
    topics.sort_by_key(|(topic, subs)| (subs.len(), **topic));
    for (topic, subs) in &topics {
        let count = partitions.get(topic).copied().unwrap_or(0);
        for p in 0..count {
            if owner.contains_key(&(**topic, p)) {
                continue;
            }
            if let Some(&least) = subs.iter().min_by_key(|&&m| (load[m], m)) {
                owner.insert((**topic, p), least);
                load[least] += 1;
            }
        }
    }
    // Balance: move partitions from an owner to a subscriber with two fewer. Every move
    // lowers the sum of squared loads, so this ends.
    loop {
        let mut moved = false;
        for ((topic, _), current) in owner.iter_mut() {
            let Some(subs) = subscribers.get(topic) else { continue };
            if let Some(&least) = subs.iter().min_by_key(|&&m| (load[m], m))
                && load[least] + 1 < load[*current]
            {
                load[*current] -= 1;
                load[least] += 1;
                *current = least;
                moved = true;
            }
        }
        if !moved {
            break;
        }
    }
    let mut result: BTreeMap<String, Assignment> = ids.iter().map(|id| (id.to_string(), Assignment::new())).collect();
    for ((topic, p), i) in owner {
        if let Some(assignment) = ids.get(i).and_then(|id| result.get_mut(*id)) {
            assignment.entry(topic).or_default().insert(p);
        }
    }
    result
}

/// Kafka's server-side range assignor: per topic, subscribers sorted (static members by
/// instance id first, then dynamic ones by member id) take contiguous ranges, the first
/// `count % subscribers` of them one partition more.
fn range(members: &BTreeMap<&str, MemberSpec<'_>>, partitions: &BTreeMap<Uuid, i32>) -> BTreeMap<String, Assignment> {
    let mut sorted: Vec<(&str, &MemberSpec<'_>)> = members.iter().map(|(id, spec)| (*id, spec)).collect();
    sorted.sort_by(|(a_id, a), (b_id, b)| match (a.instance_id, b.instance_id) {
        (Some(a), Some(b)) => a.cmp(b).then(a_id.cmp(b_id)),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a_id.cmp(b_id),
    });
    let mut result: BTreeMap<String, Assignment> =
        members.keys().map(|id| (id.to_string(), Assignment::new())).collect();
    for (topic, &count) in partitions {
        let subs: Vec<&str> =
            sorted.iter().filter(|(_, spec)| spec.topics.contains(topic)).map(|(id, _)| *id).collect();
        if subs.is_empty() || count <= 0 {
            continue;
        }
        let n = i32::try_from(subs.len()).unwrap_or(i32::MAX);
        let (quota, mut extra) = (count / n, count % n);
        let mut start = 0;
        for id in subs {
            let mut size = quota;
            if extra > 0 {
                size += 1;
                extra -= 1;
            }
            let end = (start + size).min(count);
            if start < end
                && let Some(assignment) = result.get_mut(id)
            {
                assignment.insert(*topic, (start..end).collect());
            }
            start = end;
        }
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(n: u8) -> Uuid {
        Uuid::from_bytes([n; 16])
    }

    fn count(a: &Assignment) -> usize {
        a.values().map(BTreeSet::len).sum()
    }

    fn specs<'a>(
        ids: &[&'a str],
        topics: &[Uuid],
        previous: &'a BTreeMap<String, Assignment>,
    ) -> BTreeMap<&'a str, MemberSpec<'a>> {
        static EMPTY: Assignment = Assignment::new();
        ids.iter()
            .map(|id| {
                let prev = previous.get(*id).unwrap_or(&EMPTY);
                (*id, MemberSpec { instance_id: None, topics: topics.iter().copied().collect(), previous: prev })
            })
            .collect()
    }

    fn assert_complete(result: &BTreeMap<String, Assignment>, partitions: &BTreeMap<Uuid, i32>) {
        let mut seen = BTreeSet::new();
        for a in result.values() {
            for (t, ps) in a {
                for p in ps {
                    assert!(seen.insert((*t, *p)), "{t}/{p} assigned twice");
                }
            }
        }
        let total: i32 = partitions.values().sum();
        assert_eq!(seen.len(), total as usize);
    }

    #[test]
    fn uniform_is_balanced_and_sticky() {
        let partitions = BTreeMap::from([(topic(1), 7), (topic(2), 5)]);
        let none = BTreeMap::new();
        let first = assign(UNIFORM, &specs(&["a", "b", "c"], &[topic(1), topic(2)], &none), &partitions);
        assert_complete(&first, &partitions);
        let loads: Vec<usize> = first.values().map(count).collect();
        assert!(loads.iter().max().unwrap() - loads.iter().min().unwrap() <= 1, "{loads:?}");
        // Same input, same output.
        assert_eq!(first, assign(UNIFORM, &specs(&["a", "b", "c"], &[topic(1), topic(2)], &first), &partitions));
        // A fourth member takes partitions only from others; nobody else gains any.
        let second = assign(UNIFORM, &specs(&["a", "b", "c", "d"], &[topic(1), topic(2)], &first), &partitions);
        assert_complete(&second, &partitions);
        for id in ["a", "b", "c"] {
            for (t, ps) in &second[id] {
                assert!(ps.is_subset(&first[id][t]), "{id} gained partitions");
            }
        }
        let loads: Vec<usize> = second.values().map(count).collect();
        assert_eq!(loads.iter().max().unwrap() - loads.iter().min().unwrap(), 0);
        // A member leaving: the others keep what they had.
        let third = assign(UNIFORM, &specs(&["a", "c", "d"], &[topic(1), topic(2)], &second), &partitions);
        assert_complete(&third, &partitions);
        for id in ["a", "c", "d"] {
            for (t, ps) in &second[id] {
                assert!(ps.is_subset(&third[id][t]), "{id} lost partitions");
            }
        }
    }

    #[test]
    fn uniform_balances_heterogeneous_subscriptions() {
        let partitions = BTreeMap::from([(topic(1), 6), (topic(2), 6)]);
        let none = BTreeMap::new();
        static EMPTY: Assignment = Assignment::new();
        let mut members = specs(&["a", "b"], &[topic(1), topic(2)], &none);
        members.insert("c", MemberSpec { instance_id: None, topics: BTreeSet::from([topic(2)]), previous: &EMPTY });
        let result = assign(UNIFORM, &members, &partitions);
        assert_complete(&result, &partitions);
        assert!(result["c"].keys().all(|t| *t == topic(2)));
        assert_eq!(result.values().map(count).collect::<Vec<_>>(), vec![4, 4, 4]);
    }

    #[test]
    fn range_gives_contiguous_co_partitioned_ranges() {
        let partitions = BTreeMap::from([(topic(1), 3), (topic(2), 3)]);
        let none = BTreeMap::new();
        let result = assign(RANGE, &specs(&["m0", "m1"], &[topic(1), topic(2)], &none), &partitions);
        assert_complete(&result, &partitions);
        assert_eq!(result["m0"][&topic(1)], BTreeSet::from([0, 1]));
        assert_eq!(result["m0"][&topic(2)], BTreeSet::from([0, 1]));
        assert_eq!(result["m1"][&topic(1)], BTreeSet::from([2]));
        // Deterministic: the same membership always gets the same ranges.
        let again = assign(RANGE, &specs(&["m0", "m1"], &[topic(1), topic(2)], &result), &partitions);
        assert_eq!(result, again);
        // Static members sort first, by instance id.
        static EMPTY: Assignment = Assignment::new();
        let mut members = specs(&["a"], &[topic(1)], &none);
        members
            .insert("z", MemberSpec { instance_id: Some("i0"), topics: BTreeSet::from([topic(1)]), previous: &EMPTY });
        let result = assign(RANGE, &members, &BTreeMap::from([(topic(1), 4)]));
        assert_eq!(result["z"][&topic(1)], BTreeSet::from([0, 1]));
        assert_eq!(result["a"][&topic(1)], BTreeSet::from([2, 3]));
    }

    #[test]
    fn more_members_than_partitions() {
        let partitions = BTreeMap::from([(topic(1), 2)]);
        let none = BTreeMap::new();
        for assignor in SUPPORTED {
            let result = assign(assignor, &specs(&["a", "b", "c"], &[topic(1)], &none), &partitions);
            assert_complete(&result, &partitions);
            assert_eq!(result.len(), 3);
            assert!(result.values().all(|a| count(a) <= 1));
        }
    }
}
