//! Storage tests: openraft's log storage suite, crash-reopen, snapshots.

use std::collections::BTreeMap;
use std::sync::Arc;

use openraft::RaftLogReader;
use openraft::RaftSnapshotBuilder;
use openraft::StorageError;
use openraft::entry::RaftEntry;
use openraft::storage::IOFlushed;
use openraft::storage::RaftLogStorage;
use openraft::storage::RaftStateMachine;
use openraft::testing::log::StoreBuilder;
use openraft::testing::log::Suite;

use super::*;
use crate::command::Actor;
use crate::command::ActorKind;
use crate::command::Command;
use crate::command::Proposal;
use crate::command::RelayRegistration;
use crate::ids::HostId;
use crate::ids::RelayId;
use crate::ids::RequestId;
use crate::types::Entry;
use crate::types::TypeConfig;

/// Opens a fresh store per suite case and remembers each one's stop
/// signal, so the test can wait until every database is closed: a RocksDB
/// still closing in its writer thread when the test process exits races
/// the C++ runtime's teardown ("pthread lock: Invalid argument").
struct RocksBuilder {
    stopped: std::sync::Arc<std::sync::Mutex<Vec<crate::store::Stopped>>>,
}

impl StoreBuilder<TypeConfig, LogStore, StateMachineStore, tempfile::TempDir> for RocksBuilder {
    async fn build(
        &self,
    ) -> Result<(tempfile::TempDir, LogStore, StateMachineStore), StorageError<TypeConfig>> {
        let dir = tempfile::tempdir().expect("temp dir");
        let identity = Identity {
            cluster_id: "suite".into(),
            site_id: 0,
        };
        let opened = open(dir.path(), &identity).expect("open store");
        self.stopped
            .lock()
            .expect("not poisoned")
            .push(opened.stopped.clone());
        Ok((dir, opened.log, opened.state_machine))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rocksdb_store_passes_openraft_log_suite() {
    let stopped = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let builder = RocksBuilder {
        stopped: stopped.clone(),
    };
    Suite::test_all(builder)
        .await
        .expect("openraft storage suite");
    for stopped in stopped.lock().expect("not poisoned").iter() {
        assert!(
            stopped.wait(std::time::Duration::from_secs(10)),
            "every suite store closes within 10 s"
        );
    }
}

/// Drops a store and waits until its database is closed.
fn close(opened: OpenedStore) {
    let stopped = opened.stopped.clone();
    drop(opened);
    assert!(
        stopped.wait(std::time::Duration::from_secs(10)),
        "store closes within 10 s"
    );
}

fn identity() -> Identity {
    Identity {
        cluster_id: "test".into(),
        site_id: 1,
    }
}

fn leader_log_id(index: u64) -> crate::types::LogId {
    openraft::LogId::new(
        openraft::impls::leader_id_adv::LeaderId {
            term: 1,
            node_id: 1,
        },
        index,
    )
}

fn proposal(n: u64, command: Command) -> Proposal {
    Proposal {
        request_id: RequestId(u128::from(n)),
        actor: Actor::new(ActorKind::Admin, "t"),
        issued_at_ms: 1000 + n,
        command,
    }
}

fn entries(from: u64, to: u64) -> Vec<Entry> {
    (from..=to)
        .map(|index| {
            let command = if index == 1 {
                Command::RegisterRelay(RelayRegistration {
                    relay_id: RelayId::new("r1").unwrap(),
                    endpoint: "r1.example:443".into(),
                    region: String::new(),
                    labels: Default::default(),
                    capacity: 100_000,
                    incarnation: 1,
                })
            } else {
                Command::AttachHost {
                    host_id: HostId::new(format!("h{index}")).unwrap(),
                    preferred_region: String::new(),
                }
            };
            Entry::new_normal(leader_log_id(index), proposal(index, command))
        })
        .collect()
}

async fn append_and_wait(log: &mut LogStore, batch: Vec<Entry>) {
    use openraft::type_config::TypeConfigExt;
    let (tx, rx) = TypeConfig::oneshot();
    log.append(batch, IOFlushed::signal(tx)).await.unwrap();
    rx.await.unwrap().unwrap();
}

async fn apply_all(sm: &mut StateMachineStore, batch: Vec<Entry>) {
    let stream = futures::stream::iter(batch.into_iter().map(|entry| Ok((entry, None))));
    sm.apply(stream).await.unwrap();
}

/// Applies entries 1..=`last` and builds a snapshot of the result.
async fn snapshot_after(
    opened: &mut OpenedStore,
    last: u64,
) -> openraft::type_config::alias::SnapshotOf<TypeConfig, SnapshotFile> {
    apply_all(&mut opened.state_machine, entries(1, last)).await;
    opened
        .state_machine
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap()
}

/// Acknowledged (synced) log entries and the vote are all there after the
/// store is dropped without any shutdown and reopened. (A dropped process
/// keeps the page cache, like kill -9: this checks what reaches RocksDB,
/// not a lost fsync.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_entries_survive_reopen() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut opened = open(dir.path(), &identity()).unwrap();
        opened
            .log
            .save_vote(&openraft::impls::Vote::new_committed(1, 1))
            .await
            .unwrap();
        for chunk in entries(1, 500).chunks(50) {
            append_and_wait(&mut opened.log, chunk.to_vec()).await;
        }
        apply_all(&mut opened.state_machine, entries(1, 300)).await;
        close(opened);
    }
    let mut opened = open(dir.path(), &identity()).unwrap();
    let state = opened.log.get_log_state().await.unwrap();
    assert_eq!(state.last_log_id.unwrap().index, 500);
    let read = opened.log.try_get_log_entries(1..=500).await.unwrap();
    assert_eq!(read.len(), 500);
    assert_eq!(
        opened.log.read_vote().await.unwrap(),
        Some(openraft::impls::Vote::new_committed(1, 1))
    );
    let (applied, _) = opened.state_machine.applied_state().await.unwrap();
    assert_eq!(applied.unwrap().index, 300);
    assert_eq!(opened.reader.load().state.routes().len(), 299);
}

