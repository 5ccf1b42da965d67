//! [`Consumer`]: reads the partitions of one topic from positions it tracks, with long-poll
//! fetches; [`decode_batches`]: turns fetched bytes into records.
//!
//! Lifecycle: [`Consumer::assign`] (or [`Consumer::assign_all`]) names the topic and
//! partitions; [`Consumer::seek`] sets a partition's position (an offset, or the earliest,
//! latest or first-at-a-timestamp offset, looked up with list-offsets); a partition without a
//! position starts at [`ConsumerOptions::start`] on the first poll. [`Consumer::poll`] sends one
//! fetch for every assigned partition (`bytes_min` 1, so the broker answers as soon as any has
//! data, or after `max_wait`), decodes the batches and advances the positions; before it
//! returns, it sends a fetch for the new positions that waits for data only briefly, so the broker
//! prepares the next answer while the caller handles this one (Kafka's consumer pipelines
//! the same way). The next poll uses its records; when it found none, failed, or a seek or an
//! assignment came in between, the poll fetches afresh.
//!
//! Trust: each fetched batch is verified (framing and CRC-32C, [`schema::batch::verify`])
//! before its records are read, and a record whose offset delta is out of order is refused. A
//! fetch returns whole batches, so records below the position in the first batch are skipped.
//!
//! A poll either succeeds for every partition or changes nothing: on a partition error
//! (`OffsetOutOfRange` included: the caller seeks) or a bad batch it returns the error and
//! leaves every position where it was. Records come back in offset order per partition. The
//! fetch, check, decode and advance are `poll.rs`'s, shared with the group member, which
//! resets a position out of the log instead.

use std::collections::BTreeMap;
use std::rc::Rc;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use schema::batch::{self, BatchError, RecordError};

use crate::client::{Client, OffsetQuery};
use crate::error::ClientError;
use crate::poll::{self, FetchLimits, OutOfRange, PartitionKey};

/// Where to move a partition's position.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SeekTo {
    /// The first offset still stored.
    Earliest,
    /// The next offset to be written: only records produced from now on.
    Latest,
    /// This offset.
    Offset(u64),
    /// The first batch with a timestamp at or after this (ms), or the log end if none.
    Timestamp(i64),
}

/// Settings of a [`Consumer`].
#[derive(Debug, Clone)]
pub struct ConsumerOptions {
    /// Where a partition without a position starts.
    pub start: SeekTo,
    /// Bytes per fetch response, over all partitions.
    pub fetch_bytes_max: u32,
    /// Bytes per partition in one fetch.
    pub partition_bytes_max: u32,
}

impl Default for ConsumerOptions {
    fn default() -> Self {
        ConsumerOptions {
            start: SeekTo::Latest,
            fetch_bytes_max: crate::poll::FETCH_BYTES_MAX_DEFAULT,
            partition_bytes_max: 4 << 20,
        }
    }
}

/// One record read from a partition. Key, value and header bytes are zero-copy slices of the
/// fetch response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumedRecord {
    /// The topic, shared by the records of one fetch (a `String` per record cost the
    /// consumer an allocation and a copy per record).
    pub topic: Arc<str>,
    /// The partition.
    pub partition: u32,
    /// The record's offset.
    pub offset: u64,
    /// The record's timestamp, ms (create time, or the broker's append time if the batch says
    /// so).
    pub timestamp_ms: i64,
    /// The key; `None` for a null key.
    pub key: Option<Bytes>,
    /// The value; `None` for a null value (a tombstone).
    pub value: Option<Bytes>,
    /// Headers in order; a header value may be null.
    pub headers: Vec<(Bytes, Option<Bytes>)>,
}

/// Reads assigned partitions of one topic. See the module documentation.
pub struct Consumer {
    client: Rc<Client>,
    options: ConsumerOptions,
    topic: String,
    /// Assigned partitions and their positions (the next offset to return); `None` until
    /// sought or first polled.
    positions: BTreeMap<u32, Option<u64>>,
    /// The fetch sent for the positions the last poll left, so the broker prepares it while
    /// the caller handles the records (Kafka's consumer does the same). Used by the next poll
    /// only if the positions are still those; otherwise dropped (the fetch only reads, and
    /// its task finishes on its own within its wait).
    prefetch: Option<Prefetch>,
}

/// The longest a fetch sent ahead waits for data. A fetch that does not wait at all came back
/// empty at the log end, and the poll after it paid a second round trip: consumption fell
/// from ~390 to ~280 MiB/s in closed loop. Long enough for the next batches of a busy topic
/// to arrive, short enough that what waits behind it on the connection hardly notices.
const PREFETCH_WAIT_MAX: Duration = Duration::from_millis(20);

/// A fetch running ahead of the next [`Consumer::poll`].
struct Prefetch {
    /// The positions it fetches from.
    positions: BTreeMap<PartitionKey, u64>,
    /// Its outcome; a detached task, so dropping this handle does not cancel the fetch
    /// mid-request.
    outcome: glommio::task::JoinHandle<Result<poll::Polled, ClientError>>,
}

