//! Identifiers and the validation every one of them passes before it reaches the log.
//!
//! The same checks run at the API edge (so bad input gets a clear error and
//! nothing is proposed) and inside `apply` (so a malformed command that did
//! reach the log is refused the same way on every site).

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

use serde::Deserialize;
use serde::Serialize;

use crate::error::Error;

/// A site's Raft node id.
pub type SiteId = u64;

/// Longest relay id: one DNS label, because relay certificates name it as one.
pub const RELAY_ID_BYTES_MAX: usize = 63;
/// Longest host id, in bytes. Generous for machine names and UUIDs alike.
pub const HOST_ID_BYTES_MAX: usize = 128;
/// Longest region name; region names are DNS-label-like too.
pub const REGION_BYTES_MAX: usize = 63;
/// Longest `host:port` endpoint (a DNS name is at most 253 bytes).
pub const ENDPOINT_BYTES_MAX: usize = 261;
/// Most failure-domain labels on one relay or site: enough for region,
/// datacenter, room, rack, power feed, uplink and a few more.
pub const LABELS_MAX: usize = 16;
/// Longest label key, in bytes.
pub const LABEL_KEY_BYTES_MAX: usize = 63;
/// Longest label value, in bytes.
pub const LABEL_VALUE_BYTES_MAX: usize = 128;
/// Largest relay capacity in hosts. A relay that claims more is misconfigured.
pub const RELAY_CAPACITY_MAX: u32 = 1_000_000;

/// A relay's id: lowercase letters, digits, `-`, one DNS label.
///
/// Shared text (`Arc<str>`): the state's persistent maps copy whole nodes
/// of ids on every write, and a copy must not allocate.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RelayId(Arc<str>);

/// A VPN host's id: letters, digits and `.`, `_`, `:`, `-`. Shared text,
/// as [`RelayId`].
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HostId(Arc<str>);

/// Failure-domain labels (region, datacenter, power feed, uplink, ...).
pub type Labels = BTreeMap<String, String>;

/// A caller-chosen id that makes a write idempotent: a retry of an applied
/// request returns the first answer and changes nothing. Zero means "none".
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, Default)]
pub struct RequestId(pub u128);

impl RequestId {
    /// The id of a request that asked for no deduplication.
    pub const NONE: RequestId = RequestId(0);

    /// Reads a 16-byte big-endian id; empty input is `NONE`.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.is_empty() {
            return Ok(Self::NONE);
        }
        let array: [u8; 16] = bytes
            .try_into()
            .map_err(|_| Error::invalid("request_id", "must be 16 bytes or empty"))?;
        Ok(RequestId(u128::from_be_bytes(array)))
    }

    /// The 16-byte big-endian form.
    pub fn to_bytes(self) -> [u8; 16] {
        self.0.to_be_bytes()
    }

    /// Whether the caller asked for deduplication.
    pub fn is_none(self) -> bool {
        self.0 == 0
    }
}

impl fmt::Debug for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:032x}", self.0)
    }
}

fn is_dns_label_char(c: u8) -> bool {
    c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-'
}

fn check_dns_label(field: &'static str, value: &str, bytes_max: usize) -> Result<(), Error> {
    if value.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    if value.len() > bytes_max {
        return Err(Error::invalid(
            field,
            format!("is {} bytes, at most {bytes_max} allowed", value.len()),
        ));
    }
    if !value.bytes().all(is_dns_label_char) {
        return Err(Error::invalid(
            field,
            "may hold only lowercase letters, digits and '-'",
        ));
    }
    if value.starts_with('-') || value.ends_with('-') {
        return Err(Error::invalid(field, "must not start or end with '-'"));
    }
    Ok(())
}

