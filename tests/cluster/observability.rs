//! What an operator's probes and scrapes see: `grpc.health.v1` and server
//! reflection on the API port, asked with real gRPC clients without a
//! certificate, and every API call counted and timed in `/metrics`.

use std::time::Duration;

use switchboard_api::cluster_domain;
use switchboard_api::new_request_id;
use switchboard_api::sites_name;
use switchboard_proto::v1 as pb;
use switchboard_tests::TestCluster;
use switchboard_tests::TestSpec;
use switchboard_tests::announce;
use switchboard_tests::http_get;
use switchboard_tests::page_showing;
use switchboard_tests::wait_until;
use tonic::transport::Certificate;
use tonic::transport::ClientTlsConfig;
use tonic::transport::Endpoint;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::HealthCheckResponse;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

/// How long a site may take to report a change of its readiness: the
/// health poll plus a scheduling margin.
const HEALTH_CHANGE_BOUND: Duration = Duration::from_secs(3);

/// A TLS channel to a site's API port with no client certificate, as a
/// load balancer's probe would open.
fn probe_channel(cluster: &TestCluster, site: u64) -> tonic::transport::Channel {
    let ca = std::fs::read(cluster.pki().ca_path()).expect("ca");
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(ca))
        .domain_name(sites_name(&cluster_domain(cluster.cluster_id())));
    Endpoint::from_shared(format!("https://{}", cluster.api(site)))
        .expect("endpoint")
        .tls_config(tls)
        .expect("tls")
        .connect_timeout(Duration::from_secs(2))
        .connect_lazy()
}

async fn health_of(cluster: &TestCluster, site: u64, service: &str) -> Result<i32, tonic::Status> {
    let mut client = HealthClient::new(probe_channel(cluster, site));
    let request = HealthCheckRequest {
        service: service.to_owned(),
    };
    Ok(client.check(request).await?.into_inner().status)
}

