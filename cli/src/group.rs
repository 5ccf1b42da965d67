//! `ringbus group list | describe | reset`: consumer groups and their committed offsets.
//!
//! Output (stdout, space-separated, one line each):
//! - `list`: `GROUP STATE MEMBERS`, sorted by group, e.g. `billing Stable 3`; a group with only
//!   committed offsets is `Empty` with 0 members.
//! - `describe G`: a header line `TOPIC PARTITION COMMITTED LOG_END LAG OWNER`, then one line
//!   per partition of every topic the group has offsets for or subscribes to. COMMITTED, LAG
//!   and OWNER are `-` when the partition has no committed offset or no owner. LAG is
//!   LOG_END - COMMITTED. Before it, on stderr: `group G: STATE, generation N, M members`,
//!   and a line on when the group's offsets expire (`--offsets-retention-ms`): `offsets: kept
//!   while the group has members, then for 7d`, `offsets: no members since TIME; they expire
//!   at TIME (in 6d 23h 59m 58s)` (TIME in UTC, RFC 3339; `from TIME (..) to TIME (..)` when
//!   they expire at different times), `offsets: none committed`, or `offsets: never expire`.
//! - `reset G --topic T (--to-earliest | --to-latest | --to-offset N) [--partition P]`: one line
//!   per partition, `TOPIC PARTITION OFFSET`, the offset now committed. Only for a group
//!   without members (the broker refuses otherwise, and so does the command).
//!
//! Errors go to stderr with a non-zero exit.

use std::collections::{BTreeMap, BTreeSet};

use client::{ErrorCode, ListOffsetsItem, OffsetQuery};
use schema::wire::{GroupDescriptionOwned, GroupState, PartitionOffsetOwned};

use crate::common::{self, ConnectArgs};

/// Consumer-group administration.
#[derive(clap::Subcommand)]
pub enum GroupCommand {
    /// List consumer groups: "GROUP STATE MEMBERS" per line.
    ///
    /// Example: ringbus group list
    List(ListArgs),
    /// Describe a group: per partition its committed offset, log end, lag and owning member.
    ///
    /// Output: a header "TOPIC PARTITION COMMITTED LOG_END LAG OWNER", then one line per
    /// partition; "-" where there is no committed offset or no owner. On stderr: the group's
    /// state, and when its committed offsets expire (the broker's --offsets-retention-ms).
    ///
    /// Example: ringbus group describe billing
    Describe(DescribeArgs),
    /// Reset a group's committed offsets for a topic (only while the group has no members).
    ///
    /// Example: ringbus group reset billing --topic orders --to-earliest
    Reset(ResetArgs),
}

/// `group list`.
#[derive(clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    connect: ConnectArgs,
}

/// `group describe`.
#[derive(clap::Args)]
pub struct DescribeArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// The group.
    group: String,
}

/// `group reset`.
#[derive(clap::Args)]
#[command(group(clap::ArgGroup::new("to").required(true).args(["to_earliest", "to_latest", "to_offset"])))]
pub struct ResetArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// The group.
    group: String,
    /// The topic whose offsets to reset.
    #[arg(long)]
    topic: String,
    /// Only this partition (default: every partition of the topic).
    #[arg(long)]
    partition: Option<u32>,
    /// To the first offset still stored.
    #[arg(long)]
    to_earliest: bool,
    /// To the log end (skip everything stored so far).
    #[arg(long)]
    to_latest: bool,
    /// To this offset.
    #[arg(long)]
    to_offset: Option<u64>,
}

/// Runs a group subcommand.
pub fn run(command: GroupCommand) -> Result<(), String> {
    match command {
        GroupCommand::List(args) => list(args),
        GroupCommand::Describe(args) => describe(args),
        GroupCommand::Reset(args) => reset(args),
    }
}

fn state_name(state: GroupState) -> &'static str {
    state.variant_name().unwrap_or("Unknown")
}

fn list(args: ListArgs) -> Result<(), String> {
    let address = args.connect.address()?;
    common::run(async {
        let client = args.connect.connect(address).await?;
        let groups = client
            .list_groups()
            .await
            .map_err(|error| error.to_string())?;
        for group in groups {
            println!(
                "{} {} {}",
                group.group,
                state_name(group.state),
                group.member_count
            );
        }
        let _ = client.close().await;
        Ok(())
    })
}

