//! Every metric a site exports, with its help text: the one list an
//! operator reads to know what `/metrics` says. Names follow Prometheus
//! conventions: the unit last (`_seconds`, `_bytes`, `_entries`), `_total`
//! on counters; histograms get buckets (see `http::prometheus`).

use metrics::Unit;
use metrics::describe_counter;
use metrics::describe_gauge;
use metrics::describe_histogram;

/// Describes every metric to the installed recorder.
pub fn describe() {
    describe_requests();
    describe_raft();
    describe_storage();
    describe_relays();
    describe_edges();
}

fn describe_requests() {
    describe_counter!(
        "switchboard_api_requests_total",
        "Calls on the API and Raft ports, by method (\"unknown\" for paths no service serves) and gRPC code."
    );
    describe_histogram!(
        "switchboard_api_request_duration_seconds",
        Unit::Seconds,
        "Time from a call's arrival to its response headers (a watch: until it opened), by method and code."
    );
    describe_counter!(
        "switchboard_requests_rate_limited_total",
        "Calls refused by an identity's request rate."
    );
    describe_counter!(
        "switchboard_requests_refused_total",
        "Calls refused by a connection limit, by reason."
    );
    describe_gauge!("switchboard_watches", "Watch streams open on this site.");
    describe_counter!(
        "switchboard_watches_refused_total",
        "Watches refused by the per-identity or per-site cap."
    );
    describe_counter!(
        "switchboard_watches_cut_off_total",
        "Watches ended because their reader fell too far behind."
    );
}

fn describe_raft() {
    describe_counter!(
        "switchboard_election_nudges_total",
        "Pre-vote rounds this site asked for because no leader was heard for the leader lease (see site::election_nudge)."
    );
    describe_counter!(
        "switchboard_peer_reconnects_total",
        "Connections to another site dropped and made afresh because it answered nothing for a leader lease (see peer::clients)."
    );
    describe_gauge!("switchboard_raft_term", "This site's Raft term.");
    describe_gauge!("switchboard_raft_is_leader", "1 while this site leads.");
    describe_gauge!(
        "switchboard_raft_has_leader",
        "1 while this site knows a leader."
    );
    describe_gauge!(
        "switchboard_raft_last_log_index",
        "Last index in this site's log."
    );
    describe_gauge!(
        "switchboard_raft_commit_index",
        "Last index this site knows committed."
    );
    describe_gauge!(
        "switchboard_raft_follower_lag_entries",
        "On the leader: entries each member is behind, by site."
    );
    describe_gauge!(
        "switchboard_raft_follower_lag_seconds",
        "On the leader: seconds since each member last acknowledged a heartbeat or entries, by site (+Inf: not since this leadership began)."
    );
    describe_counter!(
        "switchboard_raft_leader_changes_total",
        "Leaders this site saw take a new term."
    );
    describe_counter!(
        "switchboard_raft_elections_total",
        "Elections this site started (times it became a candidate)."
    );
    describe_histogram!(
        "switchboard_raft_proposal_duration_seconds",
        Unit::Seconds,
        "On the leader: time from proposing a write to its being applied (a quorum's fsync included)."
    );
    describe_gauge!(
        "switchboard_clock_offset_from_leader_seconds",
        "On a follower: its clock less the leader's as the last AppendEntries left (time in flight included)."
    );
    describe_gauge!(
        "switchboard_site_staleness_seconds",
        "How far this site's state may be behind the leader's."
    );
    describe_gauge!(
        "switchboard_state_applied_index",
        "Last log index applied to the state."
    );
    describe_counter!(
        "switchboard_state_commands_applied_total",
        "Commands applied to the state, by command."
    );
    describe_histogram!(
        "switchboard_state_apply_duration_seconds",
        Unit::Seconds,
        "Time to apply one command to the state in memory, by command."
    );
    describe_counter!(
        "switchboard_resolves_total",
        "Resolves answered by this site, by consistency and outcome (a gRPC code: OK, NOT_FOUND for no route, FAILED_PRECONDITION too stale, UNAVAILABLE)."
    );
}