async fn wait_health(cluster: &TestCluster, site: u64, service: &str, want: ServingStatus) {
    let what = format!("site {site} reports {service:?} {want:?}");
    wait_until(HEALTH_CHANGE_BOUND * 4, &what, || async {
        health_of(cluster, site, service).await.ok() == Some(want as i32)
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn grpc_health_follows_readiness_and_reflection_lists_the_api() {
    let cluster = TestCluster::start_with(TestSpec::default()).await;
    let leader = cluster.leader().await;
    let follower = (1..=3).find(|id| *id != leader).expect("a follower");
    for site in 1..=3 {
        wait_health(&cluster, site, "", ServingStatus::Serving).await;
    }
    wait_health(
        &cluster,
        follower,
        "switchboard.v1.HostService",
        ServingStatus::Serving,
    )
    .await;
    // A service the site does not serve is NOT_FOUND, as the protocol says.
    let unknown = health_of(&cluster, follower, "switchboard.v1.NoSuchService").await;
    assert_eq!(
        unknown.map_err(|s| s.code()),
        Err(tonic::Code::NotFound),
        "an unknown service"
    );

    // Drained: out of service for probes as for clients; back when undrained.
    let admin = cluster.client();
    admin.drain_site(follower, false).await.expect("drain");
    wait_health(&cluster, follower, "", ServingStatus::NotServing).await;
    wait_health(
        &cluster,
        follower,
        "switchboard.v1.ClientService",
        ServingStatus::NotServing,
    )
    .await;
    let ready = http_get(
        &cluster.cluster.sites[&follower].report.http_addr,
        "/readyz",
    )
    .await;
    assert!(ready.starts_with("HTTP/1.1 503"), "readyz agrees: {ready}");
    admin.undrain_site(follower).await.expect("undrain");
    wait_health(&cluster, follower, "", ServingStatus::Serving).await;

    // Reflection, as grpcurl asks it: the API services and health, not the
    // Raft port's peer service.
    let mut reflection = ServerReflectionClient::new(probe_channel(&cluster, follower));
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = reflection
        .server_reflection_info(futures::stream::iter([request]))
        .await
        .expect("reflection")
        .into_inner();
    let answer = answers
        .message()
        .await
        .expect("an answer")
        .expect("one message");
    let Some(MessageResponse::ListServicesResponse(listed)) = answer.message_response else {
        panic!("not a service list: {answer:?}");
    };
    let mut names: Vec<String> = listed.service.into_iter().map(|s| s.name).collect();
    names.sort();
    let mut expected: Vec<String> = pb::API_SERVICES.iter().map(|s| (*s).to_owned()).collect();
    expected.push("grpc.health.v1.Health".to_owned());
    expected.sort();
    assert_eq!(names, expected);
}

/// The value of the sample `name{labels}` in a Prometheus text page, where
/// `labels` is the exact label set as the exporter prints it ("" for none).
fn sample(page: &str, name: &str, labels: &str) -> Option<f64> {
    let prefix = if labels.is_empty() {
        format!("{name} ")
    } else {
        format!("{name}{{{labels}}} ")
    };
    page.lines()
        .find_map(|line| line.strip_prefix(&prefix))
        .and_then(|value| value.trim().parse().ok())
}

#[test]
fn the_sample_reader_finds_only_the_exact_series() {
    let page = "a_total{method=\"/x.Y/Z\",code=\"OK\"} 3\na_total{method=\"/x.Y/Z\",code=\"NOT_FOUND\"} 1\n";
    assert_eq!(
        sample(page, "a_total", "method=\"/x.Y/Z\",code=\"OK\""),
        Some(3.0)
    );
    assert_eq!(
        sample(page, "a_total", "method=\"/x.Y/Z\",code=\"UNKNOWN\""),
        None
    );
    assert_eq!(sample(page, "a_total", "method=\"/x.Y/Z\""), None);
    assert_eq!(sample(page, "a_total", ""), None, "labelled only");
    assert_eq!(sample("a_total 7\na_total_x 2\n", "a_total", ""), Some(7.0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_api_call_is_counted_and_timed_by_method_and_code() {
    let cluster = TestCluster::start_with(TestSpec::default()).await;
    let leader = cluster.leader().await;
    let at_leader = cluster.site_client(leader);
    switchboard_tests::load::register_relays(&cluster.client(), 1, 10).await;
    at_leader
        .attach(&new_request_id(), "metered-host", "")
        .await
        .expect("attach");
    let missing = at_leader
        .resolve("no-such-host", pb::Consistency::Local, 0)
        .await;
    assert!(missing.is_err(), "an unknown host is refused");
    // A method no service has, without a certificate: refused before
    // anything is read, counted, but not under a name the caller chose.
    let invented = "/switchboard.v1.HostService/Invented";
    let mut grpc = tonic::client::Grpc::new(probe_channel(&cluster, leader));
    grpc.ready().await.expect("ready");
    let invented_call = grpc
        .unary(
            tonic::Request::new(HealthCheckRequest::default()),
            tonic::codegen::http::uri::PathAndQuery::from_static(invented),
            tonic_prost::ProstCodec::<HealthCheckRequest, HealthCheckResponse>::default(),
        )
        .await;
    assert_eq!(
        invented_call.map(|_| ()).map_err(|s| s.code()),
        Err(tonic::Code::Unauthenticated)
    );

    let http = cluster.cluster.sites[&leader].report.http_addr.clone();
    let page = http_get(&http, "/metrics").await;
    let attach = "method=\"/switchboard.v1.HostService/Attach\",code=\"OK\"";
    assert!(
        sample(&page, "switchboard_api_requests_total", attach).is_some_and(|n| n >= 1.0),
        "attach counted:\n{page}"
    );
    let resolve = "method=\"/switchboard.v1.ClientService/Resolve\",code=\"NOT_FOUND\"";
    assert!(
        sample(&page, "switchboard_api_requests_total", resolve).is_some_and(|n| n >= 1.0),
        "the refused resolve counted with its code:\n{page}"
    );
    // Histograms with buckets (they aggregate across sites), not summaries.
    let bucket = format!("{attach},le=\"+Inf\"");
    assert!(
        sample(
            &page,
            "switchboard_api_request_duration_seconds_bucket",
            &bucket
        )
        .is_some_and(|n| n >= 1.0),
        "attach latency as a histogram:\n{page}"
    );
    for histogram in [
        "switchboard_raft_proposal_duration_seconds_bucket{le=\"+Inf\"}",
        "switchboard_storage_wal_sync_duration_seconds_bucket{le=\"+Inf\"}",
    ] {
        assert!(
            page.contains(histogram),
            "{histogram} on the leader:\n{page}"
        );
    }
    assert!(
        sample(
            &page,
            "switchboard_api_requests_total",
            "method=\"unknown\",code=\"UNAUTHENTICATED\""
        )
        .is_some_and(|n| n >= 1.0),
        "the invented method counted as unknown:\n{page}"
    );
    assert!(!page.contains("Invented"), "no label a caller chose");
    assert!(
        sample(
            &page,
            "switchboard_resolves_total",
            "consistency=\"local\",outcome=\"NOT_FOUND\""
        )
        .is_some_and(|n| n >= 1.0),
        "the resolve of an unknown host counted by consistency and outcome:\n{page}"
    );
    assert!(
        sample(
            &page,
            "switchboard_state_apply_duration_seconds_bucket",
            "command=\"attach_host\",le=\"+Inf\""
        )
        .is_some_and(|n| n >= 1.0),
        "the attach's apply time:\n{page}"
    );
    // Leadership: this leader campaigned and saw itself take a term.
    for counter in [
        "switchboard_raft_elections_total",
        "switchboard_raft_leader_changes_total",
    ] {
        assert!(
            sample(&page, counter, "").is_some_and(|n| n >= 1.0),
            "{counter} on the leader:\n{page}"
        );
    }
    // Lag in time for each follower: they acknowledge every heartbeat.
    for follower in (1..=3).filter(|id| *id != leader) {
        let lag = sample(
            &page,
            "switchboard_raft_follower_lag_seconds",
            &format!("site=\"{follower}\""),
        );
        assert!(
            lag.is_some_and(|s| (0.0..1.0).contains(&s)),
            "follower {follower} lag {lag:?}:\n{page}"
        );
    }
    let wal = sample(&page, "switchboard_storage_wal_bytes", "");
    assert!(wal.is_some_and(|b| b > 0.0), "WAL bytes {wal:?}");
    assert!(sample(&page, "switchboard_storage_sst_bytes", "").is_some());
    assert_eq!(
        sample(&page, "switchboard_drain_hosts_remaining", ""),
        Some(0.0),
        "no drain under way"
    );
    // The site's certificate and its CA expire in the future, by the gauge.
    let now_s = switchboard_node::unix_ms() as f64 / 1000.0;
    for certificate in ["site", "ca"] {
        let expiry = sample(
            &page,
            "switchboard_tls_certificate_expiry_timestamp_seconds",
            &format!("certificate=\"{certificate}\""),
        );
        assert!(
            expiry.is_some_and(|at| at > now_s + 86_400.0),
            "{certificate} expiry {expiry:?}:\n{page}"
        );
    }
    // A follower's clock against the leader's, on one machine: near 0.
    let follower = (1..=3).find(|id| *id != leader).expect("a follower");
    let follower_page = http_get(
        &cluster.cluster.sites[&follower].report.http_addr,
        "/metrics",
    )
    .await;
    let offset = sample(
        &follower_page,
        "switchboard_clock_offset_from_leader_seconds",
        "",
    );
    assert!(
        offset.is_some_and(|o| o.abs() < 0.1),
        "clock offset {offset:?}:\n{follower_page}"
    );
    // Every family has help text and a type.
    let families: std::collections::BTreeSet<&str> = page
        .lines()
        .filter(|line| line.starts_with("switchboard_"))
        .filter_map(|line| line.split(['{', ' ']).next())
        .map(|name| {
            ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| name.strip_suffix(suffix))
                .filter(|base| page.contains(&format!("# TYPE {base} histogram")))
                .unwrap_or(name)
        })
        .collect();
    assert!(families.len() >= 10, "{families:?}");
    for family in &families {
        assert!(
            page.contains(&format!("# HELP {family} ")),
            "{family} has no help text"
        );
    }
    assert!(
        !page.contains("quantile="),
        "no summaries on the page:\n{page}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_followers_customer_page_shows_the_notice_and_windows_and_nothing_internal() {
    let cluster = TestCluster::start_with(TestSpec::default()).await;
    let leader = cluster.leader().await;
    let follower = (1..=3).find(|id| *id != leader).expect("a follower");
    let admin = cluster.client();
    admin
        .register_relay(pb::RegisterRelayRequest {
            request_id: new_request_id(),
            relay_id: "relay-1".into(),
            endpoint: "relay-1.internal.example:443".into(),
            region: "eu".into(),
            labels: Default::default(),
            capacity: 500,
            incarnation: 1,
        })
        .await
        .expect("relay");
    let notice = "Relays in Osaka move on Friday <b>22:00</b>";
    let hour_ms = 3_600_000;
    announce(
        &admin,
        notice,
        "relay:relay-1",
        (hour_ms, hour_ms),
        "new firmware",
    )
    .await;
    let http = cluster.cluster.sites[&follower].report.http_addr.clone();
    let page = page_showing(&http, "/status", &["new firmware"], Duration::from_secs(10)).await;
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    assert!(page.contains("All systems operational"), "{page}");
    assert!(
        page.contains("Relays in Osaka move on Friday &lt;b&gt;22:00&lt;&#x2F;b&gt;"),
        "the notice, escaped: {page}"
    );
    assert!(page.contains("<b>Planned:</b>"), "{page}");
    assert!(page.contains("Last updated"), "{page}");
    for internal in [
        "relay-1",
        "internal.example",
        "127.0.0.1",
        "500",
        cluster.cluster_id(),
    ] {
        assert!(
            !page.contains(internal),
            "{internal} on the customer page: {page}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_followers_operator_page_shows_the_leader_its_health_view_the_notice_a_drain_a_window_and_events()
 {
    let cluster = TestCluster::start_with(TestSpec::default()).await;
    let leader = cluster.leader().await;
    let follower = (1..=3).find(|id| *id != leader).expect("a follower");
    let admin = cluster.client();
    switchboard_tests::load::register_relays(&admin, 2, 100).await;
    let http = cluster.cluster.sites[&follower].report.http_addr.clone();
    // The follower looks every EVENTS_LOOK_INTERVAL_MS: let it see the
    // relay active before it is drained.
    let registered = "relay relay-1 registered (active)";
    page_showing(&http, "/", &[registered], Duration::from_secs(10)).await;
    let notice = "Osaka relays move on Friday";
    let hour_ms = 3_600_000;
    announce(
        &admin,
        notice,
        "relay:relay-2",
        (hour_ms, hour_ms),
        "firmware",
    )
    .await;
    admin
        .drain_relay("relay-1", 1_000, 0, true)
        .await
        .expect("drain");

    let wanted = [
        format!("leader: <b>site {leader}</b>"),
        format!("health and lag as leader site {leader} last reported them"),
        format!("<b>Notice:</b> {notice}"),
        "relay:relay-2".to_owned(),
        "firmware".to_owned(),
        "relay relay-1: active -&gt; ".to_owned(),
        "name=viewport".to_owned(),
    ];
    let wanted: Vec<&str> = wanted.iter().map(String::as_str).collect();
    let page = page_showing(&http, "/", &wanted, Duration::from_secs(15)).await;
    // Health as the leader sees it: every member healthy, none "-".
    let members = page
        .split("<table id=members>")
        .nth(1)
        .and_then(|rest| rest.split("</table>").next())
        .expect("a members table");
    assert_eq!(members.matches("<tr><td>").count(), 3, "{members}");
    assert_eq!(members.matches("<td>yes</td>").count(), 3, "{members}");
    // The lag in time of the two followers, as the leader measured it.
    assert_eq!(members.matches(" ms ago</td>").count(), 2, "{members}");
    let relay_1 = page
        .split("<tr><td>relay-1</td>")
        .nth(1)
        .expect("relay-1's row");
    assert!(
        !relay_1.starts_with("<td></td><td>active</td>"),
        "{relay_1}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sites_asked_for_json_logs_write_one_object_per_line() {
    let cluster = TestCluster::start_with(TestSpec {
        log_json: true,
        ..TestSpec::default()
    })
    .await;
    let leader = cluster.leader().await;
    let log_path = cluster.cluster.sites[&leader].log_path.clone();
    // The site logs the leader it noticed, once, at info.
    let noticed = format!("site {leader} became leader");
    let until = std::time::Instant::now() + Duration::from_secs(10);
    let log = loop {
        let log = std::fs::read_to_string(&log_path).expect("log");
        if log.contains(&noticed) {
            break log;
        }
        assert!(
            std::time::Instant::now() < until,
            "{noticed:?} not logged: {log}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(log.matches(&noticed).count(), 1, "{log}");
    // An admin action: logged once, at info, with who and what, by the
    // site that took the call.
    let admin = cluster.site_client(leader);
    admin
        .set_notice(&new_request_id(), "logged notice")
        .await
        .expect("notice");
    let done = "\"what\":\"set the notice\"";
    let until = std::time::Instant::now() + Duration::from_secs(10);
    let log = loop {
        let log = std::fs::read_to_string(&log_path).expect("log");
        if log.contains(done) {
            break log;
        }
        assert!(
            std::time::Instant::now() < until,
            "{done} not logged: {log}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let line = log.lines().find(|l| l.contains(done)).expect("the line");
    let object: serde_json::Value = serde_json::from_str(line).expect("JSON");
    assert_eq!(object["level"], "INFO", "{object}");
    assert!(
        object["fields"]["who"]
            .as_str()
            .is_some_and(|w| w.contains("admin")),
        "{object}"
    );
    assert_eq!(log.matches(done).count(), 1, "{log}");
    // Inside the call's span: its method and a request id.
    assert_eq!(
        object["span"]["method"], "/switchboard.v1.AdminService/SetNotice",
        "{object}"
    );
    assert!(object["span"]["request_id"].is_string(), "{object}");
    // The ready line on stdout is copied into the log too.
    let lines: Vec<&str> = log
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with("switchboard-ready "))
        .collect();
    assert!(lines.len() >= 2, "{log}");
    for line in &lines {
        let object: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(
            object["level"].is_string() && object["fields"].is_object(),
            "{object}"
        );
    }
}
