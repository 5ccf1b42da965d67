//! What every client subcommand shares: the `--broker`, `--request-timeout-ms` and
//! `--reconnect-timeout-ms` options, the connection, and the one unpinned glommio executor each
//! command runs on.

use std::future::Future;
use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use client::{Client, ClientOptions};

/// How to reach the broker.
#[derive(clap::Args, Debug, Clone)]
pub struct ConnectArgs {
    /// The broker's address, HOST:PORT.
    #[arg(long, env = "RINGBUS_BROKER", default_value = "127.0.0.1:9292")]
    pub broker: String,
    /// How long to wait for each response, in milliseconds.
    #[arg(long, default_value_t = 30_000)]
    pub request_timeout_ms: u64,
    /// How long to keep trying to reach the broker when it is not up yet or the connection
    /// was lost (a broker restart), in milliseconds; 0 fails at once.
    #[arg(long, default_value_t = 60_000)]
    pub reconnect_timeout_ms: u64,
}

impl ConnectArgs {
    /// Resolves `--broker` to its first address.
    pub fn address(&self) -> Result<SocketAddr, String> {
        self.broker
            .to_socket_addrs()
            .map_err(|error| format!("invalid broker address {:?}: {error}", self.broker))?
            .next()
            .ok_or_else(|| format!("broker address {:?} resolves to nothing", self.broker))
    }

    /// Connects to `address` (from [`ConnectArgs::address`]).
    pub async fn connect(&self, address: SocketAddr) -> Result<Client, String> {
        let options = ClientOptions {
            client_id: "ringbus-cli".to_string(),
            request_timeout: Duration::from_millis(self.request_timeout_ms),
            reconnect_timeout: Duration::from_millis(self.reconnect_timeout_ms),
            ..ClientOptions::default()
        };
        Client::connect(address, options)
            .await
            .map_err(|error| error.to_string())
    }
}

/// Runs `future` to completion on a fresh single-threaded executor, not pinned to any core (a
/// command-line client must not compete with a broker's pinned shards). `ulimit -l` may be
/// small, so glommio's registered-buffer arena is kept small, as the broker does.
pub fn run<T>(future: impl Future<Output = Result<T, String>>) -> Result<T, String> {
    let executor = glommio::LocalExecutorBuilder::default()
        .name("ringbus-cli")
        .io_memory(1 << 20)
        .make()
        .map_err(|error| format!("starting the executor: {error}"))?;
    executor.run(future)
}
