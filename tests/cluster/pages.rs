//! Both status pages in a real browser (Debian's headless `chromium`): a
//! follower's operator page and customer page, rendered at phone and
//! desktop width, their DOM checked and their screenshots kept for a person
//! to look at (in `$SWITCHBOARD_SCREENSHOT_DIR`, default
//! `/tmp/switchboard-screenshots`).

use std::path::Path;
use std::path::PathBuf;
use std::time::Duration;

use switchboard_api::new_request_id;
use switchboard_tests::TestCluster;
use switchboard_tests::TestSpec;
use switchboard_tests::announce;
use switchboard_tests::page_showing;

/// (name, width, height) of each screenshot: a phone, a desktop.
const VIEWPORTS: [(&str, u32, u32); 2] = [("phone", 390, 844), ("desktop", 1280, 900)];
/// How long one headless Chromium run may take.
const BROWSER_DEADLINE: Duration = Duration::from_secs(60);

fn chromium() -> Option<PathBuf> {
    let found = ["chromium", "chromium-browser"].iter().find_map(|name| {
        std::env::var_os("PATH")?
            .to_str()?
            .split(':')
            .map(|dir| Path::new(dir).join(name))
            .find(|path| path.exists())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "chromium is missing: ops/scripts/install-deps.sh installs it"
        );
        println!("skipped: chromium is not installed");
    }
    found
}

fn screenshot_dir() -> PathBuf {
    std::env::var_os("SWITCHBOARD_SCREENSHOT_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/tmp/switchboard-screenshots"))
}

/// Runs headless Chromium on `url` with `args`; its stdout.
async fn browse(browser: &Path, profile: &Path, args: &[String], url: &str) -> String {
    let mut command = tokio::process::Command::new(browser);
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--no-first-run",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .kill_on_drop(true);
    let output = tokio::time::timeout(BROWSER_DEADLINE, command.output())
        .await
        .expect("chromium finished within its deadline")
        .expect("chromium ran");
    assert!(output.status.success(), "chromium failed: {output:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Width and height from a PNG's IHDR chunk.
fn png_size(bytes: &[u8]) -> Option<(u32, u32)> {
    if bytes.get(..8)? != b"\x89PNG\r\n\x1a\n" || bytes.get(12..16)? != b"IHDR" {
        return None;
    }
    let word = |at: usize| Some(u32::from_be_bytes(bytes.get(at..at + 4)?.try_into().ok()?));
    Some((word(16)?, word(20)?))
}

#[test]
fn the_png_reader_reads_a_size_and_refuses_what_is_not_a_png() {
    let mut header = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR".to_vec();
    header.extend_from_slice(&390u32.to_be_bytes());
    header.extend_from_slice(&844u32.to_be_bytes());
    assert_eq!(png_size(&header), Some((390, 844)));
    assert_eq!(png_size(b"GIF89a not a png at all, long enough"), None);
    assert_eq!(png_size(&header[..18]), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_followers_pages_render_in_a_browser_at_phone_and_desktop_width() {
    let Some(browser) = chromium() else { return };
    let cluster = TestCluster::start_with(TestSpec::default()).await;
    let leader = cluster.leader().await;
    let follower = (1..=3).find(|id| *id != leader).expect("a follower");
    let admin = cluster.client();
    // Relays that heartbeat, so they stay up for the whole test.
    let services = cluster.directory_client();
    let book = switchboard_node::local::RelayBook::default();
    let mut relays = Vec::new();
    for n in 1..=3 {
        relays.push(
            switchboard_node::local::SimRelay::start(
                services.clone(),
                &book,
                &format!("relay-{n}"),
                "ap-osaka",
                100,
            )
            .await
            .expect("relay"),
        );
    }
    for n in 0..12 {
        admin
            .attach(&new_request_id(), &format!("host-{n:02}"), "")
            .await
            .expect("attach");
    }
    let notice = "Relays in Osaka move to the new hall on Friday, 22:00 UTC";
    let window = (86_400_000, 7_200_000);
    announce(&admin, notice, "relay:relay-3", window, "firmware upgrade").await;
    admin
        .drain_relay("relay-1", 1_000, 0, true)
        .await
        .expect("drain");
    let http = cluster.cluster.sites[&follower].report.http_addr.clone();
    // The follower has applied all of it before the browser looks.
    page_showing(&http, "/", &["firmware upgrade"], Duration::from_secs(15)).await;

    let profile = tempfile::tempdir().expect("browser profile");
    let dir = screenshot_dir();
    std::fs::create_dir_all(&dir).expect("screenshot dir");
    let operator = browse(
        &browser,
        profile.path(),
        &["--dump-dom".into()],
        &format!("http://{http}/"),
    )
    .await;
    for shown in [
        format!("leader: <b>site {leader}</b>"),
        notice.to_owned(),
        "relay:relay-3".to_owned(),
        "<td>relay-1</td><td>ap-osaka</td><td>drained</td>".to_owned(),
        format!("health and lag as leader site {leader} last reported them"),
    ] {
        assert!(
            operator.contains(&shown),
            "the operator page lacks {shown:?}: {operator}"
        );
    }
    let customer = browse(
        &browser,
        profile.path(),
        &["--dump-dom".into()],
        &format!("http://{http}/status"),
    )
    .await;
    for shown in [
        notice,
        "firmware upgrade",
        "Planned:",
        "All systems operational",
    ] {
        assert!(
            customer.contains(shown),
            "the customer page lacks {shown:?}: {customer}"
        );
    }
    assert!(
        !customer.contains("relay-3"),
        "no relay id for customers: {customer}"
    );

    for (page, path) in [("operator", "/"), ("customer", "/status")] {
        for (device, width, height) in VIEWPORTS {
            let file = dir.join(format!("{page}-{device}.png"));
            let _ = std::fs::remove_file(&file);
            browse(
                &browser,
                profile.path(),
                &[
                    format!("--screenshot={}", file.display()),
                    format!("--window-size={width},{height}"),
                ],
                &format!("http://{http}{path}"),
            )
            .await;
            let bytes = std::fs::read(&file).expect("a screenshot");
            assert_eq!(
                png_size(&bytes),
                Some((width, height)),
                "{}",
                file.display()
            );
            println!("screenshot: {}", file.display());
        }
    }
    drop(relays);
}
