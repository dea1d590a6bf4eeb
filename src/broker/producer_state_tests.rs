use super::*;

fn meta(first_seq: i32, last_seq: i32, first_offset: i64) -> BatchMeta {
    BatchMeta { first_seq, last_seq, first_offset, last_offset: first_offset + i64::from(last_seq - first_seq) }
}

#[test]
fn sequences_duplicates_gaps_and_fencing() {
    let mut t = ProducerStateTable::default();
    assert_eq!(t.check(7, 0, 0, 4), SeqCheck::Append);
    t.record(7, 0, meta(0, 4, 100), 0);
    assert_eq!(t.check(7, 0, 5, 9), SeqCheck::Append);
    t.record(7, 0, meta(5, 9, 105), 0);
    assert_eq!(t.check(7, 0, 0, 4), SeqCheck::Duplicate(meta(0, 4, 100)));
    assert_eq!(t.check(7, 0, 11, 12), SeqCheck::Reject(ResponseError::OutOfOrderSequenceNumber));
    assert_eq!(t.check(7, 1, 3, 4), SeqCheck::Reject(ResponseError::OutOfOrderSequenceNumber));
    assert_eq!(t.check(7, 1, 0, 4), SeqCheck::Append);
    t.record(7, 1, meta(0, 4, 200), 0);
    assert_eq!(t.check(7, 0, 10, 10), SeqCheck::Reject(ResponseError::InvalidProducerEpoch));
    assert_eq!(t.check(-1, -1, -1, -1), SeqCheck::Append);
    // Unknown producer may start anywhere.
    assert_eq!(t.check(8, 3, 42, 43), SeqCheck::Append);
}

#[test]
fn add_seq_wraps_to_zero() {
    assert_eq!(add_seq(5, 3), 8);
    assert_eq!(add_seq(i32::MAX, 0), i32::MAX);
    assert_eq!(add_seq(i32::MAX, 1), 0);
    assert_eq!(add_seq(i32::MAX - 1, 2), 0);
    assert_eq!(add_seq(i32::MAX - 1, 5), 3);
    assert_eq!(add_seq(0, i32::MAX), i32::MAX);
    assert_eq!(add_seq(1, i32::MAX), 0);
}

#[test]
fn snapshot_round_trip_only_at_the_same_end_offset() {
    let mut t = ProducerStateTable::default();
    t.record(7, 2, meta(0, 4, 100), 0);
    t.record(7, 2, meta(5, 9, 105), 0);
    let json = t.to_snapshot(110).unwrap();
    assert!(ProducerStateTable::from_snapshot(&json, 111, 0).is_none());
    assert!(ProducerStateTable::from_snapshot("garbage", 110, 0).is_none());
    let back = ProducerStateTable::from_snapshot(&json, 110, 0).unwrap();
    assert_eq!(back.check(7, 2, 0, 4), SeqCheck::Duplicate(meta(0, 4, 100)));
    assert_eq!(back.check(7, 2, 10, 10), SeqCheck::Append);
    assert_eq!(back.check(7, 1, 10, 10), SeqCheck::Reject(ResponseError::InvalidProducerEpoch));
}

#[test]
fn keeps_only_last_five_and_wraps() {
    let mut t = ProducerStateTable::default();
    for i in 0..7 {
        t.record(1, 0, meta(i, i, i64::from(i)), 0);
    }
    assert_eq!(t.check(1, 0, 1, 1), SeqCheck::Reject(ResponseError::OutOfOrderSequenceNumber));
    assert_eq!(t.check(1, 0, 2, 2), SeqCheck::Duplicate(meta(2, 2, 2)));
    t.record(1, 0, meta(i32::MAX - 1, i32::MAX, 10), 0);
    assert_eq!(t.check(1, 0, 0, 3), SeqCheck::Append);
}

#[test]
fn producers_expire_after_their_last_write_not_their_first() {
    let mut t = ProducerStateTable::default();
    t.record(1, 0, meta(0, 0, 0), 1_000);
    t.record(2, 0, meta(0, 0, 1), 1_000);
    // Producer 2 writes again later: its window starts over.
    t.record(2, 0, meta(1, 1, 2), 5_000);
    assert_eq!(t.expire(10_999, 10_000), 0);
    assert_eq!(t.expire(11_000, 10_000), 1);
    assert!(!t.contains(1));
    assert_eq!(t.check(2, 0, 1, 1), SeqCheck::Duplicate(meta(1, 1, 2)));
    assert_eq!(t.expire(15_000, 10_000), 1);
    assert!(t.is_empty());
    // An expired producer is unknown: accepted at any sequence (KIP-360).
    assert_eq!(t.check(2, 0, 7, 7), SeqCheck::Append);
}

#[test]
fn snapshot_keeps_write_times_and_old_snapshots_get_the_load_time() {
    let mut t = ProducerStateTable::default();
    t.record(7, 0, meta(0, 0, 0), 1_000);
    let json = t.to_snapshot(1).unwrap();
    let mut back = ProducerStateTable::from_snapshot(&json, 1, 50_000).unwrap();
    assert_eq!(back.expire(11_000, 10_000), 1);
    let old = r#"{"end_offset":1,"producers":[{"id":7,"epoch":0,"batches":[]}]}"#;
    let mut back = ProducerStateTable::from_snapshot(old, 1, 50_000).unwrap();
    assert_eq!(back.expire(59_999, 10_000), 0);
    assert_eq!(back.expire(60_000, 10_000), 1);
}

#[test]
fn gate_admits_up_to_its_cap_and_recount_never_undercounts() {
    let gate = ProducerIdGate::new(3);
    assert!(gate.try_admit(2));
    assert!(!gate.try_admit(2));
    assert!(gate.try_admit(1));
    assert!(!gate.try_admit(1));
    // Expiry freed two: a recount that sums 1 opens room again.
    gate.begin_recount();
    gate.finish_recount(1);
    assert_eq!(gate.tracked(), 1);
    gate.begin_recount();
    // Admitted while the tables are being summed: counted on top of the sum.
    assert!(gate.try_admit(1));
    gate.finish_recount(1);
    assert_eq!(gate.tracked(), 2);
}