impl RelayId {
    /// Validates and wraps a relay id.
    pub fn new(value: impl Into<String>) -> Result<Self, Error> {
        let value = value.into();
        check_dns_label("relay_id", &value, RELAY_ID_BYTES_MAX)?;
        Ok(RelayId(value.into()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Re-checks an id that came out of a decoded command.
    pub fn validate(&self) -> Result<(), Error> {
        check_dns_label("relay_id", &self.0, RELAY_ID_BYTES_MAX)
    }
}

impl HostId {
    /// Validates and wraps a host id.
    pub fn new(value: impl Into<String>) -> Result<Self, Error> {
        let host = HostId(value.into().into());
        host.validate()?;
        Ok(host)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Re-checks an id that came out of a decoded command.
    pub fn validate(&self) -> Result<(), Error> {
        let value = &self.0;
        if value.is_empty() {
            return Err(Error::invalid("host_id", "must not be empty"));
        }
        if value.len() > HOST_ID_BYTES_MAX {
            return Err(Error::invalid(
                "host_id",
                format!(
                    "is {} bytes, at most {HOST_ID_BYTES_MAX} allowed",
                    value.len()
                ),
            ));
        }
        let allowed = |c: u8| c.is_ascii_alphanumeric() || matches!(c, b'.' | b'_' | b':' | b'-');
        if !value.bytes().all(allowed) {
            return Err(Error::invalid(
                "host_id",
                "may hold only letters, digits and '.', '_', ':', '-'",
            ));
        }
        Ok(())
    }
}

macro_rules! text_id_traits {
    ($name:ident, $name_str:literal) => {
        // Encoded exactly as the derived `String` newtype was (formats on
        // disk and on the wire are frozen), decoded into shared text.
        impl Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_newtype_struct(stringify!($name), &*self.0)
            }
        }
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                #[derive(Deserialize)]
                #[serde(rename = $name_str)]
                struct Text(String);
                Text::deserialize(deserializer).map(|text| $name(text.0.into()))
            }
        }
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Debug::fmt(&self.0, f)
            }
        }
        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}
text_id_traits!(RelayId, "RelayId");
text_id_traits!(HostId, "HostId");

/// Checks a region name; the empty string means "no region".
pub fn validate_region(region: &str) -> Result<(), Error> {
    if region.is_empty() {
        return Ok(());
    }
    check_dns_label("region", region, REGION_BYTES_MAX)
}

/// Checks a `host:port` endpoint: a DNS name or IP address and a non-zero port.
pub fn validate_endpoint(field: &'static str, endpoint: &str) -> Result<(), Error> {
    if endpoint.is_empty() {
        return Err(Error::invalid(field, "must not be empty"));
    }
    if endpoint.len() > ENDPOINT_BYTES_MAX {
        return Err(Error::invalid(
            field,
            format!("is longer than {ENDPOINT_BYTES_MAX} bytes"),
        ));
    }
    let (host, port) = endpoint
        .rsplit_once(':')
        .ok_or_else(|| Error::invalid(field, format!("{endpoint:?} is not host:port")))?;
    let port: u16 = port
        .parse()
        .map_err(|_| Error::invalid(field, format!("{endpoint:?} has no valid port")))?;
    if port == 0 {
        return Err(Error::invalid(field, format!("{endpoint:?} has port 0")));
    }
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if host.is_empty() {
        return Err(Error::invalid(field, format!("{endpoint:?} has no host")));
    }
    if host.parse::<std::net::IpAddr>().is_ok() {
        return Ok(());
    }
    let name_ok = host.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && label
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-')
    });
    if !name_ok {
        return Err(Error::invalid(
            field,
            format!("{endpoint:?} has an invalid host name"),
        ));
    }
    Ok(())
}

/// Checks failure-domain labels: count, key charset and lengths.
pub fn validate_labels(labels: &Labels) -> Result<(), Error> {
    if labels.len() > LABELS_MAX {
        return Err(Error::invalid(
            "labels",
            format!("{} labels, at most {LABELS_MAX} allowed", labels.len()),
        ));
    }
    for (key, value) in labels {
        if key.is_empty() || key.len() > LABEL_KEY_BYTES_MAX {
            return Err(Error::invalid(
                "labels",
                format!("key {key:?} must be 1 to {LABEL_KEY_BYTES_MAX} bytes"),
            ));
        }
        let key_ok = key.bytes().all(|c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'-' | b'_' | b'.' | b'/')
        });
        if !key_ok {
            return Err(Error::invalid(
                "labels",
                format!("key {key:?} may hold only a-z, 0-9, '-', '_', '.', '/'"),
            ));
        }
        if value.len() > LABEL_VALUE_BYTES_MAX {
            return Err(Error::invalid(
                "labels",
                format!("value of {key:?} is over {LABEL_VALUE_BYTES_MAX} bytes"),
            ));
        }
        if value.bytes().any(|c| c.is_ascii_control() || !c.is_ascii()) {
            return Err(Error::invalid(
                "labels",
                format!("value of {key:?} must be printable ASCII"),
            ));
        }
    }
    Ok(())
}

