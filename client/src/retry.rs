//! The producer's decisions after a produce request: given how the request went and how each
//! of its batches was stamped, what becomes of each batch (acknowledged, sent again, failed),
//! of the partition's sequence (kept, re-stamped from a sequence, or lost: take a new producer
//! id) and of the cached partition count. [`decide`] is pure: plain data in, a [`Decision`]
//! out, tested with a table of cases below (as the broker's `producer_state` is). The
//! producer's send loop performs what it says: completes the batches, re-stamps, asks for a
//! new producer id, waits [`backoff`] and sends again.
//!
//! The rules (the producer's module documentation says why):
//! - A batch refused with a retriable code (`Timeout`, `StorageFull`, `Throttled`) is sent
//!   again while resends are left; any other refusal fails it. `UnknownTopic` and
//!   `UnknownPartition` also drop the cached partition count.
//! - A request that failed as a whole is sent again if the broker's code is retriable, or,
//!   with idempotence, if it timed out on the client (a stored batch then comes back as a
//!   duplicate). Otherwise its batches fail, and with idempotence their outcome is unknown:
//!   the partition's sequence is lost.
//! - With idempotence: a `DuplicateSequence` batch was stored by an earlier attempt (its
//!   offsets are forgotten). An `OutOfOrderSequence` after an earlier refusal in the same
//!   request is that refusal's consequence and is sent again; as the first refusal it means
//!   the broker expects another sequence: lost. An `UnknownProducerId` on a first send was
//!   never stored and is sent again from sequence 0; on a resend it may have been stored, so
//!   it fails and the sequence is lost. When some batches were not stored, everything from
//!   the first of them on is re-stamped from its sequence, where the broker expects the
//!   partition to continue.
//!
//! Every batch of one request carries the same producer id and epoch: new batches are stamped
//! together, and a retry is re-stamped as a whole.

use std::time::Duration;

use schema::wire::{ErrorCode, ProduceResultOwned};

use crate::error::{ClientError, is_retriable_code};

/// How one batch of the request was stamped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BatchStamp {
    /// Records in the batch (at least 1).
    pub record_count: u32,
    /// The producer id (-1 without idempotence).
    pub producer_id: i64,
    /// The producer epoch (-1 without idempotence).
    pub producer_epoch: i16,
    /// The sequence of its first record (-1 without idempotence).
    pub base_sequence: i32,
}

/// How a produce request went.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Response<'a> {
    /// Written to the socket with `Acks::None`: no answer comes.
    Written,
    /// The broker's answer: one result per batch, in request order.
    Answered(&'a [ProduceResultOwned]),
    /// The request failed as a whole (no answer in time, a lost connection, or the broker
    /// refused all of it).
    Failed(&'a ClientError),
}

/// Where the request's batches are in their resends.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Attempt {
    /// Whether the batches are stamped for idempotence.
    pub idempotent: bool,
    /// Times these batches were sent before this request (0: a first send).
    pub resend_count: u32,
    /// Resends allowed (`ProducerOptions::retries`).
    pub resend_count_max: u32,
}

/// What becomes of one batch.
#[derive(Debug)]
pub(crate) enum BatchAction {
    /// Acknowledged: its records start at this offset; `None` with `Acks::None`, and for a
    /// duplicate, stored by an earlier attempt whose offsets the broker no longer says.
    Complete(Option<u64>),
    /// Sent again after the backoff (stamped as the [`SequenceAction`] says).
    Retry,
    /// Its records fail with this error.
    Fail(ClientError),
}

/// What becomes of the partition's sequence (always `Keep` without idempotence).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SequenceAction {
    /// Nothing changes: every batch was stored, or the same stamped bytes go again.
    Keep,
    /// Nothing from sequence `from` on was stored: the batches to retry are stamped with
    /// consecutive sequences from `from` under `producer` (id, epoch), which leaves them as
    /// they are unless a batch before them failed for good, and the partition's next new batch
    /// follows them. `from` is 0 when the broker did not know the producer on a first send.
    Restamp {
        /// The producer id and epoch the request's batches carry.
        producer: (i64, i16),
        /// The sequence of the first batch not stored (or 0).
        from: i32,
    },
    /// The partition's sequence is lost: forget the producer id and take a new one. The
    /// batches to retry were never stored; they go under the new id from sequence 0.
    NewProducerId {
        /// Why, for the log.
        why: &'static str,
    },
}

