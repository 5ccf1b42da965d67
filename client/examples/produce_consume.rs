//! Produces a few keyed records to a topic and reads them back.
//!
//! Usage: `cargo run -p client --example produce_consume -- 127.0.0.1:9292 [TOPIC]`
//! (start a broker first: `ringbus serve --data-dir DIR --listen 127.0.0.1:9292`). The topic
//! (default `example`) is created with 2 partitions if it does not exist yet.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use client::{
    Client, ClientError, ClientOptions, Consumer, ConsumerOptions, ErrorCode, Producer,
    ProducerOptions, ProducerRecord, SeekTo, TopicConfigOwned,
};

const RECORD_COUNT: usize = 6;

fn main() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let address: SocketAddr = args
        .next()
        .ok_or("usage: produce_consume HOST:PORT [TOPIC]")?
        .parse()
        .map_err(|error| format!("invalid address: {error}"))?;
    let topic = args.next().unwrap_or_else(|| "example".to_string());
    let executor = glommio::LocalExecutorBuilder::default()
        .io_memory(1 << 20)
        .make()
        .map_err(|error| error.to_string())?;
    executor
        .run(produce_consume(address, &topic))
        .map_err(|error| error.to_string())
}

async fn produce_consume(address: SocketAddr, topic: &str) -> Result<(), ClientError> {
    let client = Rc::new(Client::connect(address, ClientOptions::default()).await?);
    match client
        .create_topic(topic, 2, TopicConfigOwned::default())
        .await
    {
        Err(error) if error.code() == Some(ErrorCode::TopicAlreadyExists) => {}
        other => other?,
    }

    // Send every record first, then wait for the acknowledgements: they are pipelined.
    let producer = Producer::new(client.clone(), ProducerOptions::default());
    let mut deliveries = Vec::new();
    for index in 0..RECORD_COUNT {
        let record =
            ProducerRecord::new(topic, format!("value-{index}")).key(format!("key-{}", index % 3));
        deliveries.push(producer.send(record).await?);
    }
    producer.flush().await;
    // The first offset each partition got from us: where to read from.
    let mut first_offsets: BTreeMap<u32, u64> = BTreeMap::new();
    for delivery in deliveries {
        let stored = delivery.await?;
        let offset = stored.offset.unwrap_or_default();
        println!(
            "produced to partition {} at offset {offset}",
            stored.partition
        );
        let first = first_offsets.entry(stored.partition).or_insert(offset);
        *first = (*first).min(offset);
    }

    let mut consumer = Consumer::new(client.clone(), ConsumerOptions::default());
    let partitions: Vec<u32> = first_offsets.keys().copied().collect();
    consumer.assign(topic, &partitions);
    for (&partition, &offset) in &first_offsets {
        consumer.seek(partition, SeekTo::Offset(offset)).await?;
    }
    let mut received = 0;
    while received < RECORD_COUNT {
        let records = consumer.poll(Duration::from_secs(5)).await?;
        if records.is_empty() {
            println!("no more records after {received}");
            break;
        }
        for record in records {
            received += 1;
            let key = record.key.as_deref().map(String::from_utf8_lossy);
            let value = record.value.as_deref().map(String::from_utf8_lossy);
            println!(
                "consumed partition {} offset {}: {key:?} = {value:?}",
                record.partition, record.offset
            );
        }
    }
    client.close().await
}
