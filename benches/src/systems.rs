//! The same three operations against each system: a write (Switchboard's
//! attach, etcd's put of the route), a local read (a local resolve, a
//! serializable get) and a linearizable read (a read-index resolve, a
//! linearizable get).

use switchboard_api::ClusterClient;
use switchboard_api::new_request_id;
use switchboard_proto::v1 as pb;

/// One operation of the workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Op {
    Write,
    LocalRead,
    LinearizableRead,
}

impl Op {
    pub const ALL: [Op; 3] = [Op::Write, Op::LocalRead, Op::LinearizableRead];

    pub fn name(self) -> &'static str {
        match self {
            Op::Write => "write",
            Op::LocalRead => "local read",
            Op::LinearizableRead => "linearizable read",
        }
    }
}

/// The value etcd stores per route: what Switchboard's route row holds
/// (relay id, generation, attach time), so both write the same bytes.
const ETCD_ROUTE_VALUE: &[u8] = b"relay-042.bench:443|generation=1|attached=1764633600000";

/// Connections to one system, spread over its members; worker `w` uses
/// connection `w % len`.
pub enum Connections {
    Switchboard(Vec<ClusterClient>),
    Etcd(Vec<etcd_client::KvClient>),
}

impl Connections {
    pub fn len(&self) -> usize {
        match self {
            Connections::Switchboard(clients) => clients.len(),
            Connections::Etcd(clients) => clients.len(),
        }
    }

    /// Does `op` once as worker `worker`; `key` names the host (a fresh one
    /// for a write, one of the preloaded ones for a read).
    pub async fn run(&self, op: Op, worker: usize, key: &str) -> anyhow::Result<()> {
        match self {
            Connections::Switchboard(clients) => {
                let client = &clients[worker % clients.len()];
                match op {
                    Op::Write => {
                        client.attach(&new_request_id(), key, "").await?;
                    }
                    Op::LocalRead => {
                        client.resolve(key, pb::Consistency::Local, 0).await?;
                    }
                    Op::LinearizableRead => {
                        client
                            .resolve_with(key, pb::Consistency::Linearizable, 0, false)
                            .await?;
                    }
                }
            }
            Connections::Etcd(clients) => {
                let mut client = clients[worker % clients.len()].clone();
                let key = format!("/routes/{key}");
                match op {
                    Op::Write => {
                        client.put(key, ETCD_ROUTE_VALUE, None).await?;
                    }
                    Op::LocalRead => {
                        let options = etcd_client::GetOptions::new().with_serializable();
                        let got = client.get(key, Some(options)).await?;
                        anyhow::ensure!(got.kvs().len() == 1, "no route");
                    }
                    Op::LinearizableRead => {
                        let got = client.get(key, None).await?;
                        anyhow::ensure!(got.kvs().len() == 1, "no route");
                    }
                }
            }
        }
        Ok(())
    }
}

/// The name of preloaded host `n` of `count`, the same on both systems.
pub fn read_key(n: u64) -> String {
    format!("read-{n:06}")
}
