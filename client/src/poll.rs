//! One poll of a set of partitions, shared by [`Consumer`] and [`GroupConsumer`]: fetch from
//! each partition's position, check every partition's error, decode the batches and work out
//! each partition's next position. [`check_fetched`] is the pure part (a fetch response and
//! the positions in, records and positions out); [`poll_once`] adds the I/O: the fetch itself,
//! and the list-offsets that moves a partition whose position fell out of the log.
//!
//! What a position outside the log means is the caller's policy ([`OutOfRange`]): a plain
//! consumer fails the poll (its caller chose the position and seeks), a group member moves
//! the partition to its `offset_reset` and goes on (Kafka's `auto.offset.reset`).
//!
//! A poll either gives every new position or none: on any error nothing is returned, so the
//! caller, which applies the new positions only on success, never moves a position past
//! records it did not hand out.
//!
//! [`look_up`] turns list-offsets queries into one offset per partition, for both consumers'
//! seeks, start positions and resets.
//!
//! [`Consumer`]: crate::Consumer
//! [`GroupConsumer`]: crate::GroupConsumer

use std::collections::BTreeMap;
use std::time::Duration;

use schema::wire::{ErrorCode, FetchPartitionOwned};

use crate::client::{Client, FetchArgs, Fetched, ListOffsetsItem, OffsetQuery};
use crate::consumer::{ConsumedRecord, decode_batches};
use crate::error::ClientError;

/// A partition: (topic, partition).
pub(crate) type PartitionKey = (String, u32);

/// What a poll does with a partition the broker answers `OffsetOutOfRange` for (its position
/// is below the log start, after retention, or past the log end).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OutOfRange {
    /// The poll fails with the partition's error, and no position moves.
    Fail,
    /// The partition moves to the offset this query finds; the poll goes on.
    Reset(OffsetQuery),
}

/// The default bytes per fetch response over all partitions, for [`crate::ConsumerOptions`]
/// and [`crate::GroupOptions`]: what one frame holds at the broker's default frame limit (the
/// broker cuts a larger ask to what fits its own). Kafka's consumer asks for up to 50 MiB. At 4
/// MiB a consumer behind the cache on 1,000 partitions got ~3 MiB per round trip and could not
/// catch up with one producer (140-166 against 200-244 MiB/s produced, closed loop); at 16 MiB it
/// kept up (182-192 of 182-192), and 16 partitions did no worse (perf-log.md, 2026-12-07
/// evening).
pub const FETCH_BYTES_MAX_DEFAULT: u32 = schema::wire::FRAME_BYTES_MAX_DEFAULT;

/// Byte limits of one fetch.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FetchLimits {
    /// Bytes per fetch response, over all partitions.
    pub fetch_bytes_max: u32,
    /// Bytes per partition.
    pub partition_bytes_max: u32,
}

/// What a fetch response means for the positions it was asked from.
#[derive(Debug, Default)]
pub(crate) struct Checked {
    /// The records at or after each partition's position, in offset order per partition.
    pub records: Vec<ConsumedRecord>,
    /// The next position of each partition that answered without error (its old position if
    /// nothing new came).
    pub advanced: Vec<(PartitionKey, u64)>,
    /// The partitions to reset (only with [`OutOfRange::Reset`]).
    pub out_of_range: Vec<PartitionKey>,
}

/// Checks and decodes a fetch response for `positions`, the partitions it was asked for and
/// their positions. An entry for a partition not asked for is ignored. Any partition error
/// (but `OffsetOutOfRange` under [`OutOfRange::Reset`]) fails the whole response, checked
/// before any batch is decoded; then a bad batch fails it.
pub(crate) fn check_fetched(
    fetched: &[Fetched],
    positions: &BTreeMap<PartitionKey, u64>,
    out_of_range: OutOfRange,
) -> Result<Checked, ClientError> {
    let asked = || {
        fetched.iter().filter_map(|entry| {
            let position = positions.get(&(entry.topic.clone(), entry.partition))?;
            Some((entry, *position))
        })
    };
    let mut checked = Checked::default();
    for (entry, _) in asked() {
        match (entry.error, out_of_range) {
            (ErrorCode::None, _) => {}
            (ErrorCode::OffsetOutOfRange, OutOfRange::Reset(_)) => {
                checked
                    .out_of_range
                    .push((entry.topic.clone(), entry.partition));
            }
            (code, _) => {
                return Err(ClientError::Partition {
                    topic: entry.topic.clone(),
                    partition: entry.partition,
                    code,
                    message: entry.message.clone(),
                });
            }
        }
    }
    for (entry, position) in asked() {
        if entry.error != ErrorCode::None {
            continue;
        }
        let next = decode_batches(
            &entry.topic,
            entry.partition,
            &entry.batches,
            position,
            &mut checked.records,
        )?;
        checked
            .advanced
            .push(((entry.topic.clone(), entry.partition), next));
    }
    Ok(checked)
}