impl Consumer {
    /// A consumer with nothing assigned, reading over `client`.
    pub fn new(client: Rc<Client>, options: ConsumerOptions) -> Consumer {
        Consumer {
            client,
            options,
            topic: String::new(),
            positions: BTreeMap::new(),
            prefetch: None,
        }
    }

    /// Reads `partitions` of `topic` from now on, replacing the previous assignment; their
    /// positions are unset.
    pub fn assign(&mut self, topic: &str, partitions: &[u32]) {
        self.topic = topic.to_string();
        self.positions = partitions
            .iter()
            .map(|&partition| (partition, None))
            .collect();
    }

    /// Assigns every partition of `topic` (from metadata) and returns them.
    pub async fn assign_all(&mut self, topic: &str) -> Result<Vec<u32>, ClientError> {
        let metadata = self.client.topic_metadata(topic).await?;
        let partitions: Vec<u32> = metadata
            .partitions
            .iter()
            .map(|entry| entry.partition)
            .collect();
        self.assign(topic, &partitions);
        Ok(partitions)
    }

    /// The assigned topic (empty before any assignment).
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The assigned partitions, in order.
    pub fn assignment(&self) -> Vec<u32> {
        self.positions.keys().copied().collect()
    }

    /// The next offset [`Consumer::poll`] returns for `partition`; `None` if it is not
    /// assigned or has no position yet.
    pub fn position(&self, partition: u32) -> Option<u64> {
        self.positions.get(&partition).copied().flatten()
    }

    /// Moves `partition`'s position and returns it. `Offset` is taken as given (a fetch
    /// outside the log then fails with `OffsetOutOfRange`); the others are looked up.
    pub async fn seek(&mut self, partition: u32, to: SeekTo) -> Result<u64, ClientError> {
        if !self.positions.contains_key(&partition) {
            return Err(ClientError::InvalidArgument {
                reason: format!("partition {partition} of {:?} is not assigned", self.topic),
            });
        }
        // One offset per partition asked for.
        let offset = self.look_up(&[partition], to).await?[0];
        self.positions.insert(partition, Some(offset));
        Ok(offset)
    }

    /// Fetches from every assigned partition, waiting up to `max_wait` for a record, and
    /// returns what came (possibly nothing), advancing the positions past it.
    pub async fn poll(&mut self, max_wait: Duration) -> Result<Vec<ConsumedRecord>, ClientError> {
        if self.positions.is_empty() {
            return Err(ClientError::InvalidArgument {
                reason: "no partitions are assigned".to_string(),
            });
        }
        self.start_unpositioned().await?;
        let positions: BTreeMap<PartitionKey, u64> = self
            .positions
            .iter()
            .filter_map(|(&partition, &position)| {
                Some(((self.topic.clone(), partition), position?))
            })
            .collect();
        let limits = FetchLimits {
            fetch_bytes_max: self.options.fetch_bytes_max,
            partition_bytes_max: self.options.partition_bytes_max,
        };
        let prefetched = match self.prefetch.take() {
            Some(prefetch) if prefetch.positions == positions => prefetch.outcome.await,
            // Sought or reassigned since: its records are not the ones asked for.
            Some(_) | None => None,
        };
        let polled = match prefetched {
            Some(Ok(polled)) if !polled.records.is_empty() => polled,
            // The broker's answer for these positions (a partition error): a fresh fetch
            // would get the same.
            Some(Err(error))
                if !matches!(
                    error,
                    ClientError::ConnectionLost { .. } | ClientError::Timeout { .. }
                ) =>
            {
                return Err(error);
            }
            // Nothing came within the fetch ahead's short wait (see `start_prefetch`), or the
            // connection failed while the caller was away (a fresh request reconnects):
            // fetch now, waiting as this call asks. The caller chose the positions: one
            // outside the log is theirs to move (seek).
            Some(_) | None => {
                poll::poll_once(&self.client, &positions, max_wait, limits, OutOfRange::Fail)
                    .await?
            }
        };
        for ((_, partition), next) in polled.positions {
            self.positions.insert(partition, Some(next));
        }
        self.start_prefetch(max_wait, limits);
        Ok(polled.records)
    }

    /// Sends the fetch the next poll will want (from the positions now), in a task of its own.
    /// It waits for data at most [`PREFETCH_WAIT_MAX`] (or the poll's wait, if shorter): the
    /// broker answers in request order, so a fetch parked at the log end between two polls
    /// holds back every later answer on the connection (a seek's lookup, a close) for as long
    /// as it waits. When it finds nothing, the next poll long-polls afresh.
    fn start_prefetch(&mut self, max_wait: Duration, limits: FetchLimits) {
        let wait = max_wait.min(PREFETCH_WAIT_MAX);
        let positions: BTreeMap<PartitionKey, u64> = self
            .positions
            .iter()
            .filter_map(|(&partition, &position)| {
                Some(((self.topic.clone(), partition), position?))
            })
            .collect();
        let client = self.client.clone();
        let fetched = positions.clone();
        let outcome = glommio::spawn_local(async move {
            poll::poll_once(&client, &fetched, wait, limits, OutOfRange::Fail).await
        })
        .detach();
        self.prefetch = Some(Prefetch { positions, outcome });
    }

