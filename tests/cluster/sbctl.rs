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

    let notice = "relays move on Friday";
    let set = sbctl(&cluster_json, &["notice", "set", notice]).await;
    assert!(set.status.success(), "{}", text(&set.stderr));
    // A site named by --endpoints and by the cluster file is asked once.
    let named_twice = cluster.api(leader);
    let status = sbctl(
        &cluster_json,
        &["--endpoints", &named_twice, "status", "--json"],
    )
    .await;
    let whole: serde_json::Value =
        serde_json::from_slice(&status.stdout).expect("status --json is JSON");
    assert_eq!(
        whole["notice"], notice,
        "the notice the table prints: {whole}"
    );
    assert!(whole["maintenance"].is_array(), "{whole}");
    let sites = whole["sites"].as_array().expect("an array of sites");
    assert_eq!(sites.len(), 3, "{whole}");
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
    // A script asking for JSON gets the failure as JSON on stdout.
    let invalid = sbctl(&cluster_json, &["host", "attach", "bad host", "--json"]).await;
    assert_eq!(invalid.status.code(), Some(1));
    let failure: serde_json::Value =
        serde_json::from_slice(&invalid.stdout).expect("a JSON error on stdout");
    assert_eq!(failure["error"]["code"], "InvalidArgument", "{failure}");
    assert!(
        failure["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("invalid host_id")),
        "{failure}"
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

/// A cluster built by hand as the runbook does it: sites started with
/// empty data dirs, `sbctl init`, a site added with `members add-learner`
/// (its labels taken from its own config), one added without labels (the
/// topology check warns that it cannot place it), and `notice set --json`
/// printing an object.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cluster_built_by_hand_with_sbctl_keeps_every_sites_failure_domain() {
    let mut cluster = TestCluster::start_with(switchboard_tests::TestSpec {
        bootstrap: switchboard_tests::Bootstrap::Manual,
        ..switchboard_tests::TestSpec::default()
    })
    .await;
    let cluster_json = cluster.cluster_json();
    let init = switchboard_tests::sbctl_json(&cluster_json, &["init"]).await;
    let members = init.as_array().expect("the first voters");
    assert_eq!(members.len(), 3, "{init}");
    for (n, member) in members.iter().enumerate() {
        assert_eq!(
            member["labels"]["datacenter"],
            format!("dc-{}", n + 1),
            "each site's own labels: {member}"
        );
    }
    let again = sbctl(&cluster_json, &["init"]).await;
    assert!(!again.status.success(), "a cluster is initialized once");
    cluster.leader().await;

    let fourth = cluster
        .cluster
        .spawn_additional_site()
        .expect("a fourth site");
    let endpoints = cluster.cluster.endpoints(fourth).expect("endpoints");
    let id = fourth.to_string();
    let added = switchboard_tests::sbctl_json(
        &cluster_json,
        &[
            "members",
            "add-learner",
            "--id",
            &id,
            "--name",
            &endpoints.name,
            "--raft",
            &endpoints.raft_addr,
            "--api",
            &endpoints.api_addr,
            "--http",
            &endpoints.http_addr,
            "--wait",
        ],
    )
    .await;
    let joined = added
        .as_array()
        .expect("members")
        .iter()
        .find(|m| m["site_id"] == fourth)
        .cloned()
        .expect("the fourth site is a member");
    assert_eq!(
        joined["labels"]["datacenter"], "dc-4",
        "labels from the site's own config: {joined}"
    );
    let bad_label = sbctl(
        &cluster_json,
        &[
            "members",
            "add-learner",
            "--id",
            "9",
            "--name",
            "x",
            "--raft",
            "a:1",
            "--api",
            "a:2",
            "--http",
            "a:3",
            "--label",
            "nolabel",
        ],
    )
    .await;
    assert!(!bad_label.status.success());
    assert!(
        text(&bad_label.stderr).contains("is not key=value"),
        "{}",
        text(&bad_label.stderr)
    );

    // A fifth site added through the API with no labels, and promoted: the
    // check cannot place it, and says so.
    let fifth = cluster
        .cluster
        .spawn_additional_site()
        .expect("a fifth site");
    let mut endpoints = cluster.cluster.endpoints(fifth).expect("endpoints");
    endpoints.labels.clear();
    let admin = cluster.client();
    admin.add_learner(endpoints).await.expect("add learner");
    admin
        .wait_caught_up(fifth, std::time::Duration::from_secs(30), |_, _| {})
        .await
        .expect("caught up");
    admin.promote_voter(fifth, true).await.expect("promote");
    let check = sbctl(&cluster.cluster_json(), &["topology", "check"]).await;
    let warned = text(&check.stderr);
    assert!(
        warned.contains(&format!("warning: site {fifth} cannot be placed"))
            && warned.contains("no datacenter label"),
        "{warned}"
    );

    let notice =
        switchboard_tests::sbctl_json(&cluster_json, &["notice", "set", "back at 06:00"]).await;
    assert_eq!(notice["notice"], "back at 06:00", "{notice}");
    assert!(notice["epoch"].as_u64().is_some(), "{notice}");
}