/// Recovery keeps the whole log: entries this site stored but had not
/// applied (a quorum may have committed them) are applied, not dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recovery_applies_every_entry_of_the_log_not_only_the_applied_ones() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut opened = open(dir.path(), &identity()).unwrap();
        for chunk in entries(1, 500).chunks(50) {
            append_and_wait(&mut opened.log, chunk.to_vec()).await;
        }
        apply_all(&mut opened.state_machine, entries(1, 300)).await;
        close(opened);
    }
    let node = crate::SiteNode {
        name: "survivor".into(),
        raft_addr: "127.0.0.1:1".into(),
        api_addr: "127.0.0.1:2".into(),
        http_addr: "127.0.0.1:3".into(),
        labels: Default::default(),
    };
    let recovered = recover_single_site(dir.path(), &identity(), Some(node)).unwrap();
    assert_eq!(recovered.applied_before, 300);
    assert_eq!(recovered.applied_index, 500, "the log's last entry");
    assert_eq!(
        recovered.routes, 499,
        "hosts 2..=500, the unapplied 200 too"
    );
    let mut opened = open(dir.path(), &identity()).unwrap();
    assert_eq!(opened.reader.load().state.routes().len(), 499);
    assert!(
        opened
            .reader
            .load()
            .state
            .route(&HostId::new("h500").unwrap())
            .is_some()
    );
    let log = opened.log.get_log_state().await.unwrap();
    assert_eq!(log.last_purged_log_id.unwrap().index, 500);
    assert_eq!(log.last_log_id.unwrap().index, 500);
    close(opened);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_dir_of_another_site_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    close(open(dir.path(), &identity()).unwrap());
    let other = Identity {
        cluster_id: "test".into(),
        site_id: 2,
    };
    assert!(matches!(
        open(dir.path(), &other),
        Err(Error::IdentityMismatch { .. })
    ));
}

