//! sbctl against a real cluster: tables, JSON, and clear failures.

use std::process::Command;

use switchboard_tests::TestCluster;
use switchboard_tests::binary;
use switchboard_tests::sbctl;
use switchboard_tests::text;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sbctl_shows_status_manages_relays_and_fails_clearly() {
    let cluster = TestCluster::start().await;
    let leader = cluster.leader().await;
    let cluster_json = cluster.cluster_json();

    let status = sbctl(&cluster_json, &["status"]).await;
    assert!(status.status.success(), "{}", text(&status.stderr));
    let table = text(&status.stdout);
    assert_eq!(
        table.lines().count(),
        4,
        "a header and one row per site:\n{table}"
    );
    assert_eq!(table.matches(" leader ").count(), 1, "one leader:\n{table}");

    let status = sbctl(&cluster_json, &["status", "--json"]).await;
    let sites: serde_json::Value =
        serde_json::from_slice(&status.stdout).expect("status --json is JSON");
    let sites = sites.as_array().expect("an array of sites");
    assert_eq!(sites.len(), 3);
    assert!(
        sites.iter().all(|s| s["leader_id"] == leader),
        "every site names the same leader: {sites:?}"
    );

    let register = sbctl(
        &cluster_json,
        &[
            "relay",
            "register",
            "relay-a",
            "--endpoint",
            "relay-a.test:443",
            "--capacity",
            "10",
            "--region",
            "eu",
            "--label",
            "power-feed=a",
        ],
    )
    .await;
    assert!(register.status.success(), "{}", text(&register.stderr));
    let attach = sbctl(&cluster_json, &["host", "attach", "h1", "--json"]).await;
    assert!(attach.status.success(), "{}", text(&attach.stderr));
    let route: serde_json::Value = serde_json::from_slice(&attach.stdout).expect("JSON route");
    assert_eq!(route["relay_id"], "relay-a");
    let get = sbctl(
        &cluster_json,
        &["route", "get", "h1", "--linearizable", "--json"],
    )
    .await;
    let read: serde_json::Value = serde_json::from_slice(&get.stdout).expect("JSON route");
    assert_eq!(read["generation"], route["generation"]);
    let list = sbctl(&cluster_json, &["relay", "list"]).await;
    assert!(
        text(&list.stdout).contains("relay-a"),
        "{}",
        text(&list.stdout)
    );

    let missing = sbctl(&cluster_json, &["route", "get", "nobody"]).await;
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        text(&missing.stderr).contains("has no route"),
        "{}",
        text(&missing.stderr)
    );
    let invalid = sbctl(&cluster_json, &["host", "attach", "bad host"]).await;
    assert_eq!(invalid.status.code(), Some(1));
    assert!(
        text(&invalid.stderr).contains("invalid host_id"),
        "{}",
        text(&invalid.stderr)
    );

    let nowhere = Command::new(binary("sbctl"))
        .args([
            "--endpoints",
            "127.0.0.1:9",
            "--insecure",
            "--timeout-secs",
            "2",
            "status",
        ])
        .output()
        .expect("run sbctl");
    assert_eq!(nowhere.status.code(), Some(1));
    assert!(
        text(&nowhere.stderr).contains("no site answered"),
        "{}",
        text(&nowhere.stderr)
    );
    let no_target = Command::new(binary("sbctl"))
        .arg("status")
        .env_remove("SBCTL_CLUSTER")
        .env_remove("SBCTL_ENDPOINTS")
        .output()
        .expect("run");
    assert_eq!(no_target.status.code(), Some(2));
    assert!(
        text(&no_target.stderr).contains("--endpoints"),
        "{}",
        text(&no_target.stderr)
    );
}
