//! Callers that try to take a site's memory or files: each is bounded by
//! a configured limit, and a well-behaved caller beside it is served at
//! its normal latency while the attack runs.

use std::sync::Arc;
use std::time::Duration;
use std::time::Instant;

use rustls::pki_types::CertificateDer;
use rustls::pki_types::ServerName;
use rustls::pki_types::pem::PemObject;
use switchboard_api::cluster_domain;
use switchboard_api::sites_name;
use switchboard_proto::v1 as pb;
use switchboard_tests::TestCluster;
use switchboard_tests::TestSpec;
use switchboard_tests::process_open_files;
use switchboard_tests::process_rss_bytes;

/// A TLS client of the API port with no client certificate, speaking h2.
fn anonymous_tls(cluster: &TestCluster) -> tokio_rustls::TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(cluster.pki().ca_path()).expect("ca") {
        roots.add(cert.expect("ca cert")).expect("add root");
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .expect("versions")
    .with_root_certificates(roots)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"h2".to_vec()];
    tokio_rustls::TlsConnector::from(Arc::new(config))
}

async fn connect_from(
    cluster: &TestCluster,
    source: &str,
    api: std::net::SocketAddr,
) -> std::io::Result<tokio_rustls::client::TlsStream<tokio::net::TcpStream>> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(format!("{source}:0").parse().expect("address"))?;
    let tcp = socket.connect(api).await?;
    let name =
        ServerName::try_from(sites_name(&cluster_domain(cluster.cluster_id()))).expect("name");
    anonymous_tls(cluster).connect(name, tcp).await
}

/// Opens `streams` attach calls on one h2 connection, each declaring a
/// message of `declared` bytes and sending `sent` of them; returns
/// the grpc-status of each answer that came within `wait`, and the streams
/// (kept open, their bodies unfinished).
async fn withhold_last_bytes(
    tls: tokio_rustls::client::TlsStream<tokio::net::TcpStream>,
    token: Option<&str>,
    streams: usize,
    (declared, sent): (usize, usize),
    wait: Duration,
) -> (Vec<Option<String>>, Vec<h2::SendStream<bytes::Bytes>>) {
    let (client, connection) = h2::client::handshake(tls).await.expect("h2 handshake");
    tokio::spawn(connection);
    let mut bodies = Vec::new();
    let mut answers = Vec::new();
    for _ in 0..streams {
        let mut request = http::Request::post("/switchboard.v1.HostService/Attach")
            .header("content-type", "application/grpc")
            .header("te", "trailers");
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        let mut client = client.clone().ready().await.expect("h2 ready");
        let (response, mut body) = client
            .send_request(request.body(()).expect("request"), false)
            .expect("send request");
        let mut prefix = vec![0u8];
        prefix.extend_from_slice(&(declared as u32).to_be_bytes());
        let _ = body.send_data(prefix.into(), false);
        let _ = body.send_data(vec![0x0a; sent].into(), false);
        bodies.push(body);
        answers.push(response);
    }
    let until = Instant::now() + wait;
    let mut statuses = Vec::new();
    for response in answers {
        let left = until.saturating_duration_since(Instant::now());
        let status = match tokio::time::timeout(left, response).await {
            Ok(Ok(response)) => response
                .headers()
                .get("grpc-status")
                .map(|value| value.to_str().unwrap_or("?").to_owned())
                .or(Some("in trailers".to_owned())),
            Ok(Err(_)) => Some("reset".to_owned()),
            Err(_) => None,
        };
        statuses.push(status);
    }
    (statuses, bodies)
}

/// How long the withheld-byte attack waits for its answers.
const ATTACK_WAIT: Duration = Duration::from_secs(15);