fn describe(args: DescribeArgs) -> Result<(), String> {
    let address = args.connect.address()?;
    common::run(async {
        let client = args.connect.connect(address).await?;
        let error = |error: client::ClientError| error.to_string();
        let description = client.describe_group(&args.group).await.map_err(error)?;
        let committed = client
            .fetch_offsets(&args.group, &[])
            .await
            .map_err(error)?;
        let mut owners: BTreeMap<(String, u32), String> = BTreeMap::new();
        let mut topics: BTreeSet<String> = BTreeSet::new();
        for member in &description.members {
            topics.extend(member.topics.iter().cloned());
            for assigned in &member.assignment {
                for partition in &assigned.partitions {
                    owners.insert(
                        (assigned.topic.clone(), *partition),
                        member.member_id.clone(),
                    );
                }
            }
        }
        let committed: BTreeMap<(String, u32), u64> = committed
            .into_iter()
            .map(|entry| ((entry.topic, entry.partition), entry.offset))
            .collect();
        topics.extend(committed.keys().map(|(topic, _)| topic.clone()));
        eprintln!(
            "group {}: {}, generation {}, {} members",
            args.group,
            state_name(description.state),
            description.generation,
            description.members.len()
        );
        eprintln!("{}", retention_line(&description, now_ms()));
        println!("TOPIC PARTITION COMMITTED LOG_END LAG OWNER");
        let names: Vec<String> = topics.into_iter().collect();
        for topic in client.metadata(&names).await.map_err(error)? {
            if topic.error != ErrorCode::None {
                eprintln!("{}: {:?}", topic.name, topic.error);
                continue;
            }
            for partition in &topic.partitions {
                let key = (topic.name.clone(), partition.partition);
                let offset = committed.get(&key);
                let lag = offset.map_or("-".to_string(), |offset| {
                    partition.log_end.saturating_sub(*offset).to_string()
                });
                println!(
                    "{} {} {} {} {} {}",
                    topic.name,
                    partition.partition,
                    offset.map_or("-".to_string(), u64::to_string),
                    partition.log_end,
                    lag,
                    owners.get(&key).map_or("-", String::as_str)
                );
            }
        }
        let _ = client.close().await;
        Ok(())
    })
}

/// Wall-clock milliseconds since the Unix epoch, the broker's clock for offsets retention.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64)
}

/// What `describe` says of when a group's offsets expire, at `now_ms`.
fn retention_line(description: &GroupDescriptionOwned, now_ms: i64) -> String {
    let retention_ms = description.offsets_retention_ms;
    if retention_ms == 0 {
        return "offsets: never expire (the broker runs with --offsets-retention-ms 0)".to_string();
    }
    let retention = duration(i64::try_from(retention_ms).unwrap_or(i64::MAX));
    if !description.members.is_empty() {
        return format!("offsets: kept while the group has members, then for {retention}");
    }
    let (Some(empty_since_ms), Some(first_ms), Some(last_ms)) = (
        description.empty_since_ms,
        description.offsets_first_expiry_ms,
        description.offsets_last_expiry_ms,
    ) else {
        return "offsets: none committed".to_string();
    };
    let when = |at_ms: i64| {
        if at_ms <= now_ms {
            format!("{} (due now)", utc(at_ms))
        } else {
            format!("{} (in {})", utc(at_ms), duration(at_ms - now_ms))
        }
    };
    let expire = if first_ms == last_ms {
        format!("at {}", when(first_ms))
    } else {
        format!("from {} to {}", when(first_ms), when(last_ms))
    };
    format!(
        "offsets: no members since {}; they expire {expire}, {retention} after it or after \
         their commit",
        utc(empty_since_ms)
    )
}

/// A span of milliseconds as days, hours, minutes and seconds, e.g. `6d 23h 5s`, `7d`, `0s`
/// (whole seconds, rounded down; below a second is `0s`).
fn duration(ms: i64) -> String {
    let seconds = ms.max(0) / 1_000;
    let parts = [
        (seconds / 86_400, "d"),
        (seconds % 86_400 / 3_600, "h"),
        (seconds % 3_600 / 60, "m"),
        (seconds % 60, "s"),
    ];
    let text: Vec<String> = parts
        .iter()
        .filter(|(count, _)| *count > 0)
        .map(|(count, unit)| format!("{count}{unit}"))
        .collect();
    if text.is_empty() {
        "0s".to_string()
    } else {
        text.join(" ")
    }
}

/// Milliseconds since the Unix epoch as an RFC 3339 UTC time, to the second, e.g.
/// `2000-02-29T00:00:00Z`.
fn utc(ms: i64) -> String {
    let seconds = ms.div_euclid(1_000);
    let (days, second_of_day) = (seconds.div_euclid(86_400), seconds.rem_euclid(86_400));
    // Days since 1970-01-01 to a civil date: Howard Hinnant's `civil_from_days`, counting in
    // 400-year eras from 0000-03-01 so that the leap day ends each year.
    let shifted = days + 719_468;
    let era = shifted.div_euclid(146_097);
    let day_of_era = shifted.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1_460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let month_from_march = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * month_from_march + 2) / 5 + 1;
    let month = if month_from_march < 10 {
        month_from_march + 3
    } else {
        month_from_march - 9
    };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        second_of_day / 3_600,
        second_of_day % 3_600 / 60,
        second_of_day % 60
    )
}