/// What to do after a produce request. See the module documentation.
#[derive(Debug)]
pub(crate) struct Decision {
    /// One action per batch, in request order.
    pub batches: Vec<BatchAction>,
    /// What becomes of the partition's sequence.
    pub sequence: SequenceAction,
    /// A batch failed because the broker does not know its topic or partition: drop the cached
    /// partition count, so the next record of the topic reads fresh metadata.
    pub forget_partition_count: bool,
}

/// Decides what follows a produce request of `batches` to `topic`/`partition`. See the module
/// documentation for the rules.
pub(crate) fn decide(
    topic: &str,
    partition: u32,
    batches: &[BatchStamp],
    response: Response<'_>,
    attempt: Attempt,
) -> Decision {
    let may_retry = attempt.resend_count < attempt.resend_count_max;
    match response {
        Response::Written => Decision {
            batches: batches
                .iter()
                .map(|_| BatchAction::Complete(None))
                .collect(),
            sequence: SequenceAction::Keep,
            forget_partition_count: false,
        },
        Response::Failed(error) => {
            // With idempotence a timeout or a lost connection is safe to retry (the client
            // reconnects first): a batch the broker did store comes back as a duplicate with
            // its original offsets, also after a broker restart (its producer state is rebuilt
            // from the log).
            let unknown_outcome = is_outcome_unknown(error);
            if may_retry && (error.is_retriable() || (attempt.idempotent && unknown_outcome)) {
                return Decision {
                    batches: batches.iter().map(|_| BatchAction::Retry).collect(),
                    sequence: SequenceAction::Keep,
                    forget_partition_count: false,
                };
            }
            let sequence = if attempt.idempotent {
                // Stored or not, nobody knows.
                SequenceAction::NewProducerId {
                    why: "a batch failed with an unknown outcome",
                }
            } else {
                SequenceAction::Keep
            };
            Decision {
                batches: batches
                    .iter()
                    .map(|_| BatchAction::Fail(error.clone()))
                    .collect(),
                sequence,
                forget_partition_count: false,
            }
        }
        Response::Answered(results) => answered(topic, partition, batches, results, attempt),
    }
}

/// Whether a request that failed with `error` may have been stored: no answer came (a timeout,
/// a lost connection).
pub(crate) fn is_outcome_unknown(error: &ClientError) -> bool {
    matches!(
        error,
        ClientError::Timeout { .. } | ClientError::ConnectionLost { .. }
    )
}

/// [`decide`] for a request the broker answered batch by batch.
fn answered(
    topic: &str,
    partition: u32,
    batches: &[BatchStamp],
    results: &[ProduceResultOwned],
    attempt: Attempt,
) -> Decision {
    assert_eq!(
        results.len(),
        batches.len(),
        "Client::produce returns one result per batch"
    );
    let may_retry = attempt.resend_count < attempt.resend_count_max;
    let mut decision = Decision {
        batches: Vec::with_capacity(batches.len()),
        sequence: SequenceAction::Keep,
        forget_partition_count: false,
    };
    // The first batch not stored (where the broker expects the partition to continue),
    // whether the broker forgot this producer on a first send (start again at 0), and
    // whether the partition's sequence is lost (take a new producer id).
    let mut first_unstored: Option<&BatchStamp> = None;
    let mut restart_at_zero = false;
    let mut sequence_lost: Option<&'static str> = None;
    for (batch, result) in batches.iter().zip(results) {
        if result.error == ErrorCode::None {
            decision.batches.push(stored(batch, result));
            continue;
        }
        if attempt.idempotent && result.error == ErrorCode::DuplicateSequence {
            decision.batches.push(BatchAction::Complete(None));
            continue;
        }
        // Whether an earlier batch of this request was not stored either.
        let follows_refusal = first_unstored.is_some();
        first_unstored.get_or_insert(batch);
        let sequence_retry = if !attempt.idempotent {
            false
        } else if result.error == ErrorCode::OutOfOrderSequence {
            // After an earlier refusal in this request: a consequence, sent again. Otherwise
            // the broker expects another sequence than ours.
            if !follows_refusal {
                sequence_lost = Some("the broker expects another sequence");
            }
            follows_refusal
        } else if result.error == ErrorCode::UnknownProducerId {
            if attempt.resend_count == 0 {
                // Never sent before, so never stored: start again at 0.
                restart_at_zero = true;
                true
            } else {
                // Sent before and forgotten since: it may be stored, and a resend from 0
                // could store it twice. It fails.
                sequence_lost = Some("the broker forgot the producer");
                false
            }
        } else {
            false
        };
        if may_retry && (is_retriable_code(result.error) || sequence_retry) {
            decision.batches.push(BatchAction::Retry);
            continue;
        }
        if result.error == ErrorCode::UnknownPartition || result.error == ErrorCode::UnknownTopic {
            decision.forget_partition_count = true;
        }
        decision
            .batches
            .push(BatchAction::Fail(ClientError::Partition {
                topic: topic.to_string(),
                partition,
                code: result.error,
                message: result.message.clone(),
            }));
    }
    decision.sequence = match (sequence_lost, first_unstored) {
        (Some(why), _) => SequenceAction::NewProducerId { why },
        (None, Some(first)) if attempt.idempotent => SequenceAction::Restamp {
            producer: (first.producer_id, first.producer_epoch),
            from: if restart_at_zero {
                0
            } else {
                first.base_sequence
            },
        },
        (None, _) => SequenceAction::Keep,
    };
    decision
}