/// Requests that declare a large message and withhold its last byte pin
/// at most a connection's request-byte budget: an unauthenticated caller
/// is refused before any body is read, and a token caller's requests past
/// the budget get RESOURCE_EXHAUSTED at once, while an operator is served.
/// (Before, 48 such requests pinned 194 MiB for as long as the caller
/// liked; with the 128 KiB request limit alone, 400 of them would still
/// pin 50 MiB until the request timeout.)
///
/// "At once" holds while the caller stays within the connection's
/// concurrent requests (`REQUESTS_PER_CONNECTION_MAX`). Past it, requests
/// wait for a slot with their first frames buffered by HTTP/2 and not
/// read, so they can fill the connection's receive window and starve the
/// requests being served of their next frames: those end at the request
/// timeout (CANCELLED) instead. The memory is bounded either way (the
/// window), which the second attack shows.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn requests_whose_last_byte_is_withheld_pin_at_most_a_connections_budget() {
    use switchboard_api::limits::API_REQUEST_BYTES_MAX;
    use switchboard_api::limits::REQUESTS_PER_CONNECTION_MAX;
    let limits = switchboard_node::Limits {
        request_timeout_ms: 3_000,
        ..switchboard_node::Limits::default()
    };
    let budget = limits.request_bytes_in_flight_per_connection_max;
    let cluster = TestCluster::start_with(TestSpec {
        limits,
        ..TestSpec::default()
    })
    .await;
    let admin = cluster.client();
    let leader = cluster.leader().await;
    let pid = cluster.cluster.sites[&leader].pid().expect("running");
    let api: std::net::SocketAddr = cluster.api(leader).parse().expect("address");
    let token = admin
        .issue_token(pb::TokenRole::Host, "h1", 3_600)
        .await
        .expect("token")
        .token;
    let rss_before = process_rss_bytes(pid);

    // No certificate, no token: 48 requests declaring 4 MiB each.
    let tls = connect_from(&cluster, "127.0.0.2", api).await.expect("tls");
    let (statuses, _held) =
        withhold_last_bytes(tls, None, 48, (4 << 20, 64 << 10), Duration::from_secs(2)).await;
    let unauthenticated = statuses
        .iter()
        .filter(|s| s.as_deref() == Some("16"))
        .count();
    assert_eq!(
        unauthenticated, 48,
        "every one is refused at once: {statuses:?}"
    );

    // A token caller within the connection's concurrent requests: every
    // request past the budget is refused at once.
    let within = REQUESTS_PER_CONNECTION_MAX;
    let attack = TokenAttack {
        cluster: &cluster,
        site: leader,
        token: &token,
    };
    let (statuses, served_max) = attack.run(within, rss_before, budget).await;
    let exhausted = count(&statuses, "8");
    // At most `fit` requests fit the budget at once, each held until the
    // request timeout; every other one is refused.
    let fit = budget / API_REQUEST_BYTES_MAX;
    let rounds = (ATTACK_WAIT.as_millis() / 3_000) as usize + 1;
    assert!(
        exhausted >= within - fit * rounds,
        "at most {fit} requests fit the budget per {rounds} timeouts; {exhausted} of {within} refused: {statuses:?}"
    );
    assert!(
        served_max < Duration::from_secs(1),
        "operator call took {served_max:?}"
    );

    // Past them: those waiting for a slot may starve the served ones until
    // the request timeout, but each ends one way or the other and the
    // memory stays bounded.
    let (statuses, served_max) = attack.run(400, rss_before, budget).await;
    let ended = count(&statuses, "8") + count(&statuses, "1");
    assert_eq!(
        ended,
        statuses.len(),
        "each is refused or times out: {statuses:?}"
    );
    assert!(
        served_max < Duration::from_secs(1),
        "operator call took {served_max:?}"
    );
}

/// How many answers carry `code`.
fn count(statuses: &[Option<String>], code: &str) -> usize {
    statuses
        .iter()
        .filter(|s| s.as_deref() == Some(code))
        .count()
}

/// A host-token caller sending requests of the largest size, each short
/// a byte, on one connection to `site`.
struct TokenAttack<'a> {
    cluster: &'a TestCluster,
    site: u64,
    token: &'a str,
}