fn describe_storage() {
    describe_histogram!(
        "switchboard_storage_wal_sync_duration_seconds",
        Unit::Seconds,
        "Time of one RocksDB WAL sync in the writer thread; every synced write waits for one."
    );
    describe_counter!("switchboard_storage_wal_syncs_total", "RocksDB WAL syncs.");
    describe_counter!(
        "switchboard_storage_write_failures_total",
        "Storage failures (a RocksDB write or WAL sync); after the first, the site refuses every write and stops at its next log append."
    );
    describe_histogram!(
        "switchboard_storage_group_jobs",
        "Write jobs committed by one WAL sync (group commit)."
    );
    describe_counter!(
        "switchboard_storage_log_entries_appended_total",
        "Raft log entries appended to storage."
    );
    describe_gauge!(
        "switchboard_storage_purged_index",
        "Last log index purged after a snapshot."
    );
    describe_histogram!(
        "switchboard_snapshot_build_seconds",
        Unit::Seconds,
        "Time to build a snapshot of the state."
    );
    describe_gauge!(
        "switchboard_snapshot_bytes",
        Unit::Bytes,
        "Size of the last snapshot built."
    );
    describe_histogram!(
        "switchboard_snapshot_install_seconds",
        Unit::Seconds,
        "Time to install a snapshot sent by the leader."
    );
    describe_gauge!(
        "switchboard_storage_wal_bytes",
        Unit::Bytes,
        "Bytes in RocksDB's write-ahead log files."
    );
    describe_gauge!(
        "switchboard_storage_sst_bytes",
        Unit::Bytes,
        "Bytes in RocksDB's sorted table files."
    );
    describe_counter!(
        "switchboard_snapshot_failures_total",
        "Snapshots that failed to build or install, by phase."
    );
}

fn describe_relays() {
    describe_gauge!("switchboard_relays", "Relays by state.");
    describe_gauge!("switchboard_state_routes", "Routes in the state.");
    describe_gauge!(
        "switchboard_drain_hosts_remaining",
        "Hosts still routed to draining relays: a drain's progress toward zero."
    );
    describe_gauge!(
        "switchboard_relay_active_routes",
        "Routes on active relays."
    );
    describe_gauge!(
        "switchboard_relay_active_capacity_hosts",
        "Hosts the active relays may carry in all."
    );
    describe_gauge!(
        "switchboard_relay_leases",
        "Relay leases this site keeps (on the leader: all)."
    );
    describe_counter!(
        "switchboard_relay_lease_verdicts_total",
        "Relays judged down (lease expired) or up again, by verdict."
    );
    describe_counter!(
        "switchboard_relay_heartbeats_recorded_total",
        "Relay heartbeats recorded by the leader."
    );
    describe_counter!(
        "switchboard_relay_heartbeat_batches_forwarded_total",
        "Batches of relay heartbeats a follower forwarded to the leader."
    );
    describe_histogram!(
        "switchboard_relay_heartbeat_batch_size",
        "Heartbeats in one forwarded batch."
    );
    describe_counter!(
        "switchboard_relay_down_hosts_moved_total",
        "Hosts re-placed because their relay went down."
    );
    describe_counter!(
        "switchboard_drain_hosts_moved_total",
        "Hosts moved off draining relays."
    );
}

fn describe_edges() {
    describe_counter!(
        "switchboard_connections_refused_total",
        "TCP connections closed at accept, by port and reason."
    );
    describe_counter!(
        "switchboard_http_connections_refused_total",
        "HTTP-plane connections closed over its cap."
    );
    describe_counter!(
        "switchboard_tls_handshake_failures_total",
        "Failed TLS handshakes, by port."
    );
    describe_counter!("switchboard_tls_reloads_total", "Certificate reloads.");
    describe_gauge!(
        "switchboard_tls_certificate_expiry_timestamp_seconds",
        "When this site's own certificate (certificate=\"site\") and the earliest CA it trusts (\"ca\") expire, Unix seconds."
    );
    describe_counter!(
        "switchboard_tls_reload_failures_total",
        "Certificate reloads that failed (the old certificate stays)."
    );
    describe_counter!(
        "switchboard_client_node_info_refused_total",
        "Node-info documents the client library refused (bad signature, older era)."
    );
}
