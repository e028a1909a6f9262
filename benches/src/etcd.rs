//! A 3-member etcd cluster on loopback, for side-by-side runs: Debian's
//! `etcd-server`, TLS with client certificates on the client and peer
//! ports, every commit synced (etcd's default; `--unsafe-no-fsync` is not
//! given).

use std::path::Path;
use std::path::PathBuf;
use std::process::Child;
use std::process::Command;
use std::process::Stdio;
use std::time::Duration;
use std::time::Instant;

use anyhow::Context;
use etcd_client::Certificate;
use etcd_client::Client;
use etcd_client::ConnectOptions;
use etcd_client::Identity;
use etcd_client::TlsOptions;
use switchboard_tests::delay_proxy::DelayProxy;

/// The name the members' certificate carries, and clients verify.
const SERVER_NAME: &str = "localhost";
/// How long the members may take to elect a first leader.
const START_DEADLINE: Duration = Duration::from_secs(30);
/// A client's deadline for one call; a call past it counts as failed.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// Heartbeat and election timeout, etcd's two timing knobs.
#[derive(Clone, Copy, Debug)]
pub struct EtcdTiming {
    pub heartbeat_ms: u64,
    pub election_ms: u64,
}

/// The running members; killed when dropped.
pub struct EtcdCluster {
    dir: tempfile::TempDir,
    pki: Pki,
    members: Vec<Member>,
    initial_cluster: String,
    pub timing: EtcdTiming,
    /// The WAN between members, when there is one.
    _proxies: Vec<DelayProxy>,
}

struct Member {
    client_url: String,
    peer_url: String,
    /// Where the other members reach it: `peer_url`, or a delaying proxy
    /// in front of it.
    advertised_peer_url: String,
    child: Option<Child>,
}

/// The CA and the certificates the members and the bench use.
struct Pki {
    ca_pem: String,
    client_cert_pem: String,
    client_key_pem: String,
}

impl EtcdCluster {
    /// Starts three members with `timing` and waits until one leads.
    pub async fn start(timing: EtcdTiming) -> anyhow::Result<Self> {
        Self::start_wan(timing, Duration::ZERO).await
    }

