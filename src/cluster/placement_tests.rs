use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::*;

fn brokers(n: i32) -> Vec<Broker> {
    (0..n).map(|id| Broker::new(id, None)).collect()
}

#[test]
fn kafkas_documented_example_without_racks() {
    // Kafka's AdminUtils doc: 5 brokers, 10 partitions, replication factor 3, the
    // pattern started at broker 0 with no shift.
    let got = assign(&brokers(5), 10, 3, 0, 0).expect("assign");
    let want: Vec<Vec<i32>> = vec![
        vec![0, 1, 2],
        vec![1, 2, 3],
        vec![2, 3, 4],
        vec![3, 4, 0],
        vec![4, 0, 1],
        vec![0, 2, 3],
        vec![1, 3, 4],
        vec![2, 4, 0],
        vec![3, 0, 1],
        vec![4, 1, 2],
    ];
    assert_eq!(got, want);
}

#[test]
fn racks_alternate_and_each_partition_spans_them() {
    let b = vec![
        Broker::new(1, Some("a")),
        Broker::new(2, Some("a")),
        Broker::new(3, Some("b")),
        Broker::new(4, Some("b")),
        Broker::new(5, Some("c")),
        Broker::new(6, Some("c")),
    ];
    let rack = |id: i32| b.iter().find(|x| x.id == id).and_then(|x| x.rack.clone()).expect("rack");
    let got = assign(&b, 12, 3, 0, 0).expect("assign");
    for (p, replicas) in got.iter().enumerate() {
        let racks: BTreeSet<String> = replicas.iter().map(|&id| rack(id)).collect();
        assert_eq!(racks.len(), 3, "partition {p}: {replicas:?}");
    }
    // Consecutive leaders are on different racks.
    for w in got.windows(2) {
        assert_ne!(rack(w[0][0]), rack(w[1][0]), "{got:?}");
    }
}

#[test]
fn impossible_placements_are_refused_with_kafkas_reasons() {
    assert_eq!(assign(&brokers(2), 1, 3, 0, 0), Err(PlacementError::NotEnoughBrokers { factor: 3, brokers: 2 }));
    assert_eq!(assign(&brokers(2), 1, 0, 0, 0), Err(PlacementError::BadReplicationFactor(0)));
    assert_eq!(assign(&brokers(2), 0, 1, 0, 0), Err(PlacementError::BadPartitionCount(0)));
    let mixed = vec![Broker::new(1, Some("a")), Broker::new(2, None)];
    assert_eq!(assign(&mixed, 1, 1, 0, 0), Err(PlacementError::MixedRacks));
}

#[test]
fn explicit_assignments_are_checked_not_changed() {
    let b = brokers(3);
    assert_eq!(check_explicit(&b, &[vec![0, 1], vec![2, 0]], 0), Ok(2));
    let err = |a: &[Vec<i32>]| check_explicit(&b, a, 4).expect_err("refused").to_string();
    assert!(err(&[vec![]]).contains("no replicas"));
    assert!(err(&[vec![1, 1]]).contains("duplicate"));
    assert!(err(&[vec![0, 7]]).contains("broker 7 is not in the cluster"));
    let uneven = err(&[vec![0, 1], vec![2]]);
    assert!(
        uneven.starts_with("partition 5:") && uneven.contains("1 replicas where earlier partitions have 2"),
        "{uneven}"
    );
}

/// Brokers with ids that need not be dense, and racks for all or none.
fn cluster() -> impl Strategy<Value = Vec<Broker>> {
    (1usize..10, 0usize..4, any::<u64>()).prop_map(|(n, racks, salt)| {
        (0..n)
            .map(|i| {
                let id = (i as i32) * 3 + (salt % 3) as i32;
                let rack = (racks > 0).then(|| format!("r{}", (i as u64 ^ salt) % racks as u64));
                Broker { id, rack }
            })
            .collect()
    })
}

proptest! {
    #[test]
    fn every_placement_is_valid_balanced_and_rack_aware(
        b in cluster(),
        factor_pick in any::<u16>(),
        partitions in 1i32..80,
        seed in any::<u64>(),
    ) {
        let n = b.len();
        let factor = 1 + (factor_pick as usize % n) as i16;
        let got = assign(&b, partitions, factor, 0, seed).expect("assign");
        prop_assert_eq!(got.len(), partitions as usize);
        let ids: BTreeSet<i32> = b.iter().map(|x| x.id).collect();
        let racks: BTreeSet<&str> = b.iter().filter_map(|x| x.rack.as_deref()).collect();
        let rack_of: BTreeMap<i32, Option<&str>> = b.iter().map(|x| (x.id, x.rack.as_deref())).collect();
        let mut leaders: BTreeMap<i32, usize> = ids.iter().map(|&id| (id, 0)).collect();
        let mut replicas: BTreeMap<i32, usize> = ids.iter().map(|&id| (id, 0)).collect();
        for r in &got {
            let distinct: BTreeSet<i32> = r.iter().copied().collect();
            prop_assert_eq!(r.len(), factor as usize);
            prop_assert_eq!(distinct.len(), r.len(), "duplicate broker in {:?}", r);
            prop_assert!(distinct.is_subset(&ids));
            let spanned: BTreeSet<&str> = r.iter().filter_map(|id| rack_of[id]).collect();
            prop_assert_eq!(spanned.len(), (factor as usize).min(racks.len()), "racks of {:?}", r);
            *leaders.get_mut(&r[0]).expect("known") += 1;
            for id in r {
                *replicas.get_mut(id).expect("known") += 1;
            }
        }
        let (lo, hi) = (leaders.values().min().copied(), leaders.values().max().copied());
        prop_assert!(hi.zip(lo).is_some_and(|(h, l)| h - l <= 1), "preferred leaders {:?}", leaders);
        if racks.is_empty() && (partitions as usize).is_multiple_of(n) {
            let counts: BTreeSet<usize> = replicas.values().copied().collect();
            prop_assert_eq!(counts.len(), 1, "replicas per broker {:?}", replicas);
        }
        // The same inputs give the same placement; adding partitions continues it.
        prop_assert_eq!(&assign(&b, partitions, factor, 0, seed).expect("assign"), &got);
        let k = partitions / 2;
        if k > 0 {
            let tail = assign(&b, partitions - k, factor, k, seed).expect("assign");
            prop_assert_eq!(&got[k as usize..], &tail[..]);
        }
    }
}
