//! Writes a follower accepted, forwarded to the leader in batches. One
//! raft-port call carries every write that queued while the previous calls
//! were in flight, and the leader proposes them together
//! (`Raft::client_write_many`), so a storm of writes at a follower costs the
//! leader a few calls instead of one per write. Nothing waits to fill a
//! batch: a lone write goes at once, and batches grow only when the leader
//! is busy enough that `FORWARD_CALLS_IN_FLIGHT_MAX` calls are out.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::Mutex;
use std::time::Instant;

use prost::bytes::Bytes;
use switchboard_proto::v1::ForwardWriteRequest;
use switchboard_proto::v1::ForwardWritesRequest;
use switchboard_proto::v1::ForwardWritesResponse;
use switchboard_proto::v1::forwarded_write::Outcome;
use switchboard_raft_store::Reply;
use switchboard_raft_store::ids::SiteId;
use switchboard_raft_store::wire;
use tokio::sync::Semaphore;
use tokio::sync::mpsc;
use tokio::sync::oneshot;
use tonic::Code;
use tonic::Status;

use crate::peer::clients::PeerClients;

/// Writes waiting to be forwarded to one leader; past this a write waits
/// for room, up to its deadline. Four full batches: enough to keep every
/// call in flight fed.
pub const FORWARD_QUEUE_MAX: usize = FORWARD_BATCH_PROPOSALS_MAX * FORWARD_CALLS_IN_FLIGHT_MAX;

/// Proposals in one forwarding call (the leader refuses more): bounds the
/// leader's work per call and the size of one openraft batch.
pub const FORWARD_BATCH_PROPOSALS_MAX: usize = 256;

/// Encoded proposal bytes in one call: far under the raft port's message
/// limit (`limits::RAFT_MESSAGE_BYTES_MAX`), which a reply batch must fit too.
pub const FORWARD_BATCH_BYTES_MAX: usize = 2 * 1024 * 1024;

/// Forwarding calls to one leader at once. More calls in flight mean
/// smaller batches at low load (lower latency); fewer mean larger batches.
pub const FORWARD_CALLS_IN_FLIGHT_MAX: usize = 4;

/// Forwarding calls a leader serves at once, from all followers together:
/// every follower's slots for sixteen followers. Past it a call is answered
/// UNAVAILABLE (and retried), which bounds what followers can pin at the
/// leader to this many batches.
pub const FORWARDED_CALLS_SERVED_MAX: usize = FORWARD_CALLS_IN_FLIGHT_MAX * 16;

/// What a forwarded write came back with: the leader's reply (it applied
/// it, or refused it in the state machine), or why it was not answered
/// (the leader's status, or the call's).
pub type Forwarded = Result<Reply, Status>;

struct Queued {
    leader: SiteId,
    raft_addr: String,
    proposal: Bytes,
    deadline: Instant,
    done: oneshot::Sender<Forwarded>,
}

/// A leader by id and raft address: one forwarding queue each.
type LeaderAddr = (SiteId, String);

/// Queues of writes to forward, one per leader (by id and address), each
/// drained by its own task: a leader that went dark holds up only the
/// writes queued for it, never those for its successor.
#[derive(Clone)]
pub struct WriteForwarder {
    peers: PeerClients,
    queues: Arc<Mutex<HashMap<LeaderAddr, mpsc::Sender<Queued>>>>,
}

impl WriteForwarder {
    /// Forwards through `peers`; a leader's task starts with its first
    /// write and ends when the forwarder is dropped.
    pub fn new(peers: PeerClients) -> Self {
        WriteForwarder {
            peers,
            queues: Default::default(),
        }
    }

    /// The queue for `leader` at `raft_addr`, its task started on first
    /// use. There are as many as leaders this site has forwarded to.
    fn queue_for(&self, leader: SiteId, raft_addr: &str) -> mpsc::Sender<Queued> {
        let mut queues = self.queues.lock();
        queues
            .entry((leader, raft_addr.to_owned()))
            .or_insert_with(|| {
                let (queue, queued) = mpsc::channel(FORWARD_QUEUE_MAX);
                tokio::spawn(drain(self.peers.clone(), queued));
                queue
            })
            .clone()
    }

    /// Forwards one encoded proposal to `leader` and waits for its answer,
    /// at most until `deadline`.
    pub async fn forward(
        &self,
        leader: SiteId,
        raft_addr: &str,
        proposal: Bytes,
        deadline: Instant,
    ) -> Forwarded {
        let (done, answer) = oneshot::channel();
        let queued = Queued {
            leader,
            raft_addr: raft_addr.to_owned(),
            proposal,
            deadline,
            done,
        };
        let queue = self.queue_for(leader, raft_addr);
        let deadline = tokio::time::Instant::from_std(deadline);
        match tokio::time::timeout_at(deadline, queue.send(queued)).await {
            Ok(Ok(())) => {}
            Ok(Err(_)) => return Err(Status::unavailable("site stopping")),
            Err(_) => {
                return Err(Status::deadline_exceeded(
                    "the forwarding queue stayed full until the write's deadline",
                ));
            }
        }
        match tokio::time::timeout_at(deadline, answer).await {
            Ok(Ok(forwarded)) => forwarded,
            Ok(Err(_)) => Err(Status::unavailable("site stopping")),
            Err(_) => Err(leader_silent()),
        }
    }
}