fn reset(args: ResetArgs) -> Result<(), String> {
    let address = args.connect.address()?;
    common::run(async {
        let client = args.connect.connect(address).await?;
        let error = |error: client::ClientError| error.to_string();
        let description = client.describe_group(&args.group).await.map_err(error)?;
        if !description.members.is_empty() {
            return Err(format!(
                "group {} has {} active members: stop them first (offsets are reset only while \
                 a group has no members)",
                args.group,
                description.members.len()
            ));
        }
        let metadata = client.topic_metadata(&args.topic).await.map_err(error)?;
        let partitions: Vec<u32> = match args.partition {
            Some(partition) => vec![partition],
            None => metadata
                .partitions
                .iter()
                .map(|entry| entry.partition)
                .collect(),
        };
        let offsets: Vec<(u32, u64)> = match args.to_offset {
            Some(offset) => partitions
                .iter()
                .map(|&partition| (partition, offset))
                .collect(),
            None => {
                let query = if args.to_earliest {
                    OffsetQuery::Earliest
                } else {
                    OffsetQuery::Latest
                };
                let items = partitions
                    .iter()
                    .map(|&partition| ListOffsetsItem {
                        topic: args.topic.clone(),
                        partition,
                        query,
                    })
                    .collect();
                client
                    .list_offsets_all(items)
                    .await
                    .map_err(error)?
                    .into_iter()
                    .map(|result| (result.partition, result.offset))
                    .collect()
            }
        };
        let entries = offsets
            .iter()
            .map(|&(partition, offset)| PartitionOffsetOwned {
                topic: args.topic.clone(),
                partition,
                offset,
            })
            .collect();
        let results = client
            .commit_offsets(&args.group, "", -1, entries, true)
            .await
            .map_err(error)?;
        let mut failed = Vec::new();
        for ((partition, offset), result) in offsets.into_iter().zip(results) {
            if result.error == ErrorCode::None {
                println!("{} {partition} {offset}", args.topic);
            } else {
                failed.push(format!(
                    "{}/{partition}: {:?} {}",
                    args.topic, result.error, result.message
                ));
            }
        }
        let _ = client.close().await;
        if failed.is_empty() {
            Ok(())
        } else {
            Err(failed.join("; "))
        }
    })
}

#[cfg(test)]
mod tests {
    use schema::wire::{Assignor, GroupMemberOwned};

    use super::*;

    #[test]
    fn times_are_utc_and_spans_are_days_to_seconds() {
        assert_eq!(utc(0), "1970-01-01T00:00:00Z");
        assert_eq!(utc(951_782_400_000), "2000-02-29T00:00:00Z");
        assert_eq!(utc(1_767_225_599_999), "2025-12-31T23:59:59Z");
        assert_eq!(utc(-1), "1969-12-31T23:59:59Z");
        assert_eq!(duration(604_800_000), "7d");
        assert_eq!(duration(90_061_999), "1d 1h 1m 1s");
        assert_eq!(duration(3_600_005), "1h");
        assert_eq!(duration(999), "0s");
    }

    #[test]
    fn the_retention_line_says_when_offsets_expire() {
        let mut description = GroupDescriptionOwned {
            state: GroupState::Empty,
            generation: 3,
            assignor: Assignor::Range,
            members: Vec::new(),
            offsets_retention_ms: 604_800_000,
            empty_since_ms: Some(951_782_400_000),
            offsets_first_expiry_ms: Some(952_387_200_000),
            offsets_last_expiry_ms: Some(952_387_200_000),
        };
        let now_ms = 951_782_400_000 + 1_000;
        assert_eq!(
            retention_line(&description, now_ms),
            "offsets: no members since 2000-02-29T00:00:00Z; they expire at \
             2000-03-07T00:00:00Z (in 6d 23h 59m 59s), 7d after it or after their commit"
        );
        description.offsets_last_expiry_ms = Some(952_387_260_000);
        assert!(
            retention_line(&description, 952_387_200_000)
                .contains("from 2000-03-07T00:00:00Z (due now) to 2000-03-07T00:01:00Z (in 1m)")
        );
        description.members.push(GroupMemberOwned {
            member_id: "m-1".to_string(),
            client_id: "c".to_string(),
            topics: Vec::new(),
            assignment: Vec::new(),
        });
        assert_eq!(
            retention_line(&description, now_ms),
            "offsets: kept while the group has members, then for 7d"
        );
        description.members.clear();
        description.empty_since_ms = None;
        description.offsets_first_expiry_ms = None;
        description.offsets_last_expiry_ms = None;
        assert_eq!(
            retention_line(&description, now_ms),
            "offsets: none committed"
        );
        description.offsets_retention_ms = 0;
        assert!(retention_line(&description, now_ms).starts_with("offsets: never expire"));
    }
}
