//! Reads at any site: forwarded writes, linearizable follower reads, and
//! local reads bounded by staleness.

use std::time::Duration;

use switchboard_api::new_request_id;
use switchboard_proto::v1 as pb;
use switchboard_tests::TestCluster;
use switchboard_tests::TestSpec;
use switchboard_tests::Timing;
use switchboard_tests::wait_until;
use tonic::Code;

use switchboard_tests::load::register_relays;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn writes_at_any_site_and_reads_with_bounded_staleness() {
    // A default bound short enough to pass within the test: a caller that
    // names no bound (max_stale_ms 0) gets the site's, never "any".
    let default_bound_ms = 3 * Timing::lan().election_max_ms;
    let mut cluster = TestCluster::start_with(TestSpec {
        timing: Timing {
            local_read_stale_ms_max: default_bound_ms,
            ..Timing::lan()
        },
        ..TestSpec::default()
    })
    .await;
    register_relays(&cluster.client(), 2, 1_000).await;
    let leader = cluster.leader().await;
    let followers: Vec<u64> = (1..=3).filter(|s| *s != leader).collect();
    let (writer, reader) = (followers[0], followers[1]);

    // A write sent to a follower is forwarded; a linearizable read at the
    // other follower sees it at once.
    let attached = cluster
        .site_client(writer)
        .attach(&new_request_id(), "h1", "")
        .await
        .expect("attach at a follower");
    let read = cluster
        .site_client(reader)
        .resolve("h1", pb::Consistency::Linearizable, 0)
        .await
        .expect("linearizable read");
    assert_eq!(read.route, attached.route);
    assert!(read.applied_index >= attached.applied_index);
    assert_eq!(read.served_by_site, reader);

    // Local reads carry their staleness; a healthy follower is fresh within a few heartbeats.
    let fresh_bound = 4 * cluster.timing().heartbeat_ms;
    let reader_client = cluster.site_client_with_deadline(reader, Duration::from_millis(500));
    wait_until(
        Duration::from_secs(5),
        "the follower reports fresh state",
        || {
            let reader_client = &reader_client;
            async move {
                reader_client
                    .resolve("h1", pb::Consistency::Local, 0)
                    .await
                    .is_ok_and(|r| r.staleness_ms <= fresh_bound)
            }
        },
    )
    .await;

    // Cut the reader off: with the leader and the other follower gone it
    // hears from no leader, so its staleness grows past any bound asked for.
    cluster.cluster.kill(leader).expect("kill");
    cluster.cluster.kill(writer).expect("kill");
    let max_stale_ms = 2 * cluster.timing().election_max_ms;
    wait_until(
        Duration::from_secs(10),
        "the cut-off site grows stale",
        || {
            let reader_client = &reader_client;
            async move {
                reader_client
                    .resolve("h1", pb::Consistency::Local, 0)
                    .await
                    .is_ok_and(|r| r.staleness_ms > max_stale_ms)
            }
        },
    )
    .await;
    let refused = reader_client
        .resolve("h1", pb::Consistency::Local, max_stale_ms)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Some(Code::Unavailable), "{refused}");
    assert!(refused.to_string().contains("stale"), "{refused}");
    // Naming no bound is no way round it: past the site's default bound
    // the same read is refused too.
    wait_until(
        Duration::from_millis(default_bound_ms + 5_000),
        "a read with no bound is refused past the site's default",
        || {
            let reader_client = &reader_client;
            async move {
                let read = reader_client.resolve("h1", pb::Consistency::Local, 0).await;
                match read {
                    Ok(r) => {
                        assert!(
                            r.staleness_ms <= default_bound_ms,
                            "served {} ms stale",
                            r.staleness_ms
                        );
                        false
                    }
                    Err(e) => {
                        e.code() == Some(Code::Unavailable) && e.to_string().contains("bound")
                    }
                }
            }
        },
    )
    .await;
    let patient = cluster.site_client(reader);
    let refused = patient
        .resolve("h1", pb::Consistency::Linearizable, 0)
        .await
        .unwrap_err();
    assert_eq!(
        refused.code(),
        Some(Code::Unavailable),
        "no linearizable read without a quorum: {refused}"
    );

    // Restarted alone, it has heard from no leader since it started: its
    // state may predate anything, so it serves no local read at any bound.
    cluster.cluster.kill(reader).expect("kill");
    cluster.cluster.restart(reader).expect("restart");
    let refused = cluster
        .site_client_with_deadline(reader, Duration::from_millis(500))
        .resolve("h1", pb::Consistency::Local, 0)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Some(Code::Unavailable), "{refused}");
    assert!(
        refused.to_string().contains("since it started"),
        "{refused}"
    );

    // Back together, the site is fresh again.
    cluster.cluster.restart(leader).expect("restart");
    cluster.cluster.restart(writer).expect("restart");
    cluster.leader().await;
    wait_until(Duration::from_secs(10), "the site is fresh again", || {
        let reader_client = &reader_client;
        async move {
            reader_client
                .resolve("h1", pb::Consistency::Local, max_stale_ms)
                .await
                .is_ok()
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_input_is_refused_with_a_clear_status_and_changes_nothing() {
    let cluster = TestCluster::start().await;
    let client = cluster.client();
    register_relays(&client, 1, 1).await;
    let leader = cluster.leader().await;
    let before = cluster.status(leader).await;

    let cases: Vec<(
        &str,
        Result<pb::AttachResponse, switchboard_api::ClientError>,
    )> = vec![
        (
            "empty host id",
            client.attach(&new_request_id(), "", "").await,
        ),
        (
            "host id with a space",
            client.attach(&new_request_id(), "a b", "").await,
        ),
        (
            "overlong host id",
            client.attach(&new_request_id(), &"x".repeat(200), "").await,
        ),
        (
            "bad region",
            client.attach(&new_request_id(), "h", "Not A Region").await,
        ),
        ("short request id", client.attach(&[1, 2, 3], "h", "").await),
    ];
    for (what, result) in cases {
        let error = result.expect_err(what);
        assert_eq!(error.code(), Some(Code::InvalidArgument), "{what}: {error}");
    }
    let bad_relay = client
        .register_relay(pb::RegisterRelayRequest {
            request_id: new_request_id(),
            relay_id: "relay-x".into(),
            endpoint: "no-port".into(),
            region: String::new(),
            labels: Default::default(),
            capacity: 10,
            incarnation: 1,
        })
        .await
        .expect_err("an endpoint without a port");
    assert_eq!(bad_relay.code(), Some(Code::InvalidArgument));
    assert!(bad_relay.to_string().contains("endpoint"), "{bad_relay}");

    // A site name that would rewrite an operator's terminal.
    let bad_site = client
        .add_learner(pb::SiteEndpoints {
            site_id: 9,
            name: "<script>\x1b[2J".into(),
            raft_addr: "127.0.0.1:1".into(),
            api_addr: "127.0.0.1:2".into(),
            http_addr: "127.0.0.1:3".into(),
            labels: Default::default(),
        })
        .await
        .expect_err("a site name with an escape sequence");
    assert_eq!(bad_site.code(), Some(Code::InvalidArgument), "{bad_site}");
    assert!(bad_site.to_string().contains("printable"), "{bad_site}");
    // Windows that start in the year 9999, or near the end of u64 time.
    let year_9999_ms = 253_402_000_000_000;
    for start in [year_9999_ms, u64::MAX - 3_600_000] {
        let far = client
            .schedule_maintenance("relay:relay-1", start, start + 3_600_000, "typo")
            .await
            .expect_err("a window that starts too far ahead");
        assert_eq!(far.code(), Some(Code::InvalidArgument), "{far}");
        assert!(far.to_string().contains("within a year"), "{far}");
    }

    let after = cluster.status(leader).await;
    assert_eq!(
        after.last_log_index, before.last_log_index,
        "refused input never reaches the log"
    );

    // The relay has room for one host: the second is refused and keeps nothing.
    client
        .attach(&new_request_id(), "first", "")
        .await
        .expect("first attach");
    let full = client
        .attach(&new_request_id(), "second", "")
        .await
        .expect_err("no room");
    assert_eq!(full.code(), Some(Code::ResourceExhausted), "{full}");
    let missing = client
        .resolve("second", pb::Consistency::Linearizable, 0)
        .await
        .expect_err("not attached");
    assert_eq!(missing.code(), Some(Code::NotFound));
}
