//! Bearer tokens for hosts and clients.
//!
//! A host acts only as its own `host_id`, with a credential issued at
//! enrollment (`sbctl host enroll`); a client may use a token instead of a
//! certificate. A token is `sbt1.<claims>.<tag>`: hex of the postcard-encoded
//! claims, and hex of their HMAC-SHA256 under the cluster's token key (the
//! same key file on every site). Verification is constant-time, checks the
//! cluster and the expiry, and never panics on garbage.

use ring::hmac;
use serde::Deserialize;
use serde::Serialize;

use crate::file_error::FileError;
use crate::file_error::KeyError;

/// Prefix and format version of a token.
pub const TOKEN_PREFIX: &str = "sbt1";
/// Longest token accepted, in bytes; anything longer is refused unread.
pub const TOKEN_BYTES_MAX: usize = 1024;
/// Longest validity an admin may give a token: a year.
pub const TOKEN_TTL_MAX_SECS: u64 = 366 * 24 * 3600;

/// What a token lets its bearer act as.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum TokenRole {
    /// A VPN host, acting only as its own host id.
    Host,
    /// A client that resolves hosts.
    Client,
}

/// What a token says.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenClaims {
    /// Who the token is for.
    pub role: TokenRole,
    /// The host id or client name.
    pub subject: String,
    /// The cluster that issued it.
    pub cluster_id: String,
    /// Unix milliseconds after which the token is refused.
    pub expires_at_ms: u64,
}

/// A cluster's token key.
#[derive(Clone)]
pub struct TokenKey {
    key: hmac::Key,
}

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(..)")
    }
}

/// Why a token is refused.
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Longer than `TOKEN_BYTES_MAX`.
    #[error("token too long")]
    TooLong,
    /// Not `<prefix>.<claims>.<signature>` in hex.
    #[error("malformed token")]
    Malformed,
    /// A prefix this build does not know.
    #[error("unknown token format")]
    UnknownFormat,
    /// The signature is not this cluster's token key's.
    #[error("token signature does not verify")]
    BadSignature,
    /// Issued for another cluster.
    #[error("token is for cluster {0:?}")]
    OtherCluster(String),
    /// Past its expiry.
    #[error("token expired")]
    Expired,
}

/// Shortest token key, in bytes.
pub const TOKEN_KEY_BYTES_MIN: usize = 32;

impl TokenKey {
    /// A key from raw bytes (at least 32).
    pub fn new(bytes: &[u8]) -> Result<Self, KeyError> {
        if bytes.len() < TOKEN_KEY_BYTES_MIN {
            return Err(KeyError::TokenKeyTooShort(bytes.len()));
        }
        Ok(TokenKey {
            key: hmac::Key::new(hmac::HMAC_SHA256, bytes),
        })
    }

    /// A key from a file holding hex.
    pub fn from_hex_file(path: &std::path::Path) -> Result<Self, FileError> {
        let bytes = crate::signing::read_hex_file(path)?;
        TokenKey::new(&bytes).map_err(|e| FileError::invalid(path, e))
    }

    /// Signs claims into a token.
    pub fn issue(&self, claims: &TokenClaims) -> String {
        let body = hex::encode(postcard::to_allocvec(claims).expect("claims always encode"));
        let signed = format!("{TOKEN_PREFIX}.{body}");
        let tag = hmac::sign(&self.key, signed.as_bytes());
        format!("{signed}.{}", hex::encode(tag.as_ref()))
    }

    /// Checks a token for `cluster_id` at `now_ms`; returns its claims.
    pub fn verify(
        &self,
        token: &str,
        cluster_id: &str,
        now_ms: u64,
    ) -> Result<TokenClaims, TokenError> {
        if token.len() > TOKEN_BYTES_MAX {
            return Err(TokenError::TooLong);
        }
        let (signed, tag) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
        let (prefix, body) = signed.split_once('.').ok_or(TokenError::Malformed)?;
        if prefix != TOKEN_PREFIX {
            return Err(TokenError::UnknownFormat);
        }
        let tag = hex::decode(tag).map_err(|_| TokenError::Malformed)?;
        hmac::verify(&self.key, signed.as_bytes(), &tag).map_err(|_| TokenError::BadSignature)?;
        let body = hex::decode(body).map_err(|_| TokenError::Malformed)?;
        let claims: TokenClaims = postcard::from_bytes(&body).map_err(|_| TokenError::Malformed)?;
        if claims.cluster_id != cluster_id {
            return Err(TokenError::OtherCluster(claims.cluster_id));
        }
        if claims.expires_at_ms <= now_ms {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn key() -> TokenKey {
        TokenKey::new(&[7u8; 32]).unwrap()
    }

    fn claims() -> TokenClaims {
        TokenClaims {
            role: TokenRole::Host,
            subject: "host-1".into(),
            cluster_id: "c".into(),
            expires_at_ms: 2_000,
        }
    }

    #[test]
    fn tokens_verify_only_with_the_key_cluster_and_time_they_were_made_for() {
        let token = key().issue(&claims());
        assert_eq!(key().verify(&token, "c", 1_000).unwrap(), claims());
        assert_eq!(
            key().verify(&token, "other", 1_000).unwrap_err(),
            TokenError::OtherCluster("c".into())
        );
        assert_eq!(
            key().verify(&token, "c", 2_000).unwrap_err(),
            TokenError::Expired
        );
        let other_key = TokenKey::new(&[8u8; 32]).unwrap();
        assert!(other_key.verify(&token, "c", 1_000).is_err());
        // A forged claim with the old tag: the subject changed, the tag did not.
        let forged = token.replacen("686f73742d31", "686f73742d32", 1);
        assert_ne!(forged, token);
        assert_eq!(
            key().verify(&forged, "c", 1_000).unwrap_err(),
            TokenError::BadSignature
        );
        assert!(TokenKey::new(&[1u8; 16]).is_err(), "short keys are refused");
    }

    proptest! {
        /// Garbage never verifies and never panics.
        #[test]
        fn garbage_tokens_are_refused(token in ".{0,300}") {
            prop_assert!(key().verify(&token, "c", 0).is_err());
        }

        /// Any single changed character breaks a good token.
        #[test]
        fn tampered_tokens_are_refused(position in 0usize..200, replacement in "[0-9a-z.]") {
            let token = key().issue(&claims());
            let position = position % token.len();
            let mut tampered = token.clone();
            tampered.replace_range(position..position + 1, &replacement);
            prop_assume!(tampered != token);
            prop_assert!(key().verify(&tampered, "c", 1_000).is_err());
        }
    }
}
