//! The topology check: which single failure domain (a region, a datacenter,
//! a power feed, an uplink, any label) would cost quorum, or more than a
//! given share of relay capacity, if everything in it failed together.
//! A pure function of the sites' and relays' labels.

use std::collections::BTreeMap;
use std::collections::BTreeSet;

use serde::Serialize;

use crate::safety::quorum;

/// A site as the check sees it.
#[derive(Clone, Debug)]
pub struct TopologySite {
    /// Its id.
    pub site_id: u64,
    /// Whether it votes.
    pub voter: bool,
    /// Its failure-domain labels.
    pub labels: BTreeMap<String, String>,
}

/// A relay as the check sees it.
#[derive(Clone, Debug)]
pub struct TopologyRelay {
    /// Its id.
    pub relay_id: String,
    /// Its region counts as the label `region` unless a label says otherwise.
    pub region: String,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Hosts it may carry.
    pub capacity: u32,
    /// Only relays in service count towards capacity.
    pub in_service: bool,
}

/// One failure domain and what its loss would cost.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct DomainRisk {
    /// The label (region, power, ...).
    pub label: String,
    /// Its value.
    pub value: String,
    /// The sites in the domain.
    pub sites: Vec<u64>,
    /// Voters in the domain.
    pub voters_in_domain: usize,
    /// Voters in the cluster.
    pub voters_total: usize,
    /// Losing the domain leaves fewer voters than a quorum.
    pub quorum_lost: bool,
    /// The relays in the domain.
    pub relays: Vec<String>,
    /// Share of in-service relay capacity in the domain, 0 to 1.
    pub capacity_share: f64,
    /// The share is over the limit asked for.
    pub capacity_critical: bool,
}

impl DomainRisk {
    /// Whether this domain is a single point of failure.
    pub fn critical(&self) -> bool {
        self.quorum_lost || self.capacity_critical
    }
}

fn relay_labels(relay: &TopologyRelay) -> BTreeMap<String, String> {
    let mut labels = relay.labels.clone();
    if !relay.region.is_empty() {
        labels
            .entry("region".to_owned())
            .or_insert_with(|| relay.region.clone());
    }
    labels
}

