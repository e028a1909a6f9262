//! The state as rows: big-endian keys and versioned values.
//!
//! The same rows are the RocksDB state column family and the body of a
//! snapshot file, so a snapshot is the rows in key order and two sites with
//! the same state produce the same bytes.

use std::collections::BTreeSet;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::error::Error;
use crate::ids::HostId;
use crate::ids::RelayId;
use crate::ids::RequestId;

/// The row format this build writes.
pub const ROW_FORMAT_VERSION: u8 = 1;

const PREFIX_META: u8 = 0x00;
const PREFIX_NODE_INFO: u8 = 0x01;
const PREFIX_SITE: u8 = 0x03;
const PREFIX_RELAY: u8 = 0x10;
const PREFIX_REMOVED_RELAY: u8 = 0x11;
const PREFIX_ROUTE: u8 = 0x20;
const PREFIX_REQUEST: u8 = 0x30;
const PREFIX_WINDOW: u8 = 0x50;
const PREFIX_AUDIT: u8 = 0x60;
const PREFIX_RESTORE_META: u8 = 0x70;
const PREFIX_RESTORE_ROW: u8 = 0x71;

/// A row's key. The derived order equals the order of the encoded bytes.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum RowKey {
    /// The state's clock and counters.
    Meta,
    /// Node-info era, epoch, notice and signing keys.
    NodeInfo,
    /// A site, as node info lists it.
    Site(u64),
    /// A relay.
    Relay(RelayId),
    /// A relay that was removed: its certificate is refused from then on.
    RemovedRelay(RelayId),
    /// A host's route.
    Route(HostId),
    /// A remembered answer.
    Request(RequestId),
    /// A maintenance window.
    Window(u64),
    /// An audit record.
    Audit(u64),
    /// A restore in progress.
    RestoreMeta,
    /// A row of a backup being restored (the row's own key follows the prefix).
    RestoreRow(Vec<u8>),
}

impl RowKey {
    /// Prefix byte, then the id: text ids as their bytes, numbers big-endian.
    pub fn encode(&self) -> Vec<u8> {
        match self {
            RowKey::Meta => vec![PREFIX_META],
            RowKey::NodeInfo => vec![PREFIX_NODE_INFO],
            RowKey::Site(id) => prefixed(PREFIX_SITE, &id.to_be_bytes()),
            RowKey::Relay(id) => prefixed(PREFIX_RELAY, id.as_str().as_bytes()),
            RowKey::RemovedRelay(id) => prefixed(PREFIX_REMOVED_RELAY, id.as_str().as_bytes()),
            RowKey::Route(id) => prefixed(PREFIX_ROUTE, id.as_str().as_bytes()),
            RowKey::Request(id) => prefixed(PREFIX_REQUEST, &id.to_bytes()),
            RowKey::Window(id) => prefixed(PREFIX_WINDOW, &id.to_be_bytes()),
            RowKey::Audit(seq) => prefixed(PREFIX_AUDIT, &seq.to_be_bytes()),
            RowKey::RestoreMeta => vec![PREFIX_RESTORE_META],
            RowKey::RestoreRow(key) => prefixed(PREFIX_RESTORE_ROW, key),
        }
    }

    /// Reads a key written by `encode`.
    pub fn decode(bytes: &[u8]) -> Result<Self, Error> {
        let corrupt = |reason: &str| Error::Corrupt {
            what: "row key",
            reason: reason.to_string(),
        };
        let (&prefix, rest) = bytes.split_first().ok_or_else(|| corrupt("empty"))?;
        let text = || {
            std::str::from_utf8(rest)
                .map(str::to_owned)
                .map_err(|_| corrupt("id is not UTF-8"))
        };
        match prefix {
            PREFIX_META if rest.is_empty() => Ok(RowKey::Meta),
            PREFIX_NODE_INFO if rest.is_empty() => Ok(RowKey::NodeInfo),
            PREFIX_SITE => {
                let id: [u8; 8] = rest
                    .try_into()
                    .map_err(|_| corrupt("site id is not 8 bytes"))?;
                Ok(RowKey::Site(u64::from_be_bytes(id)))
            }
            PREFIX_RELAY => Ok(RowKey::Relay(
                RelayId::new(text()?).map_err(|e| corrupt(&e.to_string()))?,
            )),
            PREFIX_REMOVED_RELAY => Ok(RowKey::RemovedRelay(
                RelayId::new(text()?).map_err(|e| corrupt(&e.to_string()))?,
            )),
            PREFIX_ROUTE => Ok(RowKey::Route(
                HostId::new(text()?).map_err(|e| corrupt(&e.to_string()))?,
            )),
            PREFIX_REQUEST => {
                let id: [u8; 16] = rest
                    .try_into()
                    .map_err(|_| corrupt("request id is not 16 bytes"))?;
                Ok(RowKey::Request(RequestId(u128::from_be_bytes(id))))
            }
            PREFIX_WINDOW | PREFIX_AUDIT => {
                let id: [u8; 8] = rest.try_into().map_err(|_| corrupt("id is not 8 bytes"))?;
                let id = u64::from_be_bytes(id);
                Ok(if prefix == PREFIX_WINDOW {
                    RowKey::Window(id)
                } else {
                    RowKey::Audit(id)
                })
            }
            PREFIX_RESTORE_META if rest.is_empty() => Ok(RowKey::RestoreMeta),
            PREFIX_RESTORE_ROW if !rest.is_empty() => Ok(RowKey::RestoreRow(rest.to_vec())),
            _ => Err(corrupt(&format!("unknown prefix {prefix:#04x}"))),
        }
    }
}