/// A snapshot holds the state byte for byte; installed on a second store it
/// reproduces the same rows, and a damaged file is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_transfer_the_exact_state_and_reject_corruption() {
    let leader_dir = tempfile::tempdir().unwrap();
    let mut leader = open(leader_dir.path(), &identity()).unwrap();
    let snapshot = snapshot_after(&mut leader, 2_000).await;
    assert_eq!(snapshot.meta.last_log_id.unwrap().index, 2_000);

    let follower_dir = tempfile::tempdir().unwrap();
    let mut follower = open(
        follower_dir.path(),
        &Identity {
            cluster_id: "test".into(),
            site_id: 2,
        },
    )
    .unwrap();
    let staged = follower.snapshots.incoming_path();
    std::fs::copy(&snapshot.snapshot.path, &staged).unwrap();
    let file = SnapshotFile::open(&staged).unwrap();
    follower
        .state_machine
        .install_snapshot(&snapshot.meta, file)
        .await
        .unwrap();

    let leader_rows: Vec<_> = leader.reader.load().state.rows().collect();
    let follower_rows: Vec<_> = follower.reader.load().state.rows().collect();
    assert_eq!(leader_rows, follower_rows);
    assert_eq!(follower.reader.load().applied_index(), 2_000);
    let current = follower
        .state_machine
        .get_current_snapshot()
        .await
        .unwrap()
        .unwrap();
    assert_eq!(current.meta, snapshot.meta);

    // The install is durable: the rows are in RocksDB, not only in memory.
    close(follower);
    let reopened = open(
        follower_dir.path(),
        &Identity {
            cluster_id: "test".into(),
            site_id: 2,
        },
    )
    .unwrap();
    assert_eq!(
        reopened.reader.load().state.rows().collect::<Vec<_>>(),
        leader_rows
    );

    let damaged = leader_dir.path().join("damaged.part");
    let mut bytes = std::fs::read(&snapshot.snapshot.path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(&damaged, bytes).unwrap();
    assert!(read_snapshot(&SnapshotFile::open(&damaged).unwrap()).is_err());
}

/// A crash in the middle of an install, after the snapshot file was
/// adopted and before its state was written, is finished when the store
/// opens: the state is the snapshot's, not the older one left in RocksDB.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_install_cut_short_after_adopting_its_file_is_finished_on_open() {
    let leader_dir = tempfile::tempdir().unwrap();
    let mut leader = open(leader_dir.path(), &identity()).unwrap();
    let snapshot = snapshot_after(&mut leader, 500).await;

    let follower_dir = tempfile::tempdir().unwrap();
    let follower_identity = Identity {
        cluster_id: "test".into(),
        site_id: 2,
    };
    let mut follower = open(follower_dir.path(), &follower_identity).unwrap();
    apply_all(&mut follower.state_machine, entries(1, 300)).await;
    close(follower);
    // What adopt leaves behind: the file, renamed into the snapshot dir.
    let name = snapshot.snapshot.path.file_name().unwrap();
    std::fs::copy(
        &snapshot.snapshot.path,
        follower_dir.path().join("snapshots").join(name),
    )
    .unwrap();

    let reopened = open(follower_dir.path(), &follower_identity).unwrap();
    assert_eq!(reopened.reader.load().applied_index(), 500);
    assert_eq!(
        reopened.reader.load().state.rows().collect::<Vec<_>>(),
        leader.reader.load().state.rows().collect::<Vec<_>>()
    );
    close(reopened);
    let again = open(follower_dir.path(), &follower_identity).unwrap();
    assert_eq!(
        again.reader.load().applied_index(),
        500,
        "the finished install was written to RocksDB"
    );
    close(again);
    close(leader);
}