/// Longest site name, in bytes: one DNS label's worth, room for a
/// datacenter's name in any script.
pub const SITE_NAME_BYTES_MAX: usize = 63;

/// Checks a site's name: 1 to `SITE_NAME_BYTES_MAX` bytes of printable
/// text (any script, no control characters), because status pages, node
/// info and operators' terminals show it.
pub fn validate_site_name(name: &str) -> Result<(), Error> {
    if name.is_empty() || name.len() > SITE_NAME_BYTES_MAX {
        return Err(Error::invalid(
            "name",
            format!("a site name must be 1 to {SITE_NAME_BYTES_MAX} bytes"),
        ));
    }
    if name.chars().any(|c| c.is_control()) {
        return Err(Error::invalid(
            "name",
            format!("a site name must be printable: {:?}", name),
        ));
    }
    Ok(())
}

/// Longest cluster id, in bytes.
pub const CLUSTER_ID_BYTES_MAX: usize = 64;

/// Checks a cluster id: letters, digits and '-'.
pub fn validate_cluster_id(cluster_id: &str) -> Result<(), Error> {
    if cluster_id.is_empty() || cluster_id.len() > CLUSTER_ID_BYTES_MAX {
        return Err(Error::invalid(
            "cluster_id",
            format!("must be 1 to {CLUSTER_ID_BYTES_MAX} bytes"),
        ));
    }
    if !cluster_id
        .bytes()
        .all(|c| c.is_ascii_alphanumeric() || c == b'-')
    {
        return Err(Error::invalid(
            "cluster_id",
            "may hold only letters, digits and '-'",
        ));
    }
    Ok(())
}

/// Checks a relay's capacity in hosts.
pub fn validate_capacity(capacity: u32) -> Result<(), Error> {
    if capacity == 0 || capacity > RELAY_CAPACITY_MAX {
        return Err(Error::invalid(
            "capacity",
            format!("must be 1 to {RELAY_CAPACITY_MAX} hosts, got {capacity}"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn site_names_are_printable_and_bounded() {
        assert!(validate_site_name("tsukuba").is_ok());
        assert!(validate_site_name("東京").is_ok());
        assert!(validate_site_name("").is_err());
        assert!(validate_site_name(&"a".repeat(SITE_NAME_BYTES_MAX + 1)).is_err());
        let error = validate_site_name("<script>\x1b[2J").unwrap_err();
        assert!(error.to_string().contains("printable"), "{error}");
    }

    use super::*;

    #[test]
    fn relay_ids_are_dns_labels() {
        assert!(RelayId::new("relay-1").is_ok());
        assert!(RelayId::new("").is_err());
        assert!(RelayId::new("Relay").is_err());
        assert!(RelayId::new("-a").is_err());
        assert!(RelayId::new("a".repeat(64)).is_err());
        assert!(RelayId::new("a".repeat(63)).is_ok());
    }

    #[test]
    fn host_ids_reject_spaces_and_overlong_values() {
        assert!(HostId::new("host-00001.example:5").is_ok());
        assert!(HostId::new("a b").is_err());
        assert!(HostId::new("x".repeat(129)).is_err());
    }

    #[test]
    fn endpoints_need_a_host_and_a_port() {
        assert!(validate_endpoint("endpoint", "relay1.example.net:443").is_ok());
        assert!(validate_endpoint("endpoint", "127.0.0.1:9000").is_ok());
        assert!(validate_endpoint("endpoint", "[::1]:9000").is_ok());
        assert!(validate_endpoint("endpoint", "relay1").is_err());
        assert!(validate_endpoint("endpoint", "relay1:0").is_err());
        assert!(validate_endpoint("endpoint", ":80").is_err());
        assert!(validate_endpoint("endpoint", "bad_name:80").is_err());
    }

    #[test]
    fn request_ids_are_sixteen_bytes() {
        assert_eq!(RequestId::from_bytes(&[]).unwrap(), RequestId::NONE);
        assert!(RequestId::from_bytes(&[1, 2, 3]).is_err());
        let id = RequestId(0x0102_0304_0506_0708_090a_0b0c_0d0e_0f10);
        assert_eq!(RequestId::from_bytes(&id.to_bytes()).unwrap(), id);
    }
}
