//! Goal: the sequence checker counts lost, duplicated and out-of-order messages exactly.

use std::collections::HashMap;

use loadgen::checker::SequenceChecker;

#[test]
fn in_order_messages_are_clean() {
    let mut checker = SequenceChecker::new();
    for sequence in 0..1000 {
        checker.record(1, (sequence % 3) as u32, sequence);
    }
    assert_eq!(
        (checker.distinct, checker.duplicates, checker.out_of_order),
        (1000, 0, 0)
    );
    assert_eq!(checker.lost(&HashMap::from([(1, 1000)])), 0);
}

#[test]
fn duplicates_gaps_and_reordering_are_counted() {
    let mut checker = SequenceChecker::new();
    for sequence in [0, 1, 2, 2, 5, 4, 1] {
        checker.record(9, 0, sequence);
    }
    assert_eq!(checker.distinct, 5);
    assert_eq!(checker.duplicates, 2);
    // 4 after 5, and the repeated 1 after 5.
    assert_eq!(checker.out_of_order, 2);
    // 0..7 acknowledged, 3 and 6 never seen.
    assert_eq!(checker.lost(&HashMap::from([(9, 7)])), 2);
}

#[test]
fn order_is_per_partition_and_producers_are_separate() {
    let mut checker = SequenceChecker::new();
    checker.record(1, 0, 5);
    checker.record(1, 1, 3); // another partition: not out of order
    checker.record(2, 0, 0); // another producer
    assert_eq!((checker.duplicates, checker.out_of_order), (0, 0));
    assert_eq!(
        checker.lost(&HashMap::from([(1, 6), (2, 1), (3, 4)])),
        4 + 4
    );
}

#[test]
fn merging_consumers_adds_up_and_finds_cross_duplicates() {
    let mut a = SequenceChecker::new();
    let mut b = SequenceChecker::new();
    for sequence in 0..100 {
        if sequence % 2 == 0 {
            a.record(1, 0, sequence);
        } else {
            b.record(1, 1, sequence);
        }
    }
    b.record(1, 1, 200);
    a.record(1, 2, 200);
    let mut merged = SequenceChecker::new();
    merged.merge(&a);
    merged.merge(&b);
    assert_eq!(merged.distinct, 101);
    assert_eq!(merged.duplicates, 1);
    assert_eq!(merged.lost(&HashMap::from([(1, 100)])), 0);
}