impl TokenAttack<'_> {
    /// Runs `streams` requests and, meanwhile, operator calls to the site
    /// every 100 ms; asserts that every request is answered within
    /// `ATTACK_WAIT` and the site's memory grew less than 20 MiB over
    /// `rss_before`; returns the answers and the slowest operator call.
    async fn run(
        &self,
        streams: usize,
        rss_before: u64,
        budget: usize,
    ) -> (Vec<Option<String>>, Duration) {
        use switchboard_api::limits::API_REQUEST_BYTES_MAX;
        let cluster = self.cluster;
        let admin = cluster.client();
        let pid = cluster.cluster.sites[&self.site].pid().expect("running");
        let api: std::net::SocketAddr = cluster.api(self.site).parse().expect("address");
        let tls = connect_from(cluster, "127.0.0.2", api).await.expect("tls");
        let token = self.token.to_owned();
        let started = Instant::now();
        let attack = tokio::spawn(async move {
            withhold_last_bytes(
                tls,
                Some(&token),
                streams,
                (API_REQUEST_BYTES_MAX, API_REQUEST_BYTES_MAX - 1),
                ATTACK_WAIT,
            )
            .await
        });
        let mut rss_peak = 0;
        let mut served_max = Duration::ZERO;
        // A sample every 100 ms for the whole attack, however slowly this
        // machine moves its 50 MiB, and no longer than the attack's deadline.
        let mut samples = tokio::time::interval(Duration::from_millis(100));
        while !attack.is_finished() && started.elapsed() < ATTACK_WAIT + Duration::from_secs(1) {
            samples.tick().await;
            rss_peak = rss_peak.max(process_rss_bytes(pid));
            let call = Instant::now();
            admin
                .status_of(&cluster.api(self.site))
                .await
                .expect("the operator is served during the attack");
            served_max = served_max.max(call.elapsed());
        }
        let (statuses, _held) = attack.await.expect("attack");
        let grown = rss_peak.saturating_sub(rss_before);
        println!(
            "{streams} requests of {} KiB short a byte: {} refused with RESOURCE_EXHAUSTED, {} timed out, memory grew {:.1} MiB at most (budget {:.1} MiB, {:.1} MiB asked for), slowest operator call {} ms",
            API_REQUEST_BYTES_MAX >> 10,
            count(&statuses, "8"),
            count(&statuses, "1"),
            grown as f64 / 1048576.0,
            budget as f64 / 1048576.0,
            (streams * API_REQUEST_BYTES_MAX) as f64 / 1048576.0,
            served_max.as_millis()
        );
        assert!(
            statuses.iter().all(Option::is_some),
            "every request is answered within {ATTACK_WAIT:?}: {statuses:?}"
        );
        assert!(
            grown < 20 << 20,
            "memory grew {grown} bytes; the budget is {budget}"
        );
        (statuses, served_max)
    }
}

/// One address holds at most `connections_per_source_max` connections,
/// established ones included: past it a new one is closed at once, the
/// site's open files stay bounded, and callers from other addresses are
/// served. (Before, only handshakes in progress were capped: any number of
/// finished TLS connections stayed, one open file each.)
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connections_from_one_address_are_capped() {
    let cap = 64;
    let limits = switchboard_node::Limits {
        connections_per_source_max: cap,
        ..switchboard_node::Limits::default()
    };
    let cluster = TestCluster::start_with(TestSpec {
        limits,
        ..TestSpec::default()
    })
    .await;
    let leader = cluster.leader().await;
    let pid = cluster.cluster.sites[&leader].pid().expect("running");
    let api: std::net::SocketAddr = cluster.api(leader).parse().expect("address");
    let files_before = process_open_files(pid);
    let opened = cap + 36;
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..opened {
        match connect_from(&cluster, "127.0.0.2", api).await {
            Ok(tls) => {
                let (client, connection) = h2::client::handshake(tls)
                    .await
                    .map_or((None, None), |(c, d)| (Some(c), Some(d)));
                if let Some(connection) = connection {
                    held.push((client, tokio::spawn(connection)));
                } else {
                    refused += 1;
                }
            }
            Err(_) => refused += 1,
        }
    }
    // A connection the site closed shows as a finished h2 connection task.
    let over_cap = opened - cap;
    let closed_later = || held.iter().filter(|(_, task)| task.is_finished()).count();
    let deadline = Instant::now() + Duration::from_secs(2);
    while refused + closed_later() < over_cap && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let closed_later = closed_later();
    let files_during = process_open_files(pid);
    let started = Instant::now();
    cluster
        .client()
        .status_of(&cluster.api(leader))
        .await
        .expect("an operator from another address is served");
    let took = started.elapsed();
    println!(
        "{opened} TLS connections from one address (cap {cap}): {} closed by the site, open files {files_before} -> {files_during}, operator call {} ms",
        refused + closed_later,
        took.as_millis()
    );
    assert_eq!(
        refused + closed_later,
        opened - cap,
        "all past the cap are closed"
    );
    assert!(
        files_during <= files_before + cap + 8,
        "open files {files_before} -> {files_during}"
    );
    assert!(took < Duration::from_secs(1), "took {took:?}");
    // A slot given back is free again.
    if let Some((_client, task)) = held.pop() {
        task.abort();
    }
    switchboard_tests::wait_until(
        Duration::from_secs(5),
        "a closed connection gives its address's slot back",
        || async {
            match connect_from(&cluster, "127.0.0.2", api).await {
                Ok(tls) => match h2::client::handshake(tls).await {
                    Ok((_client, connection)) => {
                        tokio::time::timeout(Duration::from_millis(200), connection)
                            .await
                            .is_err()
                    }
                    Err(_) => false,
                },
                Err(_) => false,
            }
        },
    )
    .await;
}