/// Takes one leader's writes off its queue a batch at a time, each batch
/// once a call slot is free, so a batch holds everything that queued
/// meanwhile.
async fn drain(peers: PeerClients, mut queue: mpsc::Receiver<Queued>) {
    let slots = Arc::new(Semaphore::new(FORWARD_CALLS_IN_FLIGHT_MAX));
    let mut carried: Option<Queued> = None;
    loop {
        let first = match carried.take() {
            Some(queued) => queued,
            None => match queue.recv().await {
                Some(queued) => queued,
                None => return,
            },
        };
        let Ok(slot) = slots.clone().acquire_owned().await else {
            return;
        };
        let batch = gather(first, &mut queue, &mut carried);
        let peers = peers.clone();
        tokio::spawn(async move {
            send(&peers, batch).await;
            drop(slot);
        });
    }
}

/// `first` and whatever else is queued for the same leader, within the
/// batch bounds; the first write that does not fit is `carried` over.
/// Writes whose caller gave up are dropped here.
fn gather(
    first: Queued,
    queue: &mut mpsc::Receiver<Queued>,
    carried: &mut Option<Queued>,
) -> Vec<Queued> {
    let mut bytes = first.proposal.len();
    let mut batch = vec![first];
    while batch.len() < FORWARD_BATCH_PROPOSALS_MAX {
        let Ok(next) = queue.try_recv() else {
            break;
        };
        if next.done.is_closed() {
            continue;
        }
        let fits = bytes + next.proposal.len() <= FORWARD_BATCH_BYTES_MAX;
        if next.leader != batch[0].leader || next.raft_addr != batch[0].raft_addr || !fits {
            *carried = Some(next);
            break;
        }
        bytes += next.proposal.len();
        batch.push(next);
    }
    batch
}

/// One call to the leader with the whole batch; every waiter gets its own
/// result. A leader that predates batches (a rolling upgrade) answers
/// UNIMPLEMENTED: the batch is sent again one call per write.
async fn send(peers: &PeerClients, batch: Vec<Queued>) {
    let leader = batch[0].leader;
    let raft_addr = batch[0].raft_addr.clone();
    let deadline = batch
        .iter()
        .map(|q| q.deadline)
        .max()
        .unwrap_or_else(Instant::now);
    let mut client = match peers.raft_client(leader, &raft_addr) {
        Ok(client) => client,
        Err(error) => return fail_all(batch, &Status::unavailable(error.to_string())),
    };
    metrics::histogram!("switchboard_forward_batch_writes").record(batch.len() as f64);
    // Shared with the batch, not copied (`Bytes`).
    let proposals = batch.iter().map(|q| q.proposal.clone()).collect();
    let request = peers.request(
        leader,
        ForwardWritesRequest { proposals },
        Some(left(deadline)),
    );
    // tonic starts the timeout it sends only once connected: a connection
    // that hangs would hold the slot until keepalive gives up.
    let answer = tokio::time::timeout_at(deadline.into(), client.forward_writes(request)).await;
    note_answer(peers, leader, &raft_addr, &answer);
    match answer {
        Ok(Ok(response)) => answer_all(batch, response.into_inner()),
        Ok(Err(status)) if status.code() == Code::Unimplemented => {
            let raft_addr = &raft_addr;
            let sends = batch
                .into_iter()
                .filter(|queued| !queued.done.is_closed())
                .map(|queued| {
                    let mut client = client.clone();
                    async move {
                        let request = ForwardWriteRequest {
                            proposal: queued.proposal.clone(),
                        };
                        let request = peers.request(leader, request, Some(left(queued.deadline)));
                        let call = client.forward_write(request);
                        let answer = tokio::time::timeout_at(queued.deadline.into(), call).await;
                        note_answer(peers, leader, raft_addr, &answer);
                        let result = match answer {
                            Ok(Ok(response)) => reply_of(&response.into_inner().reply),
                            Ok(Err(status)) => Err(status),
                            Err(_) => Err(leader_silent()),
                        };
                        let _ = queued.done.send(result);
                    }
                });
            futures::future::join_all(sends).await;
        }
        Ok(Err(status)) => fail_all(batch, &status),
        Err(_) => fail_all(batch, &leader_silent()),
    }
}