/// A stored batch completes at its base offset, if the offsets the broker gave fit its record
/// count.
fn stored(batch: &BatchStamp, result: &ProduceResultOwned) -> BatchAction {
    let expected = u64::from(batch.record_count) - 1;
    if result.last_offset.checked_sub(result.base_offset) == Some(expected) {
        return BatchAction::Complete(Some(result.base_offset));
    }
    let reason = format!(
        "offsets {}..={} for a batch of {} records",
        result.base_offset, result.last_offset, batch.record_count
    );
    BatchAction::Fail(ClientError::Protocol {
        operation: "produce",
        reason,
    })
}

/// The delay before resend number `resend_index` (1-based): `first` doubled per resend, at
/// most `max`. With 100 ms and 1 s: 100, 200, 400, 800, 1000, 1000, ... ms.
pub(crate) fn backoff(resend_index: u32, first: Duration, max: Duration) -> Duration {
    let factor = 1u32 << resend_index.saturating_sub(1).min(16);
    first.saturating_mul(factor).min(max)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    /// A batch of 2 records stamped by producer 7, epoch 1, from `base_sequence`.
    fn batch(base_sequence: i32) -> BatchStamp {
        BatchStamp {
            record_count: 2,
            producer_id: 7,
            producer_epoch: 1,
            base_sequence,
        }
    }

    /// An unstamped batch of 2 records (no idempotence).
    const PLAIN: BatchStamp = BatchStamp {
        record_count: 2,
        producer_id: -1,
        producer_epoch: -1,
        base_sequence: -1,
    };

    /// A result: stored at `base` (2 records), or refused with a code.
    fn result(outcome: Result<u64, ErrorCode>) -> ProduceResultOwned {
        let (error, base_offset, last_offset) = match outcome {
            Ok(base) => (ErrorCode::None, base, base + 1),
            Err(code) => (code, 0, 0),
        };
        ProduceResultOwned {
            topic: "t".to_string(),
            partition: 3,
            error,
            base_offset,
            last_offset,
            log_start: 0,
            message: format!("{error:?} message"),
        }
    }

    /// What a test expects of a batch: its offset, a retry, or a failure (the broker code's
    /// name, or the kind of error).
    #[derive(Debug, PartialEq, Eq)]
    enum Expect {
        Done(Option<u64>),
        Retry,
        Fail(&'static str),
    }
    use Expect::{Done, Fail, Retry};

    fn seen(action: &BatchAction) -> Expect {
        match action {
            BatchAction::Complete(offset) => Done(*offset),
            BatchAction::Retry => Retry,
            BatchAction::Fail(ClientError::Partition { code, .. }) => {
                Fail(code.variant_name().expect("a known code"))
            }
            BatchAction::Fail(ClientError::Protocol { .. }) => Fail("protocol"),
            BatchAction::Fail(ClientError::Timeout { .. }) => Fail("client timeout"),
            BatchAction::Fail(ClientError::ConnectionLost { .. }) => Fail("connection lost"),
            BatchAction::Fail(other) => panic!("unexpected error {other:?}"),
        }
    }

    /// One row: what went in, what must come out.
    struct Case {
        name: &'static str,
        idempotent: bool,
        resend_count: u32,
        resend_count_max: u32,
        batches: Vec<BatchStamp>,
        response: Outcome,
        expect: Vec<Expect>,
        sequence: SequenceAction,
        forget_partition_count: bool,
    }

    /// An owned [`Response`] for the table.
    enum Outcome {
        Written,
        Answered(Vec<Result<u64, ErrorCode>>),
        Failed(ClientError),
    }

    fn client_timeout() -> ClientError {
        ClientError::Timeout {
            operation: "produce",
            timeout: Duration::from_secs(1),
        }
    }

    fn connection_lost() -> ClientError {
        ClientError::ConnectionLost {
            address: "127.0.0.1:1".parse().expect("address"),
            reason: "reset".to_string(),
        }
    }

    fn broker_refused(code: ErrorCode) -> ClientError {
        ClientError::Broker {
            operation: "produce",
            code,
            message: String::new(),
        }
    }

    const RESENDS_MAX: u32 = 3;
    const KEEP: SequenceAction = SequenceAction::Keep;

    fn restamp(from: i32) -> SequenceAction {
        SequenceAction::Restamp {
            producer: (7, 1),
            from,
        }
    }

    fn new_id(why: &'static str) -> SequenceAction {
        SequenceAction::NewProducerId { why }
    }

    fn cases() -> Vec<Case> {
        use ErrorCode as E;
        let case = |name, idempotent, resend_count, batches, response, expect, sequence| Case {
            name,
            idempotent,
            resend_count,
            resend_count_max: RESENDS_MAX,
            batches,
            response,
            expect,
            sequence,
            forget_partition_count: false,
        };
        let answered = |outcomes: &[Result<u64, ErrorCode>]| Outcome::Answered(outcomes.to_vec());
        vec![
            case(
                "acks none: written is done, no offsets",
                false,
                0,
                vec![PLAIN, PLAIN],
                Outcome::Written,
                vec![Done(None), Done(None)],
                KEEP,
            ),
            case(
                "stored batches complete at their base offsets",
                false,
                0,
                vec![PLAIN, PLAIN],
                answered(&[Ok(10), Ok(12)]),
                vec![Done(Some(10)), Done(Some(12))],
                KEEP,
            ),
            case(
                "stored with idempotence: the sequence is kept",
                true,
                0,
                vec![batch(0), batch(2)],
                answered(&[Ok(10), Ok(12)]),
                vec![Done(Some(10)), Done(Some(12))],
                KEEP,
            ),
            case(
                "retriable codes are retried while resends are left",
                false,
                RESENDS_MAX - 1,
                vec![PLAIN, PLAIN, PLAIN, PLAIN],
                answered(&[
                    Ok(10),
                    Err(E::Timeout),
                    Err(E::StorageFull),
                    Err(E::Throttled),
                ]),
                vec![Done(Some(10)), Retry, Retry, Retry],
                KEEP,
            ),
            case(
                "retriable codes fail once the resends are spent",
                false,
                RESENDS_MAX,
                vec![PLAIN],
                answered(&[Err(E::StorageFull)]),
                vec![Fail("StorageFull")],
                KEEP,
            ),
            case(
                "other codes fail at once; a broker shutting down is retried (after the reconnect)",
                false,
                0,
                vec![PLAIN, PLAIN],
                answered(&[Err(E::InvalidBatch), Err(E::ShuttingDown)]),
                vec![Fail("InvalidBatch"), Retry],
                KEEP,
            ),
            case(
                "sequence codes mean nothing without idempotence",
                false,
                0,
                vec![PLAIN, PLAIN, PLAIN],
                answered(&[
                    Err(E::DuplicateSequence),
                    Err(E::OutOfOrderSequence),
                    Err(E::UnknownProducerId),
                ]),
                vec![
                    Fail("DuplicateSequence"),
                    Fail("OutOfOrderSequence"),
                    Fail("UnknownProducerId"),
                ],
                KEEP,
            ),
            case(
                "a client-side timeout is not retried without idempotence (it may be stored)",
                false,
                0,
                vec![PLAIN, PLAIN],
                Outcome::Failed(client_timeout()),
                vec![Fail("client timeout"), Fail("client timeout")],
                KEEP,
            ),
            case(
                "a client-side timeout is retried with idempotence, the same bytes",
                true,
                0,
                vec![batch(4), batch(6)],
                Outcome::Failed(client_timeout()),
                vec![Retry, Retry],
                KEEP,
            ),
            case(
                "a client-side timeout with no resend left: the outcome is unknown",
                true,
                RESENDS_MAX,
                vec![batch(4)],
                Outcome::Failed(client_timeout()),
                vec![Fail("client timeout")],
                new_id("a batch failed with an unknown outcome"),
            ),
            case(
                "a request the broker refused with a retriable code is retried",
                false,
                0,
                vec![PLAIN],
                Outcome::Failed(broker_refused(E::Throttled)),
                vec![Retry],
                KEEP,
            ),
            case(
                "a lost connection fails the request",
                false,
                0,
                vec![PLAIN],
                Outcome::Failed(connection_lost()),
                vec![Fail("connection lost")],
                KEEP,
            ),
            case(
                "a lost connection with idempotence is retried, the same bytes",
                true,
                0,
                vec![batch(0), batch(2)],
                Outcome::Failed(connection_lost()),
                vec![Retry, Retry],
                KEEP,
            ),
            case(
                "a lost connection with idempotence and no resend left loses the sequence",
                true,
                RESENDS_MAX,
                vec![batch(0), batch(2)],
                Outcome::Failed(connection_lost()),
                vec![Fail("connection lost"), Fail("connection lost")],
                new_id("a batch failed with an unknown outcome"),
            ),
            case(
                "a duplicate was stored by an earlier attempt",
                true,
                1,
                vec![batch(0), batch(2)],
                answered(&[Err(E::DuplicateSequence), Ok(12)]),
                vec![Done(None), Done(Some(12))],
                KEEP,
            ),
            case(
                "a batch that fails for good: the ones after it are re-stamped from its sequence",
                true,
                0,
                vec![batch(0), batch(2), batch(4)],
                answered(&[Ok(10), Err(E::InvalidBatch), Err(E::OutOfOrderSequence)]),
                vec![Done(Some(10)), Fail("InvalidBatch"), Retry],
                restamp(2),
            ),
            case(
                "a batch that fails for good alone: the partition continues at its sequence",
                true,
                0,
                vec![batch(6)],
                answered(&[Err(E::InvalidBatch)]),
                vec![Fail("InvalidBatch")],
                restamp(6),
            ),
            case(
                "a retriable refusal and its consequences go again, stamped as they were",
                true,
                0,
                vec![batch(0), batch(2), batch(4)],
                answered(&[Ok(10), Err(E::StorageFull), Err(E::OutOfOrderSequence)]),
                vec![Done(Some(10)), Retry, Retry],
                restamp(2),
            ),
            case(
                "retries spent on an idempotent batch: it fails, the partition continues there",
                true,
                RESENDS_MAX,
                vec![batch(8)],
                answered(&[Err(E::StorageFull)]),
                vec![Fail("StorageFull")],
                restamp(8),
            ),
            case(
                "out of order as the first refusal: the broker expects another sequence",
                true,
                0,
                vec![batch(4), batch(6)],
                answered(&[Err(E::OutOfOrderSequence), Err(E::OutOfOrderSequence)]),
                vec![Fail("OutOfOrderSequence"), Retry],
                new_id("the broker expects another sequence"),
            ),
            case(
                "an unknown producer on a first send starts again at 0",
                true,
                0,
                vec![batch(4), batch(6)],
                answered(&[Err(E::UnknownProducerId), Err(E::OutOfOrderSequence)]),
                vec![Retry, Retry],
                restamp(0),
            ),
            Case {
                resend_count_max: 0,
                ..case(
                    "an unknown producer on a first send with no resends: the partition restarts at 0",
                    true,
                    0,
                    vec![batch(4)],
                    answered(&[Err(E::UnknownProducerId)]),
                    vec![Fail("UnknownProducerId")],
                    restamp(0),
                )
            },
            case(
                "an unknown producer on a resend: maybe stored, so it fails",
                true,
                1,
                vec![batch(4), batch(6)],
                answered(&[Err(E::UnknownProducerId), Err(E::OutOfOrderSequence)]),
                vec![Fail("UnknownProducerId"), Retry],
                new_id("the broker forgot the producer"),
            ),
            case(
                "a fenced producer fails",
                true,
                0,
                vec![batch(0)],
                answered(&[Err(E::ProducerFenced)]),
                vec![Fail("ProducerFenced")],
                restamp(0),
            ),
            case(
                "offsets that do not fit the batch are a protocol error",
                true,
                0,
                vec![BatchStamp {
                    record_count: 3,
                    ..batch(0)
                }],
                answered(&[Ok(10)]),
                vec![Fail("protocol")],
                KEEP,
            ),
        ]
    }

    #[test]
    fn decisions() {
        for case in cases() {
            let results: Vec<ProduceResultOwned>;
            let response = match &case.response {
                Outcome::Written => Response::Written,
                Outcome::Answered(outcomes) => {
                    results = outcomes.iter().copied().map(result).collect();
                    Response::Answered(&results)
                }
                Outcome::Failed(error) => Response::Failed(error),
            };
            let attempt = Attempt {
                idempotent: case.idempotent,
                resend_count: case.resend_count,
                resend_count_max: case.resend_count_max,
            };
            let decision = decide("t", 3, &case.batches, response, attempt);
            let actions: Vec<Expect> = decision.batches.iter().map(seen).collect();
            assert_eq!(actions, case.expect, "{}", case.name);
            assert_eq!(decision.sequence, case.sequence, "{}", case.name);
            assert_eq!(
                decision.forget_partition_count, case.forget_partition_count,
                "{}",
                case.name
            );
        }
    }

    #[test]
    fn refusals_carry_the_broker_code_and_message() {
        let results = [result(Err(ErrorCode::InvalidBatch))];
        let attempt = Attempt {
            idempotent: false,
            resend_count: 0,
            resend_count_max: 0,
        };
        let decision = decide("t", 3, &[PLAIN], Response::Answered(&results), attempt);
        let [BatchAction::Fail(error)] = &decision.batches[..] else {
            panic!("{decision:?}");
        };
        assert_eq!(error.to_string(), "t/3: InvalidBatch: InvalidBatch message");
    }

    #[test]
    fn unknown_topics_and_partitions_drop_the_cached_partition_count() {
        for code in [ErrorCode::UnknownTopic, ErrorCode::UnknownPartition] {
            for idempotent in [false, true] {
                let stamp = if idempotent { batch(0) } else { PLAIN };
                let results = [result(Ok(0)), result(Err(code))];
                let attempt = Attempt {
                    idempotent,
                    resend_count: 0,
                    resend_count_max: RESENDS_MAX,
                };
                let decision = decide(
                    "t",
                    3,
                    &[stamp, stamp],
                    Response::Answered(&results),
                    attempt,
                );
                assert!(decision.forget_partition_count, "{code:?}");
                assert!(matches!(decision.batches[1], BatchAction::Fail(_)));
            }
        }
        // A retried batch does not.
        let results = [result(Err(ErrorCode::Timeout))];
        let attempt = Attempt {
            idempotent: false,
            resend_count: 0,
            resend_count_max: RESENDS_MAX,
        };
        let decision = decide("t", 3, &[PLAIN], Response::Answered(&results), attempt);
        assert!(!decision.forget_partition_count);
    }

    #[test]
    fn a_restamp_keeps_the_producer_the_batches_carry() {
        // Another partition may have taken a new producer id meanwhile; this partition's
        // sequence `from` belongs to the id its batches were stamped with.
        let stamp = BatchStamp {
            producer_id: 41,
            producer_epoch: 2,
            ..batch(5)
        };
        let results = [result(Err(ErrorCode::InvalidBatch))];
        let attempt = Attempt {
            idempotent: true,
            resend_count: 0,
            resend_count_max: RESENDS_MAX,
        };
        let decision = decide("t", 3, &[stamp], Response::Answered(&results), attempt);
        assert_eq!(
            decision.sequence,
            SequenceAction::Restamp {
                producer: (41, 2),
                from: 5
            }
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_max() {
        let first = Duration::from_millis(100);
        let max = Duration::from_secs(1);
        let table = [
            (1, 100),
            (2, 200),
            (3, 400),
            (4, 800),
            (5, 1000),
            (6, 1000),
            (40, 1000),
            (u32::MAX, 1000),
        ];
        for (resend_index, millis) in table {
            assert_eq!(
                backoff(resend_index, first, max),
                Duration::from_millis(millis),
                "resend {resend_index}"
            );
        }
        // The shift is capped, so a huge max cannot overflow the factor.
        assert_eq!(
            backoff(100, Duration::from_nanos(1), Duration::MAX),
            Duration::from_nanos(1 << 16)
        );
    }
}
