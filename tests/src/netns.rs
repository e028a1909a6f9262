//! Sites on hosts of their own: one network namespace per site, each with
//! its own address on a veth pair to a bridge in the test's namespace, so
//! that faults act on real links and real packets.
//!
//! The test process sits on the bridge too (`10.213.N.254`), so clients can
//! reach every site while sites are cut off from each other. Faults:
//!
//! - [`Network::link`]: a site's cable out (its bridge port down): nobody
//!   reaches it, it reaches nobody, and no reset is sent (as in a power cut
//!   or a cut line).
//! - [`Network::cut`]: packets from one site to another dropped by nftables
//!   in the sender's namespace, the other direction untouched (a one-way
//!   cut; TCP then delivers requests one way and loses their answers).
//! - [`Network::split`]: both directions cut between two groups of sites,
//!   clients still reaching both (a partition of the sites' network).
//!
//! Making namespaces needs root, `ip` (iproute2) and `nft` (nftables);
//! [`Network::create`] says what is missing, and callers that cannot run
//! without it say so loudly and skip.

use std::collections::BTreeMap;
use std::process::Command;

use crate::SiteHost;

/// The first two octets of every test network (10.213.0.0/16, a range no
/// service of these machines uses).
const PREFIX: &str = "10.213";
/// The test's own address on each network.
const TEST_HOST: u8 = 254;
/// The nftables table each namespace's cuts live in.
const TABLE: &str = "switchboard_faults";
/// Tries at finding an unused tag and subnet before giving up.
const CREATE_TRIES_MAX: usize = 8;

/// A test network of one namespace per site; removed on drop.
pub struct Network {
    tag: String,
    subnet: u8,
    sites: Vec<u64>,
}

/// Why a test network could not be made.
#[derive(Debug, thiserror::Error)]
#[error("network namespaces unavailable: {0}")]
pub struct Unavailable(String);

fn run(program: &str, args: &[&str]) -> Result<(), Unavailable> {
    let output = Command::new(program)
        .args(args)
        .output()
        .map_err(|e| Unavailable(format!("{program}: {e}")))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(Unavailable(format!(
            "`{program} {}` failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        )))
    }
}

/// Whether this process's effective user is root (from /proc, which says
/// "Uid: real effective saved fs").
fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status").is_ok_and(|status| {
        status
            .lines()
            .find_map(|line| line.strip_prefix("Uid:"))
            .and_then(|ids| ids.split_whitespace().nth(1))
            == Some("0")
    })
}