/// Notes how a call to the leader ended for its channel's health (see
/// `peer::clients`): a write deadline that passed is silence too.
fn note_answer<T>(
    peers: &PeerClients,
    leader: SiteId,
    raft_addr: &str,
    answer: &Result<Result<T, Status>, tokio::time::error::Elapsed>,
) {
    match answer {
        Ok(result) => peers.note(leader, raft_addr, result),
        Err(_) => {
            peers.unanswered(leader, raft_addr);
        }
    }
}

fn left(deadline: Instant) -> std::time::Duration {
    deadline.saturating_duration_since(Instant::now())
}

fn leader_silent() -> Status {
    Status::deadline_exceeded("the leader did not answer before the write's deadline")
}

/// Hands each waiter its result, in order; a response of the wrong length
/// fails them all.
fn answer_all(batch: Vec<Queued>, response: ForwardWritesResponse) {
    if response.results.len() != batch.len() {
        let status = Status::internal(format!(
            "the leader answered {} results for {} forwarded writes",
            response.results.len(),
            batch.len()
        ));
        return fail_all(batch, &status);
    }
    for (queued, result) in batch.into_iter().zip(response.results) {
        let forwarded = match result.outcome {
            Some(Outcome::Reply(bytes)) => reply_of(&bytes),
            Some(Outcome::Failure(failure)) => {
                Err(Status::new(Code::from_i32(failure.code), failure.message))
            }
            None => Err(Status::internal("the leader sent an empty result")),
        };
        let _ = queued.done.send(forwarded);
    }
}

fn reply_of(bytes: &[u8]) -> Forwarded {
    match wire::decode::<Reply>("forwarded reply", bytes) {
        Ok(reply) => Ok(reply),
        Err(error) => Err(Status::internal(error.to_string())),
    }
}

fn fail_all(batch: Vec<Queued>, status: &Status) {
    for queued in batch {
        let _ = queued.done.send(Err(status.clone()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn queued(leader: SiteId, bytes: usize) -> (Queued, oneshot::Receiver<Forwarded>) {
        let (done, answer) = oneshot::channel();
        let queued = Queued {
            leader,
            raft_addr: format!("site-{leader}:7000"),
            proposal: Bytes::from(vec![0; bytes]),
            deadline: Instant::now(),
            done,
        };
        (queued, answer)
    }

    #[test]
    fn a_batch_takes_what_queued_for_its_leader_and_carries_the_next_leaders() {
        let (queue, mut queued_rx) = mpsc::channel(16);
        let mut answers = Vec::new();
        for (leader, keep) in [(1, true), (1, false), (1, true), (2, true), (1, true)] {
            let (item, answer) = queued(leader, 10);
            if keep {
                answers.push(answer);
            }
            assert!(queue.try_send(item).is_ok(), "room in the queue");
        }
        let (first, _first_answer) = queued(1, 10);
        let mut carried = None;
        let batch = gather(first, &mut queued_rx, &mut carried);
        // The first, the two open ones before leader 2's; the abandoned one
        // (its caller gave up) is dropped.
        assert_eq!(batch.len(), 3);
        assert!(batch.iter().all(|q| q.leader == 1));
        assert_eq!(carried.as_ref().map(|q| q.leader), Some(2));
        // What came after the carried one waits for the next batch.
        assert_eq!(queued_rx.try_recv().map(|q| q.leader).ok(), Some(1));
    }

    #[test]
    fn a_batch_stops_at_its_byte_bound() {
        let (queue, mut queued_rx) = mpsc::channel(4);
        let half = FORWARD_BATCH_BYTES_MAX / 2;
        let (second, _answer) = queued(1, half + 1);
        assert!(queue.try_send(second).is_ok(), "room in the queue");
        let (first, _first_answer) = queued(1, half);
        let mut carried = None;
        let batch = gather(first, &mut queued_rx, &mut carried);
        assert_eq!(batch.len(), 1);
        assert_eq!(carried.map(|q| q.proposal.len()), Some(half + 1));
    }

    #[test]
    fn a_batch_stops_at_its_count_bound() {
        let (queue, mut queued_rx) = mpsc::channel(FORWARD_QUEUE_MAX);
        let mut answers = Vec::new();
        for _ in 0..FORWARD_BATCH_PROPOSALS_MAX {
            let (item, answer) = queued(1, 1);
            answers.push(answer);
            assert!(queue.try_send(item).is_ok(), "room in the queue");
        }
        let (first, _first_answer) = queued(1, 1);
        let mut carried = None;
        let batch = gather(first, &mut queued_rx, &mut carried);
        assert_eq!(batch.len(), FORWARD_BATCH_PROPOSALS_MAX);
        assert!(carried.is_none());
        assert_eq!(queued_rx.len(), 1, "the last one waits for the next batch");
    }
}