/// What [`poll_once`] got.
#[derive(Debug, Default)]
pub(crate) struct Polled {
    /// The records, in offset order per partition.
    pub records: Vec<ConsumedRecord>,
    /// The new position of each partition that moved or answered (advanced past the records,
    /// or reset); apply all of them.
    pub positions: Vec<(PartitionKey, u64)>,
}

/// Fetches from every partition of `positions` (long-polling up to `wait_max` for any record),
/// checks and decodes the answer ([`check_fetched`]) and resets the partitions out of range
/// as `out_of_range` says. On an error nothing is returned, so no position moves.
pub(crate) async fn poll_once(
    client: &Client,
    positions: &BTreeMap<PartitionKey, u64>,
    wait_max: Duration,
    limits: FetchLimits,
    out_of_range: OutOfRange,
) -> Result<Polled, ClientError> {
    let partitions = positions
        .iter()
        .map(|((topic, partition), &offset)| FetchPartitionOwned {
            topic: topic.clone(),
            partition: *partition,
            offset,
            bytes_max: limits.partition_bytes_max,
        })
        .collect();
    let args = FetchArgs {
        wait_max,
        bytes_min: 1,
        bytes_max: limits.fetch_bytes_max,
        partitions,
    };
    let fetched = client.fetch(args).await?;
    let checked = check_fetched(&fetched, positions, out_of_range)?;
    let mut polled = Polled {
        records: checked.records,
        positions: checked.advanced,
    };
    if let OutOfRange::Reset(query) = out_of_range
        && !checked.out_of_range.is_empty()
    {
        let offsets = look_up(client, &checked.out_of_range, query).await?;
        for (key, offset) in checked.out_of_range.into_iter().zip(offsets) {
            tracing::warn!(topic = %key.0, partition = key.1, offset,
                "position out of the log: reset");
            polled.positions.push((key, offset));
        }
    }
    Ok(polled)
}

