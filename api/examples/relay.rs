//! A relay embedding the client library: it registers, heartbeats to keep
//! its lease, watches which hosts it carries, and admits a client that
//! presents a connect ticket, checked offline against the cluster's keys.
//!
//! It links neither RocksDB nor openraft. Against the demo cluster
//! (`ops/scripts/demo.sh` prints its cluster file):
//!
//! ```text
//! cargo run -p switchboard-api --example relay -- $DIR/cluster.json relay-example host-1
//! ```
//!
//! The cluster file's admin certificate stands in for the relay's own here;
//! a real relay presents `relay-example.relay.<cluster>.switchboard`.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;
use std::time::SystemTime;

use anyhow::Context;
use futures::StreamExt;
use switchboard_api::Admission;
use switchboard_api::ClientSettings;
use switchboard_api::ClusterClient;
use switchboard_api::ClusterFile;
use switchboard_api::Directory;
use switchboard_api::new_request_id;
use switchboard_proto::v1 as pb;

/// How long the example runs before it stops on its own.
const RUN_FOR: Duration = Duration::from_secs(10);

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let [_, cluster_path, relay_id, host_id] = args.as_slice() else {
        anyhow::bail!("usage: relay CLUSTER_JSON RELAY_ID HOST_ID");
    };
    let cluster = ClusterFile::load(Path::new(cluster_path)).map_err(anyhow::Error::msg)?;
    let seeds: Vec<String> = cluster.sites.iter().map(|site| site.api.clone()).collect();
    let directory = Arc::new(Directory::new(
        &cluster.cluster_id,
        seeds.clone(),
        vec![],
        None,
    ));
    let client = Arc::new(
        ClusterClient::new(seeds, ClientSettings::default(), cluster.credentials()?)?
            .with_directory(directory.clone()),
    );

    let incarnation = unix_ms();
    client
        .register_relay(pb::RegisterRelayRequest {
            request_id: new_request_id(),
            relay_id: relay_id.clone(),
            endpoint: format!("{relay_id}.example.invalid:443"),
            region: String::new(),
            labels: Default::default(),
            capacity: 100,
            incarnation,
        })
        .await
        .context("registering")?;
    let admission = Arc::new(Admission::new(relay_id, directory.trust()));

    // Keep the lease: heartbeat at the interval the cluster asks for.
    let heartbeats = tokio::spawn(keep_lease(
        client.clone(),
        directory,
        admission.clone(),
        relay_id.clone(),
        incarnation,
    ));

    // Learn which hosts this relay carries.
    let mut routes = client.watch_relay_routes(relay_id, 0).await?;
    let watch = tokio::spawn({
        let admission = admission.clone();
        async move {
            while let Some(event) = routes.next().await {
                let event = event?;
                match (event.host_id.is_empty(), event.attached) {
                    (true, _) => {}
                    (false, true) => admission.route_attached(&event.host_id, event.generation),
                    (false, false) => admission.route_detached(&event.host_id),
                }
            }
            Ok::<(), anyhow::Error>(())
        }
    });

    // A client resolves the host and presents its ticket to the relay that
    // carries it; this relay checks it without asking the cluster.
    let resolved = client.resolve(host_id, pb::Consistency::Local, 0).await?;
    match (resolved.route, resolved.ticket) {
        (Some(route), Some(ticket)) if route.relay_id == *relay_id => {
            let admitted =
                admission.admit_client(&ticket.body, &ticket.signature, Instant::now(), unix_ms());
            println!("ticket for {host_id}: {admitted:?}");
        }
        (Some(route), _) => println!("{host_id} is carried by {}, not by us", route.relay_id),
        (None, _) => println!("{host_id} has no route"),
    }

    tokio::time::sleep(RUN_FOR).await;
    heartbeats.abort();
    watch.abort();
    println!("carried {} hosts", admission.hosts());
    Ok(())
}

/// Heartbeats until a heartbeat fails, refreshing the lease and the keys
/// the admission check trusts.
async fn keep_lease(
    client: Arc<ClusterClient>,
    directory: Arc<Directory>,
    admission: Arc<Admission>,
    relay_id: String,
    incarnation: u64,
) -> anyhow::Result<()> {
    loop {
        let sessions = admission.hosts() as u32;
        let response = client.heartbeat(&relay_id, incarnation, sessions).await?;
        admission
            .heartbeat_acknowledged(Instant::now(), Duration::from_millis(response.lease_ttl_ms));
        admission.set_trust(directory.trust());
        tokio::time::sleep(Duration::from_millis(
            response.heartbeat_interval_ms.max(10),
        ))
        .await;
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