impl Network {
    /// Makes one namespace per site id, joined by a fresh bridge.
    pub fn create(sites: &[u64]) -> Result<Network, Unavailable> {
        if !running_as_root() {
            return Err(Unavailable("the tests do not run as root".into()));
        }
        let mut last = Unavailable("no try made".into());
        for _ in 0..CREATE_TRIES_MAX {
            let network = Network {
                tag: format!("{:04x}", rand::random::<u16>()),
                subnet: rand::random_range(1..=250),
                sites: sites.to_vec(),
            };
            match network.build() {
                Ok(()) => return Ok(network),
                // Drop removes whatever part was made.
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    fn bridge(&self) -> String {
        format!("sb{}br", self.tag)
    }

    fn cable(&self, id: u64) -> String {
        format!("sb{}v{id}", self.tag)
    }

    /// The namespace site `id` runs in.
    pub fn namespace(&self, id: u64) -> String {
        format!("sb-{}-{id}", self.tag)
    }

    /// Site `id`'s address.
    pub fn ip(&self, id: u64) -> String {
        assert!(
            id < u64::from(TEST_HOST),
            "site ids stay below .{TEST_HOST}"
        );
        format!("{PREFIX}.{}.{id}", self.subnet)
    }

    fn build(&self) -> Result<(), Unavailable> {
        let taken = Command::new("ip")
            .args(["-o", "addr"])
            .output()
            .map_err(|e| Unavailable(format!("ip: {e}")))?;
        let subnet = format!(" {PREFIX}.{}.", self.subnet);
        if String::from_utf8_lossy(&taken.stdout).contains(&subnet) {
            return Err(Unavailable(format!("{subnet} is in use")));
        }
        let bridge = self.bridge();
        let test_host = format!("{PREFIX}.{}.{TEST_HOST}/24", self.subnet);
        run("ip", &["link", "add", &bridge, "type", "bridge"])?;
        run("ip", &["addr", "add", &test_host, "dev", &bridge])?;
        run("ip", &["link", "set", &bridge, "up"])?;
        for &id in &self.sites {
            self.add_host(id)?;
        }
        Ok(())
    }

    fn add_host(&self, id: u64) -> Result<(), Unavailable> {
        let (namespace, cable) = (self.namespace(id), self.cable(id));
        let address = format!("{}/24", self.ip(id));
        run("ip", &["netns", "add", &namespace])?;
        run(
            "ip",
            &[
                "link", "add", &cable, "type", "veth", "peer", "name", "eth0", "netns", &namespace,
            ],
        )?;
        run(
            "ip",
            &["link", "set", &cable, "master", &self.bridge(), "up"],
        )?;
        self.inside(id, "ip", &["addr", "add", &address, "dev", "eth0"])?;
        self.inside(id, "ip", &["link", "set", "eth0", "up"])?;
        self.inside(id, "ip", &["link", "set", "lo", "up"])?;
        self.inside(id, "nft", &["add", "table", "inet", TABLE])?;
        self.inside(
            id,
            "nft",
            &[
                "add",
                "chain",
                "inet",
                TABLE,
                "out",
                "{ type filter hook output priority 0; policy accept; }",
            ],
        )
    }

    fn inside(&self, id: u64, program: &str, args: &[&str]) -> Result<(), Unavailable> {
        let namespace = self.namespace(id);
        let mut all = vec!["netns", "exec", namespace.as_str(), program];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    /// Where each site runs, for the launcher.
    pub fn site_hosts(&self) -> BTreeMap<u64, SiteHost> {
        self.sites
            .iter()
            .map(|&id| {
                let host = SiteHost {
                    ip: self.ip(id),
                    exec_prefix: vec![
                        "ip".into(),
                        "netns".into(),
                        "exec".into(),
                        self.namespace(id),
                    ],
                };
                (id, host)
            })
            .collect()
    }

    /// Plugs site `id`'s cable in (`up`) or pulls it out.
    pub fn link(&self, id: u64, up: bool) {
        let state = if up { "up" } else { "down" };
        run("ip", &["link", "set", &self.cable(id), state])
            .unwrap_or_else(|e| panic!("link of site {id} {state}: {e}"));
    }

    /// Drops every packet site `from` sends to site `to`.
    pub fn cut(&self, from: u64, to: u64) {
        let rule = format!("ip daddr {} drop", self.ip(to));
        let mut args = vec!["add", "rule", "inet", TABLE, "out"];
        args.extend(rule.split(' '));
        self.inside(from, "nft", &args)
            .unwrap_or_else(|e| panic!("cutting {from} -> {to}: {e}"));
    }

    /// Cuts both directions between every site of `one` and every site of
    /// `other`; clients still reach all of them.
    pub fn split(&self, one: &[u64], other: &[u64]) {
        for &a in one {
            for &b in other {
                self.cut(a, b);
                self.cut(b, a);
            }
        }
    }

    /// Every cable in, every cut mended.
    pub fn heal(&self) {
        for &id in &self.sites {
            self.link(id, true);
            self.inside(id, "nft", &["flush", "chain", "inet", TABLE, "out"])
                .unwrap_or_else(|e| panic!("mending the cuts of site {id}: {e}"));
        }
    }
}

impl Drop for Network {
    fn drop(&mut self) {
        // Deleting a namespace deletes the veth end inside it, and with it
        // the end on the bridge.
        for &id in &self.sites {
            let _ = run("ip", &["netns", "del", &self.namespace(id)]);
        }
        let _ = run("ip", &["link", "del", &self.bridge()]);
    }
}

/// A network for `sites`, or `None` after saying loudly why there is none:
/// tests that need real links then skip, and say so in their output. Under
/// `SWITCHBOARD_REQUIRE_NETNS=1` (as `.ci/run` sets) a missing network is a
/// failure, not a skip.
pub fn network_or_say_why(sites: &[u64], test: &str) -> Option<Network> {
    match Network::create(sites) {
        Ok(network) => Some(network),
        Err(why) if std::env::var_os("SWITCHBOARD_REQUIRE_NETNS").is_some() => {
            panic!("{test}: {why}; SWITCHBOARD_REQUIRE_NETNS is set")
        }
        Err(why) => {
            let banner = "!".repeat(72);
            eprintln!(
                "{banner}\n{test}: SKIPPED, NOT RUN: {why}.\nIt needs its sites in network namespaces (root, iproute2, nftables).\n{banner}"
            );
            println!("{test}: SKIPPED: {why}");
            None
        }
    }
}