/// The offset `query` finds in each of `partitions`, in their order (one list-offsets request;
/// none when `partitions` is empty). A partition's error fails the call, and so does a
/// partition the broker did not answer for.
pub(crate) async fn look_up(
    client: &Client,
    partitions: &[PartitionKey],
    query: OffsetQuery,
) -> Result<Vec<u64>, ClientError> {
    if partitions.is_empty() {
        return Ok(Vec::new());
    }
    let items = partitions
        .iter()
        .map(|(topic, partition)| ListOffsetsItem {
            topic: topic.clone(),
            partition: *partition,
            query,
        })
        .collect();
    let found: BTreeMap<PartitionKey, u64> = client
        .list_offsets_all(items)
        .await?
        .into_iter()
        .map(|result| ((result.topic, result.partition), result.offset))
        .collect();
    partitions
        .iter()
        .map(|key| {
            found
                .get(key)
                .copied()
                .ok_or_else(|| ClientError::Protocol {
                    operation: "list_offsets",
                    reason: format!("no result for {}/{}", key.0, key.1),
                })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use schema::batch::{BatchBuilder, set_base_offset};

    use super::*;

    /// A stored batch of `count` records at `base_offset`.
    fn stored_batch(base_offset: u64, count: u64) -> Vec<u8> {
        let mut builder = BatchBuilder::new(0);
        for offset in base_offset..base_offset + count {
            builder.push(None, Some(format!("v{offset}").as_bytes()), 0, &[]);
        }
        let mut batch = builder.finish();
        set_base_offset(&mut batch, base_offset as i64);
        batch
    }

    fn entry(topic: &str, partition: u32, error: ErrorCode, batches: Vec<u8>) -> Fetched {
        Fetched {
            topic: topic.to_string(),
            partition,
            error,
            message: format!("{error:?}"),
            log_start: 0,
            log_end: 100,
            batches: Bytes::from(batches),
        }
    }

    fn key(topic: &str, partition: u32) -> PartitionKey {
        (topic.to_string(), partition)
    }

    /// Partitions t/0 at 5 and t/1 at 10.
    fn positions() -> BTreeMap<PartitionKey, u64> {
        BTreeMap::from([(key("t", 0), 5), (key("t", 1), 10)])
    }

    const RESET: OutOfRange = OutOfRange::Reset(OffsetQuery::Earliest);

    #[test]
    fn positions_advance_past_the_batches_and_skip_records_below_them() {
        let fetched = [
            // 3..7: the consumer at 5 gets 5 and 6.
            entry("t", 0, ErrorCode::None, stored_batch(3, 4)),
            // Nothing new: the position stays.
            entry("t", 1, ErrorCode::None, Vec::new()),
        ];
        for policy in [OutOfRange::Fail, RESET] {
            let checked = check_fetched(&fetched, &positions(), policy).expect("checked");
            let offsets: Vec<(u32, u64)> = checked
                .records
                .iter()
                .map(|record| (record.partition, record.offset))
                .collect();
            assert_eq!(offsets, [(0, 5), (0, 6)], "{policy:?}");
            assert_eq!(checked.advanced, [(key("t", 0), 7), (key("t", 1), 10)]);
            assert!(checked.out_of_range.is_empty());
        }
    }

    #[test]
    fn a_partition_error_fails_the_whole_response() {
        // The error comes after a good partition: its records must not be handed out, nor
        // its position moved, or a retried poll would skip them.
        let fetched = [
            entry("t", 0, ErrorCode::None, stored_batch(5, 2)),
            entry("t", 1, ErrorCode::Corruption, Vec::new()),
        ];
        for policy in [OutOfRange::Fail, RESET] {
            let error = check_fetched(&fetched, &positions(), policy).expect_err("fails");
            assert_eq!(error.code(), Some(ErrorCode::Corruption), "{policy:?}");
        }
    }

    #[test]
    fn the_policy_decides_what_out_of_range_does() {
        let fetched = [
            entry("t", 0, ErrorCode::None, stored_batch(5, 2)),
            entry("t", 1, ErrorCode::OffsetOutOfRange, Vec::new()),
        ];
        let error = check_fetched(&fetched, &positions(), OutOfRange::Fail).expect_err("fails");
        let ClientError::Partition {
            topic,
            partition,
            code,
            message,
        } = error
        else {
            panic!("a partition error: {error:?}");
        };
        assert_eq!((topic.as_str(), partition), ("t", 1));
        assert_eq!(code, ErrorCode::OffsetOutOfRange);
        assert_eq!(message, "OffsetOutOfRange", "the broker's message is kept");

        let checked = check_fetched(&fetched, &positions(), RESET).expect("checked");
        assert_eq!(checked.records.len(), 2);
        assert_eq!(checked.advanced, [(key("t", 0), 7)]);
        assert_eq!(checked.out_of_range, [key("t", 1)]);
    }

    #[test]
    fn partition_errors_win_over_bad_batches() {
        let mut corrupt = stored_batch(5, 2);
        let last = corrupt.len() - 1;
        corrupt[last] ^= 0xff;
        let fetched = [
            entry("t", 0, ErrorCode::None, corrupt.clone()),
            entry("t", 1, ErrorCode::StorageFailed, Vec::new()),
        ];
        let error = check_fetched(&fetched, &positions(), RESET).expect_err("fails");
        assert_eq!(error.code(), Some(ErrorCode::StorageFailed));

        let fetched = [entry("t", 0, ErrorCode::None, corrupt)];
        let error = check_fetched(&fetched, &positions(), RESET).expect_err("fails");
        assert!(
            matches!(error, ClientError::InvalidBatch { partition: 0, .. }),
            "{error:?}"
        );
    }

    #[test]
    fn entries_not_asked_for_are_ignored() {
        let fetched = [
            entry("other", 0, ErrorCode::Corruption, Vec::new()),
            entry("t", 7, ErrorCode::None, stored_batch(0, 3)),
            entry("t", 0, ErrorCode::None, stored_batch(5, 1)),
        ];
        let checked = check_fetched(&fetched, &positions(), OutOfRange::Fail).expect("checked");
        assert_eq!(checked.records.len(), 1);
        assert_eq!(checked.advanced, [(key("t", 0), 6)]);
    }
}
