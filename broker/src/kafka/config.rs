//! The Kafka listener's configuration as `ringbus serve` takes it, and the settings every
//! Kafka connection of a shard reads (a plain copy per shard).

/// The Kafka listener's configuration (`ringbus serve --kafka-*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaConfig {
    /// Address to listen on (port 0: pick one).
    pub listen: std::net::SocketAddr,
    /// The address Metadata gives clients (None: the bound listen address).
    pub advertise: Option<Advertised>,
    /// Partitions of a topic created because a client named it (None: topics are not created
    /// that way; such requests get UNKNOWN_TOPIC_OR_PARTITION).
    pub auto_create_partitions: Option<u32>,
}

/// A host and port as clients should reach the broker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advertised {
    /// Host name or address.
    pub host: String,
    /// Port.
    pub port: u16,
}

impl std::str::FromStr for Advertised {
    type Err = String;

    /// `HOST:PORT`, the host a name, an IPv4 address or a bracketed IPv6 address.
    fn from_str(text: &str) -> Result<Advertised, String> {
        let (host, port) = text
            .rsplit_once(':')
            .ok_or_else(|| format!("{text:?}: expected HOST:PORT"))?;
        let port: u16 = port
            .parse()
            .map_err(|_| format!("{text:?}: {port:?} is not a port"))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if host.is_empty() || port == 0 {
            return Err(format!("{text:?}: expected HOST:PORT with a port above 0"));
        }
        Ok(Advertised {
            host: host.to_string(),
            port,
        })
    }
}

/// What every Kafka connection on a shard needs to know: a copy per shard.
#[derive(Debug, Clone)]
pub struct KafkaSettings {
    /// The address Metadata advertises.
    pub advertised: Advertised,
    /// See [`KafkaConfig::auto_create_partitions`].
    pub auto_create_partitions: Option<u32>,
}
