//! The alert rules in ops/prometheus, checked by promtool and shown to
//! fail when broken, then a real Prometheus (Debian's `prometheus`)
//! scraping a 3-site cluster: a Switchboard metric read back through its
//! HTTP API, and the site-down alert firing once a site is killed.

use std::path::Path;
use std::path::PathBuf;
use std::process::Command;
use std::process::Stdio;
use std::time::Duration;
use std::time::Instant;

use switchboard_tests::TestCluster;
use switchboard_tests::TestSpec;
use switchboard_tests::http_get;

/// `SwitchboardSiteDown`'s `for:` plus scrapes and evaluations at 1 s and
/// a margin for a loaded machine.
const SITE_DOWN_FIRES_WITHIN: Duration = Duration::from_secs(60);

fn rules_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../ops/prometheus")
}

/// `promtool` from PATH, or why the test cannot run (CI installs it).
fn tool(name: &str) -> Option<PathBuf> {
    let found = std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join(name))
        .find(|path| path.exists());
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "{name} is missing: ops/scripts/install-deps.sh installs it"
        );
        println!("skipped: {name} is not installed");
    }
    found
}

fn promtool(args: &[&str], dir: &Path) -> std::process::Output {
    Command::new(tool("promtool").expect("promtool"))
        .args(args)
        .current_dir(dir)
        .output()
        .expect("run promtool")
}

#[test]
fn the_alert_rules_pass_their_unit_tests_and_a_broken_rule_fails_them() {
    if tool("promtool").is_none() {
        return;
    }
    let dir = rules_dir();
    let checked = promtool(&["check", "rules", "switchboard.rules.yml"], &dir);
    assert!(checked.status.success(), "{checked:?}");
    let tested = promtool(&["test", "rules", "switchboard.rules.test.yml"], &dir);
    assert!(tested.status.success(), "{tested:?}");

    // The same tests against a rule that waits far too long: they fail.
    let broken = tempfile::tempdir().expect("temp dir");
    let rules = std::fs::read_to_string(dir.join("switchboard.rules.yml")).expect("rules");
    let slow = rules.replacen("for: 20s", "for: 10m", 1);
    assert_ne!(slow, rules, "the site-down rule waits 20 s");
    std::fs::write(broken.path().join("switchboard.rules.yml"), slow).expect("write");
    std::fs::copy(
        dir.join("switchboard.rules.test.yml"),
        broken.path().join("switchboard.rules.test.yml"),
    )
    .expect("copy");
    let refused = promtool(
        &["test", "rules", "switchboard.rules.test.yml"],
        broken.path(),
    );
    assert!(
        !refused.status.success(),
        "a broken rule passed: {refused:?}"
    );
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&refused.stdout),
        String::from_utf8_lossy(&refused.stderr)
    );
    assert!(said.contains("SwitchboardSiteDown"), "{said}");
}

/// A Prometheus process, killed when dropped.
struct Prometheus {
    child: std::process::Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_prometheus(binary: &Path, targets: &[String]) -> Prometheus {
    let dir = tempfile::tempdir().expect("temp dir");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let rules = rules_dir().join("switchboard.rules.yml");
    let targets: Vec<String> = targets.iter().map(|t| format!("'{t}'")).collect();
    let config = format!(
        "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n  evaluation_interval: 1s\n\
         rule_files:\n  - '{}'\n\
         scrape_configs:\n  - job_name: switchboard\n    static_configs:\n      - targets: [{}]\n",
        rules.display(),
        targets.join(", ")
    );
    let config_path = dir.path().join("prometheus.yml");
    std::fs::write(&config_path, config).expect("config");
    let log = std::fs::File::create(dir.path().join("prometheus.log")).expect("log");
    let addr = format!("127.0.0.1:{port}");
    let child = Command::new(binary)
        .arg(format!("--config.file={}", config_path.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.path().join("data").display()
        ))
        .arg(format!("--web.listen-address={addr}"))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start prometheus");
    Prometheus {
        child,
        addr,
        _dir: dir,
    }
}

/// The JSON body of a Prometheus API answer, once it answers 200.
async fn api(prometheus: &Prometheus, path: &str) -> Option<serde_json::Value> {
    let addr = prometheus.addr.clone();
    let response = tokio::time::timeout(Duration::from_secs(5), async move {
        tokio::net::TcpStream::connect(&addr).await.ok()?;
        Some(http_get(&addr, path).await)
    })
    .await
    .ok()??;
    let (head, body) = response.split_once("\r\n\r\n")?;
    if !head.starts_with("HTTP/1.1 200") {
        return None;
    }
    serde_json::from_str(body).ok()
}

async fn poll<T>(within: Duration, what: &str, mut check: impl AsyncFnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(Instant::now() < deadline, "{what} within {within:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_real_prometheus_reads_the_metrics_and_fires_site_down() {
    let Some(binary) = tool("prometheus") else {
        return;
    };
    let mut cluster = TestCluster::start_with(TestSpec::default()).await;
    let leader = cluster.leader().await;
    let targets: Vec<String> = (1..=3)
        .map(|id| cluster.cluster.sites[&id].report.http_addr.clone())
        .collect();
    let prometheus = start_prometheus(&binary, &targets);

    // Every site's term, read back through Prometheus.
    let terms = poll(Duration::from_secs(30), "three sites' terms", async || {
        let answer = api(&prometheus, "/api/v1/query?query=switchboard_raft_term").await?;
        let series = answer["data"]["result"].as_array()?.clone();
        (series.len() == 3).then_some(series)
    })
    .await;
    for series in &terms {
        let term: f64 = series["value"][1]
            .as_str()
            .and_then(|v| v.parse().ok())
            .expect("a value");
        assert!(term >= 1.0, "{series}");
    }

    let victim = (1..=3).find(|id| *id != leader).expect("a follower");
    let victim_addr = cluster.cluster.sites[&victim].report.http_addr.clone();
    cluster.cluster.kill(victim).expect("kill -9");
    let killed_at = Instant::now();
    let alert = poll(
        SITE_DOWN_FIRES_WITHIN,
        "SwitchboardSiteDown firing",
        async || {
            let answer = api(&prometheus, "/api/v1/alerts").await?;
            answer["data"]["alerts"]
                .as_array()?
                .iter()
                .find(|a| {
                    a["labels"]["alertname"] == "SwitchboardSiteDown" && a["state"] == "firing"
                })
                .cloned()
        },
    )
    .await;
    assert_eq!(alert["labels"]["instance"], victim_addr.as_str(), "{alert}");
    println!(
        "SwitchboardSiteDown fired {} ms after kill -9 of site {victim} (for: 20 s, scrapes at 1 s)",
        killed_at.elapsed().as_millis()
    );
    // Only the killed site is down.
    let answer = api(&prometheus, "/api/v1/alerts").await.expect("alerts");
    let down: Vec<&serde_json::Value> = answer["data"]["alerts"]
        .as_array()
        .expect("alerts")
        .iter()
        .filter(|a| a["labels"]["alertname"] == "SwitchboardSiteDown")
        .collect();
    assert_eq!(down.len(), 1, "{answer}");
}