/// Purging drops the log up to a point and the log state says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_and_truncate_are_durable() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut opened = open(dir.path(), &identity()).unwrap();
        append_and_wait(&mut opened.log, entries(1, 100)).await;
        opened.log.purge(leader_log_id(40)).await.unwrap();
        opened
            .log
            .truncate_after(Some(leader_log_id(90)))
            .await
            .unwrap();
        close(opened);
    }
    let mut opened = open(dir.path(), &identity()).unwrap();
    let state = opened.log.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id.unwrap().index, 40);
    assert_eq!(state.last_log_id.unwrap().index, 90);
    let read = opened.log.try_get_log_entries(0..200).await.unwrap();
    assert_eq!(read.first().unwrap().log_id().index, 41);
    assert_eq!(read.len(), 50);
}

/// Building a snapshot does not hold up apply: the builder works on its own
/// copy, and entries applied meanwhile are not in it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_builds_from_a_copy_while_apply_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let mut opened = open(dir.path(), &identity()).unwrap();
    apply_all(&mut opened.state_machine, entries(1, 1_000)).await;
    let mut builder = opened.state_machine.get_snapshot_builder().await;
    apply_all(&mut opened.state_machine, entries(1_001, 1_100)).await;
    let snapshot = builder.build_snapshot().await.unwrap();
    assert_eq!(snapshot.meta.last_log_id.unwrap().index, 1_000);
    let (_, rows) = read_snapshot(&snapshot.snapshot).unwrap();
    let hosts = rows
        .iter()
        .filter(|(k, _)| k.first() == Some(&0x20))
        .count();
    assert_eq!(hosts, 999);
    assert_eq!(opened.reader.load().state.routes().len(), 1_099);
    let _unused: BTreeMap<(), ()> = BTreeMap::new();
    let _db: Arc<rocksdb::DB> = opened.db.clone();
}

mod snapshot_fuzz {
    use proptest::prelude::*;

    use super::*;

    fn snapshot_bytes() -> (tempfile::TempDir, Vec<u8>) {
        let dir = tempfile::tempdir().unwrap();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let bytes = runtime.block_on(async {
            let mut opened = open(&dir.path().join("site"), &identity()).unwrap();
            let snapshot = snapshot_after(&mut opened, 20).await;
            let bytes = std::fs::read(&snapshot.snapshot.path).unwrap();
            close(opened);
            bytes
        });
        (dir, bytes)
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 300, ..ProptestConfig::default() })]

        /// A damaged snapshot file is refused (its checksum catches it), or it
        /// still loads a sound state; it never panics the reader.
        #[test]
        fn damaged_snapshot_files_are_refused(edits in prop::collection::vec((any::<usize>(), any::<u8>()), 1..4)) {
            let (dir, mut bytes) = snapshot_bytes();
            for (position, value) in edits {
                let at = position % bytes.len();
                bytes[at] ^= value | 1;
            }
            let path = dir.path().join("damaged.snap");
            std::fs::write(&path, &bytes).unwrap();
            if let Ok((_, rows)) = read_snapshot(&SnapshotFile::open(&path).unwrap())
                && let Ok(state) = crate::state::State::from_rows(rows)
            {
                prop_assert_eq!(state.check_invariants(), Ok(()));
            }
        }
    }
}

#[test]
fn disk_usage_counts_log_files_as_wal_and_sst_files_as_tables_only() {
    let dir = tempfile::tempdir().unwrap();
    assert_eq!(disk_usage(dir.path()), DiskUsage::default(), "no db dir");
    let db = dir.path().join("db");
    std::fs::create_dir(&db).unwrap();
    std::fs::write(db.join("000004.log"), [0u8; 10]).unwrap();
    std::fs::write(db.join("000009.log"), [0u8; 1]).unwrap();
    std::fs::write(db.join("000007.sst"), [0u8; 20]).unwrap();
    std::fs::write(db.join("OPTIONS-000005"), [0u8; 5]).unwrap();
    std::fs::write(db.join("MANIFEST-000001"), [0u8; 3]).unwrap();
    assert_eq!(
        disk_usage(dir.path()),
        DiskUsage {
            wal_bytes: 11,
            sst_bytes: 20
        }
    );
}
