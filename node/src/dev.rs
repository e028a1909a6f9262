//! `switchboard dev`: a three-site cluster on this machine, with a few
//! relays and hosts, for trying Switchboard out.

use std::path::PathBuf;

use switchboard_api::client::new_request_id;
use switchboard_proto::v1 as pb;

use crate::error::NodeError;
use crate::launcher::LaunchSpec;
use crate::launcher::LocalCluster;

/// What `switchboard dev` starts.
#[derive(Clone, Debug)]
pub struct DevOptions {
    pub binary: PathBuf,
    /// Where to keep everything; `None`: a fresh temporary directory.
    pub dir: Option<PathBuf>,
    pub base_port: u16,
    pub relays: u32,
    pub hosts: u32,
}

const REGIONS: [&str; 3] = ["ap-tokyo", "ap-osaka", "us-west"];

/// Starts the demo cluster, prints where everything is, and returns it
/// running; the caller decides when to stop it.
pub async fn start(
    options: &DevOptions,
) -> Result<(LocalCluster, Option<tempfile::TempDir>), NodeError> {
    let (dir, temporary) = match &options.dir {
        Some(dir) => (dir.clone(), None),
        None => {
            let temporary = tempfile::Builder::new()
                .prefix("switchboard-dev-")
                .tempdir()
                .map_err(|e| NodeError::io("creating a temporary directory", e))?;
            (temporary.path().to_owned(), Some(temporary))
        }
    };
    let mut spec = LaunchSpec::new(options.binary.clone(), dir.clone());
    spec.base_port = options.base_port;
    println!("Starting 3 sites in {} ...", dir.display());
    let cluster = LocalCluster::start(spec).await?;
    let client = cluster.client()?;

    for n in 1..=options.relays {
        let region = REGIONS[(n as usize - 1) % REGIONS.len()];
        let request = pb::RegisterRelayRequest {
            request_id: new_request_id(),
            relay_id: format!("relay-{n}"),
            endpoint: format!("relay-{n}.{region}.example.net:443"),
            region: region.to_owned(),
            labels: [("power-feed".to_owned(), format!("feed-{}", n.div_ceil(2)))]
                .into_iter()
                .collect(),
            capacity: 1_000,
            incarnation: 1,
        };
        client
            .register_relay(request)
            .await
            .map_err(|e| NodeError::Launcher(format!("registering relay-{n}: {e}")))?;
    }
    for n in 1..=options.hosts {
        let region = REGIONS[(n as usize - 1) % REGIONS.len()];
        client
            .attach(&new_request_id(), &format!("host-{n:04}"), region)
            .await
            .map_err(|e| NodeError::Launcher(format!("attaching host-{n:04}: {e}")))?;
    }

    let cluster_json = dir.join("cluster.json");
    cluster
        .cluster_file()
        .save(&cluster_json)
        .map_err(NodeError::Launcher)?;
    let leader = cluster
        .wait_for_leader(cluster.spec.timing.failover_bound() * 4)
        .await?;

    println!();
    println!(
        "{:<6} {:<8} {:<8} {:<22} {:<22} {:<22}",
        "SITE", "NAME", "PID", "API", "RAFT", "STATUS PAGE"
    );
    for site in cluster.sites.values() {
        println!(
            "{:<6} {:<8} {:<8} {:<22} {:<22} http://{}/",
            site.id,
            site.config.name,
            site.pid().map_or_else(|| "-".into(), |p| p.to_string()),
            site.report.api_addr,
            site.report.raft_addr,
            site.report.http_addr
        );
    }
    println!();
    println!(
        "Leader: site {leader}. {} relays registered, {} hosts attached.",
        options.relays, options.hosts
    );
    println!("Cluster file: {}", cluster_json.display());
    println!("Logs and data: {}", dir.display());
    println!();
    println!("Try:");
    println!("  sbctl --cluster {} status", cluster_json.display());
    println!("  sbctl --cluster {} relay list", cluster_json.display());
    println!(
        "  sbctl --cluster {} route get host-0001 --linearizable",
        cluster_json.display()
    );
    println!("  kill -9 <leader pid>   # and watch another site take over");
    println!();
    println!("Press Ctrl-C to stop.");
    Ok((cluster, temporary))
}
