//! `ringbus topic create | list | describe | delete`.
//!
//! Output (stdout): `create` prints `Created topic NAME.`, `delete` prints `Deleted topic NAME.`,
//! `list` prints one topic name per line (sorted; the broker's internal topics, whose names
//! start with `__`, only with `--internal`), `describe` prints one line per partition:
//! `PARTITION SHARD LOG_START LOG_END`, space-separated, e.g. `0 1 0 42` (a partition the broker
//! could not describe gets a fifth field, its error code, and the command fails). Errors go to
//! stderr with a non-zero exit.

use client::{ErrorCode, TopicConfigOwned};

use crate::common::{self, ConnectArgs};

/// Topic administration.
#[derive(clap::Subcommand)]
pub enum TopicCommand {
    /// Create a topic.
    ///
    /// Settings left out (or 0) take the broker's defaults; -1 means unlimited.
    ///
    /// Example: ringbus topic create events --partitions 3 --retention-ms 86400000
    Create(CreateArgs),
    /// List topic names, one per line.
    ///
    /// The broker's internal topics (`__consumer_offsets`) are listed only with --internal.
    ///
    /// Example: ringbus topic list --broker 127.0.0.1:9292
    List(ListArgs),
    /// Describe a topic: one line per partition, "PARTITION SHARD LOG_START LOG_END".
    ///
    /// SHARD is the broker core that owns the partition; LOG_START is the first offset still
    /// stored and LOG_END the next offset to be written. Example output line: "0 1 0 42".
    ///
    /// Example: ringbus topic describe events
    Describe(DescribeArgs),
    /// Delete a topic and all its data.
    ///
    /// Example: ringbus topic delete events
    Delete(DeleteArgs),
}

/// `topic create`.
#[derive(clap::Args)]
pub struct CreateArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// The topic name.
    name: String,
    /// Number of partitions.
    #[arg(long, value_parser = clap::value_parser!(u32).range(1..))]
    partitions: u32,
    /// Delete data older than this many milliseconds (-1: keep forever).
    #[arg(long, allow_negative_numbers = true)]
    retention_ms: Option<i64>,
    /// Delete the oldest data once a partition holds more than this many bytes (-1: no limit).
    #[arg(long, allow_negative_numbers = true)]
    retention_bytes: Option<i64>,
    /// Roll to a new segment file at this many bytes.
    #[arg(long)]
    segment_bytes: Option<i64>,
}

/// `topic list`.
#[derive(clap::Args)]
pub struct ListArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// Also list the broker's internal topics (names starting with `__`).
    #[arg(long)]
    internal: bool,
}

/// `topic describe`.
#[derive(clap::Args)]
pub struct DescribeArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// The topic name.
    name: String,
}

/// `topic delete`.
#[derive(clap::Args)]
pub struct DeleteArgs {
    #[command(flatten)]
    connect: ConnectArgs,
    /// The topic name.
    name: String,
}

/// Runs a topic subcommand.
pub fn run(command: TopicCommand) -> Result<(), String> {
    match command {
        TopicCommand::Create(args) => create(args),
        TopicCommand::List(args) => list(args),
        TopicCommand::Describe(args) => describe(args),
        TopicCommand::Delete(args) => delete(args),
    }
}

fn create(args: CreateArgs) -> Result<(), String> {
    let address = args.connect.address()?;
    let config = TopicConfigOwned {
        retention_ms: args.retention_ms.unwrap_or(0),
        retention_bytes: args.retention_bytes.unwrap_or(0),
        segment_bytes: args.segment_bytes.unwrap_or(0),
    };
    common::run(async {
        let client = args.connect.connect(address).await?;
        client
            .create_topic(&args.name, args.partitions, config)
            .await
            .map_err(|error| error.to_string())?;
        println!("Created topic {}.", args.name);
        let _ = client.close().await;
        Ok(())
    })
}

fn list(args: ListArgs) -> Result<(), String> {
    let address = args.connect.address()?;
    common::run(async {
        let client = args.connect.connect(address).await?;
        let topics = client
            .metadata(&[])
            .await
            .map_err(|error| error.to_string())?;
        let mut names: Vec<&str> = topics
            .iter()
            .map(|topic| topic.name.as_str())
            .filter(|name| args.internal || !name.starts_with("__"))
            .collect();
        names.sort_unstable();
        for name in names {
            println!("{name}");
        }
        let _ = client.close().await;
        Ok(())
    })
}

fn describe(args: DescribeArgs) -> Result<(), String> {
    let address = args.connect.address()?;
    common::run(async {
        let client = args.connect.connect(address).await?;
        let topics = client
            .metadata(std::slice::from_ref(&args.name))
            .await
            .map_err(|error| error.to_string())?;
        let _ = client.close().await;
        let Some(topic) = topics.iter().find(|topic| topic.name == args.name) else {
            return Err(format!("the broker did not describe topic {:?}", args.name));
        };
        if topic.error == ErrorCode::UnknownTopic {
            return Err(format!("unknown topic {:?}", args.name));
        }
        if topic.error != ErrorCode::None {
            return Err(format!("topic {:?}: {:?}", args.name, topic.error));
        }
        let mut failed = 0;
        for partition in &topic.partitions {
            if partition.error == ErrorCode::None {
                println!(
                    "{} {} {} {}",
                    partition.partition, partition.shard, partition.log_start, partition.log_end
                );
            } else {
                failed += 1;
                println!(
                    "{} {} {} {} {:?}",
                    partition.partition,
                    partition.shard,
                    partition.log_start,
                    partition.log_end,
                    partition.error
                );
            }
        }
        if failed > 0 {
            return Err(format!(
                "{failed} partitions of {:?} could not be described",
                args.name
            ));
        }
        Ok(())
    })
}

fn delete(args: DeleteArgs) -> Result<(), String> {
    let address = args.connect.address()?;
    common::run(async {
        let client = args.connect.connect(address).await?;
        client
            .delete_topic(&args.name)
            .await
            .map_err(|error| error.to_string())?;
        println!("Deleted topic {}.", args.name);
        let _ = client.close().await;
        Ok(())
    })
}