fn prefixed(prefix: u8, body: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + body.len());
    key.push(prefix);
    key.extend_from_slice(body);
    key
}

/// Encodes a row value: version byte, then postcard.
pub fn encode_value<T: Serialize>(value: &T) -> Vec<u8> {
    crate::wire::encode_versioned(ROW_FORMAT_VERSION, value)
}

/// Decodes a row value of any version this build knows.
pub fn decode_value<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T, Error> {
    crate::wire::decode_versioned(what, ROW_FORMAT_VERSION, bytes)
}

/// The rows an apply touched. After a batch the store writes each one's
/// current value, or deletes it, in the same write as the applied log id.
/// Route moves are listed too, in order, for watches.
#[derive(Debug, Default)]
pub struct ChangeSet {
    keys: BTreeSet<RowKey>,
    route_changes: Vec<RouteChange>,
    /// The whole state was replaced (a restore): rewrite every row.
    replaced: bool,
}

/// A host's route moved: from where, to where (relay and generation).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RouteChange {
    /// The host.
    pub host_id: HostId,
    /// Its route before (relay, generation), if any.
    pub previous: Option<(RelayId, u64)>,
    /// Its route after, if any.
    pub current: Option<(RelayId, u64)>,
}

impl ChangeSet {
    /// Notes that a row may have changed.
    pub fn touch(&mut self, key: RowKey) {
        self.keys.insert(key);
    }

    /// The touched rows, in key order.
    pub fn keys(&self) -> impl Iterator<Item = &RowKey> {
        self.keys.iter()
    }

    /// How many rows were touched.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether none was.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Forgets the touched rows after they were written.
    pub fn clear(&mut self) {
        self.keys.clear();
        self.route_changes.clear();
        self.replaced = false;
    }

    /// Notes that the whole state was replaced.
    pub fn replace_all(&mut self) {
        self.replaced = true;
    }

    /// Whether the whole state was replaced since the last clear.
    pub fn replaced(&self) -> bool {
        self.replaced
    }

    /// Notes a route move.
    pub fn route_changed(&mut self, change: RouteChange) {
        self.route_changes.push(change);
    }

    /// Takes the route moves noted so far, oldest first.
    pub fn take_route_changes(&mut self) -> Vec<RouteChange> {
        std::mem::take(&mut self.route_changes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_order_matches_byte_order() {
        let keys = vec![
            RowKey::Meta,
            RowKey::NodeInfo,
            RowKey::Site(2),
            RowKey::Site(300),
            RowKey::Relay(RelayId::new("a").unwrap()),
            RowKey::Relay(RelayId::new("b-1").unwrap()),
            RowKey::RemovedRelay(RelayId::new("a").unwrap()),
            RowKey::Route(HostId::new("A").unwrap()),
            RowKey::Route(HostId::new("a").unwrap()),
            RowKey::Request(RequestId(5)),
            RowKey::Request(RequestId(u128::MAX)),
            RowKey::Window(1),
            RowKey::Audit(7),
            RowKey::RestoreMeta,
            RowKey::RestoreRow(vec![0x20, b'h']),
        ];
        let mut sorted = keys.clone();
        sorted.sort();
        assert_eq!(sorted, keys);
        let mut bytes: Vec<Vec<u8>> = keys.iter().map(RowKey::encode).collect();
        bytes.sort();
        let decoded: Vec<RowKey> = bytes.iter().map(|b| RowKey::decode(b).unwrap()).collect();
        assert_eq!(decoded, keys);
    }

    #[test]
    fn garbage_keys_are_refused() {
        assert!(RowKey::decode(&[]).is_err());
        assert!(RowKey::decode(&[0x99]).is_err());
        assert!(RowKey::decode(&[PREFIX_REQUEST, 1, 2]).is_err());
        assert!(RowKey::decode(&[PREFIX_RELAY, b'A']).is_err());
    }
}
