//! The state as rows in key order and back: what snapshots, backups and
//! the store's writes are made of.

use super::RelayRecord;
use super::RowKey;
use super::State;
use super::decode_value;
use super::encode_value;
use crate::error::Error;

impl State {
    /// The encoded value of one row, or `None` if the row does not exist.
    pub fn row_value(&self, key: &RowKey) -> Option<Vec<u8>> {
        match key {
            RowKey::Meta => Some(encode_value(&self.meta)),
            RowKey::NodeInfo => Some(encode_value(&self.node_info)),
            RowKey::Site(id) => self.sites.get(id).map(encode_value),
            RowKey::Relay(id) => self.relays.get(id).map(encode_value),
            RowKey::RemovedRelay(id) => self.removed_relays.get(id).map(encode_value),
            RowKey::Route(id) => self.routes.get(id).map(encode_value),
            RowKey::Request(id) => self.requests.get(*id).map(encode_value),
            RowKey::Window(id) => self.windows.get(id).map(encode_value),
            RowKey::Audit(seq) => self.audit.get(seq).map(encode_value),
            RowKey::RestoreMeta => self.restore.as_ref().map(encode_value),
            RowKey::RestoreRow(key) => self.restore_rows.get(key).cloned(),
        }
    }

    /// Every row, in key order: the body of a snapshot.
    pub fn rows(&self) -> impl Iterator<Item = (Vec<u8>, Vec<u8>)> + '_ {
        let meta = [
            (RowKey::Meta.encode(), encode_value(&self.meta)),
            (RowKey::NodeInfo.encode(), encode_value(&self.node_info)),
        ]
        .into_iter();
        let sites = self
            .sites
            .iter()
            .map(|(id, site)| (RowKey::Site(*id).encode(), encode_value(site)));
        let relays = self
            .relays
            .iter()
            .map(|(id, r)| (RowKey::Relay(id.clone()).encode(), encode_value(r)));
        let removed = self
            .removed_relays
            .iter()
            .map(|(id, at)| (RowKey::RemovedRelay(id.clone()).encode(), encode_value(at)));
        let routes = self
            .routes
            .iter()
            .map(|(id, r)| (RowKey::Route(id.clone()).encode(), encode_value(r)));
        let requests = self
            .requests
            .iter()
            .map(|(id, r)| (RowKey::Request(*id).encode(), encode_value(r)));
        let windows = self
            .windows
            .iter()
            .map(|(id, w)| (RowKey::Window(*id).encode(), encode_value(w)));
        let audit = self
            .audit
            .iter()
            .map(|(seq, a)| (RowKey::Audit(*seq).encode(), encode_value(a)));
        let restore_meta = self
            .restore
            .iter()
            .map(|r| (RowKey::RestoreMeta.encode(), encode_value(r)));
        let restore_rows = self
            .restore_rows
            .iter()
            .map(|(k, v)| (RowKey::RestoreRow(k.clone()).encode(), v.clone()));
        meta.chain(sites)
            .chain(relays)
            .chain(removed)
            .chain(routes)
            .chain(requests)
            .chain(windows)
            .chain(audit)
            .chain(restore_meta)
            .chain(restore_rows)
    }

    /// Rebuilds a state from its rows (any order) and checks it. A restore
    /// in progress gets its staged state back from the staged rows.
    pub fn from_rows<K, V>(rows: impl IntoIterator<Item = (K, V)>) -> Result<Self, Error>
    where
        K: AsRef<[u8]>,
        V: AsRef<[u8]>,
    {
        let mut state = State::stage_rows(rows)?;
        state.check_invariants().map_err(|reason| Error::Corrupt {
            what: "state",
            reason,
        })?;
        if state.restore.is_some() {
            let staged = State::stage_rows(state.restore_rows.iter())?;
            state.restore_staged = Some(Box::new(staged));
        }
        Ok(state)
    }

    /// Loads rows into an empty state without checking its invariants: a
    /// backup arrives a chunk at a time and is only whole at the end.
    pub(super) fn stage_rows<K, V>(rows: impl IntoIterator<Item = (K, V)>) -> Result<Self, Error>
    where
        K: AsRef<[u8]>,
        V: AsRef<[u8]>,
    {
        let mut state = State::default();
        for (key, value) in rows {
            state.load_row(key.as_ref(), value.as_ref())?;
        }
        Ok(state)
    }

    /// Decodes one row into the state, replacing what its key held.
    pub(super) fn load_row(&mut self, key: &[u8], value: &[u8]) -> Result<(), Error> {
        let state = self;
        match RowKey::decode(key)? {
            RowKey::Meta => state.meta = decode_value("meta row", value)?,
            RowKey::NodeInfo => state.node_info = decode_value("node info row", value)?,
            RowKey::Site(id) => {
                state.sites.insert(id, decode_value("site row", value)?);
            }
            RowKey::Relay(id) => {
                let record: RelayRecord = decode_value("relay row", value)?;
                if record.relay_id != id {
                    return Err(Error::Corrupt {
                        what: "relay row",
                        reason: format!("key {id} holds {}", record.relay_id),
                    });
                }
                state.relays.insert(id, record);
            }
            RowKey::RemovedRelay(id) => {
                state
                    .removed_relays
                    .insert(id, decode_value("removed relay row", value)?);
            }
            RowKey::Route(id) => {
                state.routes.insert(id, decode_value("route row", value)?);
            }
            RowKey::Request(id) => state
                .requests
                .insert(id, decode_value("request row", value)?),
            RowKey::Window(id) => {
                state
                    .windows
                    .insert(id, decode_value("maintenance window row", value)?);
            }
            RowKey::Audit(seq) => {
                state.audit.insert(seq, decode_value("audit row", value)?);
            }
            RowKey::RestoreMeta => state.restore = Some(decode_value("restore row", value)?),
            RowKey::RestoreRow(key) => {
                state.restore_rows.insert(key, value.to_vec());
            }
        }
        Ok(())
    }
}