    /// Gives every partition without a position its start position (one list-offsets).
    async fn start_unpositioned(&mut self) -> Result<(), ClientError> {
        let unset: Vec<u32> = self
            .positions
            .iter()
            .filter(|(_, position)| position.is_none())
            .map(|(&partition, _)| partition)
            .collect();
        if unset.is_empty() {
            return Ok(());
        }
        let offsets = self.look_up(&unset, self.options.start).await?;
        for (partition, offset) in unset.into_iter().zip(offsets) {
            self.positions.insert(partition, Some(offset));
        }
        Ok(())
    }

    /// The offsets `to` names for `partitions`, one per partition, in their order.
    async fn look_up(&self, partitions: &[u32], to: SeekTo) -> Result<Vec<u64>, ClientError> {
        let query = match to {
            SeekTo::Offset(offset) => return Ok(vec![offset; partitions.len()]),
            SeekTo::Earliest => OffsetQuery::Earliest,
            SeekTo::Latest => OffsetQuery::Latest,
            SeekTo::Timestamp(timestamp_ms) => OffsetQuery::Timestamp(timestamp_ms),
        };
        let keys: Vec<PartitionKey> = partitions
            .iter()
            .map(|&partition| (self.topic.clone(), partition))
            .collect();
        poll::look_up(&self.client, &keys, query).await
    }
}

/// Decodes the concatenated batches a fetch returned for one partition, appending to `out`
/// the records at or after `position`, in offset order. Returns the position after them: the
/// offset after the last batch, or `position` if there was nothing new.
///
/// Each batch is verified (framing, CRC-32C, codec) before its records are read; records must
/// carry offset deltas 0, 1, 2, ... A bad batch is an error naming its place in `batches`.
pub fn decode_batches(
    topic: &str,
    partition: u32,
    batches: &Bytes,
    position: u64,
    out: &mut Vec<ConsumedRecord>,
) -> Result<u64, ClientError> {
    let invalid = |at: usize, source: BatchError| ClientError::InvalidBatch {
        topic: topic.to_string(),
        partition,
        position: at,
        source,
    };
    let mut next = position;
    let mut at = 0;
    let shared_topic: Arc<str> = Arc::from(topic);
    while at < batches.len() {
        let rest = &batches[at..];
        let Some(total_bytes) = batch::total_bytes(rest).filter(|&total| total <= rest.len())
        else {
            return Err(invalid(at, BatchError::TooShort { bytes: rest.len() }));
        };
        let bytes = batches.slice(at..at + total_bytes);
        let header = batch::verify(&bytes).map_err(|error| invalid(at, error))?;
        let Ok(base_offset) = u64::try_from(header.base_offset) else {
            return Err(ClientError::Protocol {
                operation: "fetch",
                reason: format!(
                    "{topic}/{partition}: batch with negative base offset {}",
                    header.base_offset
                ),
            });
        };
        let log_append_time = header.log_append_time();
        let records = batch::records(&bytes).map_err(|error| invalid(at, error))?;
        for (index, record) in (0u32..).zip(records) {
            let record = record.map_err(|error| invalid(at, error))?;
            if i64::from(record.offset_delta) != i64::from(index) {
                let reason = RecordError::OffsetDeltaOutOfOrder {
                    expected: index,
                    found: record.offset_delta,
                };
                return Err(invalid(at, BatchError::Record { index, reason }));
            }
            let offset = base_offset + u64::from(index);
            if offset < position {
                continue;
            }
            let timestamp_ms = if log_append_time {
                header.max_timestamp
            } else {
                header.base_timestamp.saturating_add(record.timestamp_delta)
            };
            out.push(ConsumedRecord {
                topic: shared_topic.clone(),
                partition,
                offset,
                timestamp_ms,
                key: record.key.map(|key| bytes.slice_ref(key)),
                value: record.value.map(|value| bytes.slice_ref(value)),
                headers: record
                    .headers
                    .iter()
                    .map(|(key, value)| {
                        (
                            bytes.slice_ref(key),
                            value.map(|value| bytes.slice_ref(value)),
                        )
                    })
                    .collect(),
            });
        }
        // verify() checked last_offset_delta == record_count - 1 >= 0.
        let after = base_offset.saturating_add(header.last_offset_delta as u64 + 1);
        next = next.max(after);
        at += total_bytes;
    }
    Ok(next)
}
