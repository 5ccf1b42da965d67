//! `ringbus group list | describe | reset`: consumer groups and their committed offsets.
//!
//! Output (stdout, space-separated, one line each):
//! - `list`: `GROUP STATE MEMBERS`, sorted by group, e.g. `billing Stable 3`; a group with only
//!   committed offsets is `Empty` with 0 members.
//! - `describe G`: a header line `TOPIC PARTITION COMMITTED LOG_END LAG OWNER`, then one line
//!   per partition of every topic the group has offsets for or subscribes to. COMMITTED, LAG
//!   and OWNER are `-` when the partition has no committed offset or no owner. LAG is
//!   LOG_END - COMMITTED.
//! - `reset G --topic T (--to-earliest | --to-latest | --to-offset N) [--partition P]`: one line
//!   per partition, `TOPIC PARTITION OFFSET`, the offset now committed. Only for a group
//!   without members (the broker refuses otherwise, and so does the command).
//!
//! Errors go to stderr with a non-zero exit.

use std::collections::{BTreeMap, BTreeSet};

use client::{ErrorCode, ListOffsetsItem, OffsetQuery};
use schema::wire::{GroupState, PartitionOffsetOwned};

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
    /// partition; "-" where there is no committed offset or no owner.
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