    /// As `start`, with every byte between members delayed `one_way` each
    /// way by a proxy in front of each peer port (none when zero).
    pub async fn start_wan(timing: EtcdTiming, one_way: Duration) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("switchboard-bench-etcd-")
            .tempdir()?;
        let pki = write_pki(dir.path())?;
        let ports: Vec<(u16, u16)> = (0..3)
            .map(|_| Ok((free_port()?, free_port()?)))
            .collect::<anyhow::Result<_>>()?;
        let mut proxies = Vec::new();
        let mut advertised = Vec::new();
        for (_, peer) in &ports {
            if one_way.is_zero() {
                advertised.push(format!("https://127.0.0.1:{peer}"));
            } else {
                let proxy = DelayProxy::start(([127, 0, 0, 1], *peer).into(), one_way).await?;
                advertised.push(format!("https://{}", proxy.addr));
                proxies.push(proxy);
            }
        }
        let initial_cluster = advertised
            .iter()
            .enumerate()
            .map(|(i, url)| format!("m{i}={url}"))
            .collect::<Vec<_>>()
            .join(",");
        let mut members = Vec::new();
        for (i, (client, peer)) in ports.iter().enumerate() {
            let client_url = format!("https://127.0.0.1:{client}");
            let peer_url = format!("https://127.0.0.1:{peer}");
            let member = Member {
                client_url,
                peer_url,
                advertised_peer_url: advertised[i].clone(),
                child: None,
            };
            let child = spawn_member(dir.path(), i, &member, &initial_cluster, timing)?;
            members.push(Member {
                child: Some(child),
                ..member
            });
        }
        let cluster = EtcdCluster {
            dir,
            pki,
            members,
            initial_cluster,
            timing,
            _proxies: proxies,
        };
        cluster.wait_for_leader(START_DEADLINE).await?;
        Ok(cluster)
    }

    /// Member `i`'s client URL.
    pub fn endpoint(&self, i: usize) -> &str {
        &self.members[i].client_url
    }

    /// How many members there are.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// A client of member `i` only, over TLS with the bench's certificate.
    pub async fn client(&self, i: usize) -> anyhow::Result<Client> {
        let tls = TlsOptions::new()
            .domain_name(SERVER_NAME)
            .ca_certificate(Certificate::from_pem(&self.pki.ca_pem))
            .identity(Identity::from_pem(
                &self.pki.client_cert_pem,
                &self.pki.client_key_pem,
            ));
        let options = ConnectOptions::new()
            .with_tls(tls)
            .with_timeout(CALL_TIMEOUT)
            .with_connect_timeout(CALL_TIMEOUT);
        Client::connect([self.endpoint(i)], Some(options))
            .await
            .with_context(|| format!("connecting to etcd member {i}"))
    }

    /// The member that leads, by asking each live one; waits up to `deadline`.
    pub async fn wait_for_leader(&self, deadline: Duration) -> anyhow::Result<usize> {
        let started = Instant::now();
        loop {
            for i in self.live() {
                let Ok(mut client) = self.client(i).await else {
                    continue;
                };
                if let Ok(status) = client.status().await {
                    let me = status.header().map(|h| h.member_id());
                    if status.leader() != 0 && Some(status.leader()) == me {
                        return Ok(i);
                    }
                }
            }
            anyhow::ensure!(
                started.elapsed() < deadline,
                "no etcd member led within {deadline:?}"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Members still running.
    pub fn live(&self) -> Vec<usize> {
        (0..self.members.len())
            .filter(|i| self.members[*i].child.is_some())
            .collect()
    }

    /// Kills member `i` with SIGKILL.
    pub fn kill(&mut self, i: usize) -> anyhow::Result<()> {
        if let Some(mut child) = self.members[i].child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// Starts killed member `i` again on its data directory.
    pub fn restart(&mut self, i: usize) -> anyhow::Result<()> {
        anyhow::ensure!(self.members[i].child.is_none(), "member {i} runs");
        let member = &self.members[i];
        let child = spawn_member(
            self.dir.path(),
            i,
            member,
            &self.initial_cluster,
            self.timing,
        )?;
        self.members[i].child = Some(child);
        Ok(())
    }
}

impl Drop for EtcdCluster {
    fn drop(&mut self) {
        for i in 0..self.members.len() {
            let _ = self.kill(i);
        }
    }
}

fn spawn_member(
    dir: &Path,
    i: usize,
    member: &Member,
    initial_cluster: &str,
    timing: EtcdTiming,
) -> anyhow::Result<Child> {
    let file = |name: &str| dir.join(name).display().to_string();
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join(format!("m{i}.log")))?;
    Command::new("etcd")
        .args(["--name", &format!("m{i}")])
        .args(["--data-dir", &file(&format!("m{i}.data"))])
        .args(["--listen-client-urls", &member.client_url])
        .args(["--advertise-client-urls", &member.client_url])
        .args(["--listen-peer-urls", &member.peer_url])
        .args(["--initial-advertise-peer-urls", &member.advertised_peer_url])
        .args(["--initial-cluster", initial_cluster])
        .args(["--initial-cluster-state", "new"])
        .args(["--initial-cluster-token", "switchboard-bench"])
        .args(["--cert-file", &file("server.pem")])
        .args(["--key-file", &file("server.key")])
        .args(["--trusted-ca-file", &file("ca.pem")])
        .arg("--client-cert-auth")
        .args(["--peer-cert-file", &file("server.pem")])
        .args(["--peer-key-file", &file("server.key")])
        .args(["--peer-trusted-ca-file", &file("ca.pem")])
        .arg("--peer-client-cert-auth")
        .args(["--heartbeat-interval", &timing.heartbeat_ms.to_string()])
        .args(["--election-timeout", &timing.election_ms.to_string()])
        .args(["--logger", "zap", "--log-level", "warn"])
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .context("starting etcd (Debian's etcd-server; ops/scripts/install-deps.sh installs it)")
}

/// A CA, one certificate all members serve and peer with (127.0.0.1 and
/// localhost), and the bench's client certificate.
fn write_pki(dir: &Path) -> anyhow::Result<Pki> {
    use rcgen::BasicConstraints;
    use rcgen::CertificateParams;
    use rcgen::ExtendedKeyUsagePurpose as Eku;
    use rcgen::IsCa;
    use rcgen::Issuer;
    use rcgen::KeyPair;

    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key)?;
    let issuer = Issuer::from_params(&ca_params, &ca_key);
    let issue = |names: Vec<String>, usages: Vec<Eku>| -> anyhow::Result<(String, String)> {
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(names)?;
        params.extended_key_usages = usages;
        let cert = params.signed_by(&key, &issuer)?;
        Ok((cert.pem(), key.serialize_pem()))
    };
    let (server_pem, server_key) = issue(
        vec![SERVER_NAME.into(), "127.0.0.1".into()],
        vec![Eku::ServerAuth, Eku::ClientAuth],
    )?;
    let (client_cert_pem, client_key_pem) = issue(vec!["bench".into()], vec![Eku::ClientAuth])?;
    let write = |name: &str, contents: &str| -> anyhow::Result<PathBuf> {
        let path = dir.join(name);
        std::fs::write(&path, contents)?;
        Ok(path)
    };
    write("ca.pem", &ca.pem())?;
    write("server.pem", &server_pem)?;
    write("server.key", &server_key)?;
    Ok(Pki {
        ca_pem: ca.pem(),
        client_cert_pem,
        client_key_pem,
    })
}

/// A port free on loopback now (the OS picks it; a race with another
/// process binding it first is possible and fails the start loudly).
pub fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}