/// Every label value shared by a site or relay, and what its loss costs;
/// critical ones first, then by label and value.
pub fn analyze(
    sites: &[TopologySite],
    relays: &[TopologyRelay],
    capacity_share_max: f64,
) -> Vec<DomainRisk> {
    let mut domains: BTreeSet<(String, String)> = BTreeSet::new();
    for site in sites {
        domains.extend(site.labels.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    for relay in relays {
        domains.extend(relay_labels(relay));
    }
    let voters_total = sites.iter().filter(|s| s.voter).count();
    let capacity_total: u64 = relays
        .iter()
        .filter(|r| r.in_service)
        .map(|r| u64::from(r.capacity))
        .sum();
    let mut risks: Vec<DomainRisk> = domains
        .into_iter()
        .map(|(label, value)| {
            let in_domain = |labels: &BTreeMap<String, String>| labels.get(&label) == Some(&value);
            let sites_in: Vec<&TopologySite> =
                sites.iter().filter(|s| in_domain(&s.labels)).collect();
            let voters_in_domain = sites_in.iter().filter(|s| s.voter).count();
            let relays_in: Vec<&TopologyRelay> = relays
                .iter()
                .filter(|r| in_domain(&relay_labels(r)))
                .collect();
            let capacity_in: u64 = relays_in
                .iter()
                .filter(|r| r.in_service)
                .map(|r| u64::from(r.capacity))
                .sum();
            let capacity_share = if capacity_total == 0 {
                0.0
            } else {
                capacity_in as f64 / capacity_total as f64
            };
            DomainRisk {
                quorum_lost: voters_total > 0
                    && voters_in_domain > 0
                    && voters_total - voters_in_domain < quorum(voters_total),
                capacity_critical: capacity_in > 0 && capacity_share > capacity_share_max,
                sites: sites_in.iter().map(|s| s.site_id).collect(),
                relays: relays_in.iter().map(|r| r.relay_id.clone()).collect(),
                voters_in_domain,
                voters_total,
                capacity_share,
                label,
                value,
            }
        })
        .collect();
    risks.sort_by(|a, b| {
        b.critical()
            .cmp(&a.critical())
            .then_with(|| (&a.label, &a.value).cmp(&(&b.label, &b.value)))
    });
    risks
}

/// A voter the check cannot place: it lacks a label that other voters
/// have (it joined without the labels its config gives it, say), or no
/// voter has any label at all, so no domain can be checked.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct MissingDomain {
    /// The voter.
    pub site_id: u64,
    /// The labels other voters have and it lacks; empty when no voter has
    /// any.
    pub missing: Vec<String>,
}

/// The voters whose failure domains are unknown to the check.
pub fn missing_domains(sites: &[TopologySite]) -> Vec<MissingDomain> {
    let voters: Vec<&TopologySite> = sites.iter().filter(|s| s.voter).collect();
    let keys: BTreeSet<&String> = voters.iter().flat_map(|s| s.labels.keys()).collect();
    voters
        .iter()
        .filter_map(|site| {
            let missing: Vec<String> = keys
                .iter()
                .filter(|key| !site.labels.contains_key(key.as_str()))
                .map(|key| (*key).clone())
                .collect();
            (keys.is_empty() || !missing.is_empty()).then_some(MissingDomain {
                site_id: site.site_id,
                missing,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn site(id: u64, labels: &[(&str, &str)]) -> TopologySite {
        TopologySite {
            site_id: id,
            voter: true,
            labels: labels
                .iter()
                .map(|(k, v)| ((*k).into(), (*v).into()))
                .collect(),
        }
    }

    fn relay(id: &str, region: &str, feed: &str, capacity: u32) -> TopologyRelay {
        TopologyRelay {
            relay_id: id.into(),
            region: region.into(),
            labels: [("power-feed".to_owned(), feed.to_owned())]
                .into_iter()
                .collect(),
            capacity,
            in_service: true,
        }
    }

    #[test]
    fn two_voters_on_one_power_feed_are_critical() {
        let sites = [
            site(1, &[("datacenter", "tokyo"), ("power-feed", "a")]),
            site(2, &[("datacenter", "osaka"), ("power-feed", "a")]),
            site(3, &[("datacenter", "oregon"), ("power-feed", "b")]),
        ];
        let risks = analyze(&sites, &[], 0.5);
        let critical: Vec<(&str, &str)> = risks
            .iter()
            .filter(|r| r.critical())
            .map(|r| (r.label.as_str(), r.value.as_str()))
            .collect();
        assert_eq!(critical, vec![("power-feed", "a")]);
        let feed_a = &risks[0];
        assert_eq!(feed_a.sites, vec![1, 2]);
        assert!(feed_a.quorum_lost);
        assert!(
            risks
                .iter()
                .filter(|r| r.label == "datacenter")
                .all(|r| !r.critical()),
            "one site per datacenter is fine"
        );
    }

    #[test]
    fn relay_capacity_over_the_share_is_critical() {
        let relays = [
            relay("r1", "eu", "a", 600),
            relay("r2", "eu", "b", 300),
            relay("r3", "us", "b", 100),
        ];
        let risks = analyze(&[], &relays, 0.5);
        let critical: Vec<(&str, &str)> = risks
            .iter()
            .filter(|r| r.critical())
            .map(|r| (r.label.as_str(), r.value.as_str()))
            .collect();
        assert_eq!(critical, vec![("power-feed", "a"), ("region", "eu")]);
        let eu = risks.iter().find(|r| r.value == "eu").unwrap();
        assert!((eu.capacity_share - 0.9).abs() < 1e-9);
    }

    proptest! {
        /// A domain that holds every voter always costs quorum; one that
        /// holds fewer than half never does.
        #[test]
        fn quorum_loss_matches_counting(placements in prop::collection::vec(0u8..3, 1..8)) {
            let sites: Vec<TopologySite> = placements
                .iter()
                .enumerate()
                .map(|(i, feed)| site(i as u64, &[("power-feed", ["a", "b", "c"][*feed as usize])]))
                .collect();
            for risk in analyze(&sites, &[], 1.0) {
                let left = sites.len() - risk.voters_in_domain;
                prop_assert_eq!(risk.quorum_lost, left < quorum(sites.len()));
                if risk.voters_in_domain == sites.len() {
                    prop_assert!(risk.quorum_lost);
                }
            }
        }
    }

    #[test]
    fn voters_without_the_labels_of_the_others_are_named() {
        let sites = [
            site(1, &[("datacenter", "tsukuba"), ("power", "a")]),
            site(2, &[("datacenter", "osaka"), ("power", "b")]),
            site(4, &[]),
            site(5, &[("datacenter", "tokyo")]),
        ];
        assert_eq!(
            missing_domains(&sites),
            vec![
                MissingDomain {
                    site_id: 4,
                    missing: vec!["datacenter".into(), "power".into()],
                },
                MissingDomain {
                    site_id: 5,
                    missing: vec!["power".into()],
                },
            ]
        );
        let unlabelled = [site(1, &[]), site(2, &[])];
        assert_eq!(
            missing_domains(&unlabelled).len(),
            2,
            "no labels at all: every voter is unplaced"
        );
        let mut learner = site(3, &[]);
        learner.voter = false;
        assert!(
            missing_domains(&[site(1, &[("dc", "a")]), learner]).is_empty(),
            "a learner costs no quorum"
        );
    }
}
