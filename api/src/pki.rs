//! Certificates and the names in them.
//!
//! Every identity of a cluster is a DNS name `<id>.<role>.<cluster>.switchboard`
//! in a certificate's subject alternative names: `3.site.prod.switchboard`,
//! `relay-7.relay.prod.switchboard`, `alice.admin.prod.switchboard`. DNS
//! names, never IP addresses, so a site can move. Every site certificate also
//! names `sites.<cluster>.switchboard`, the name clients check when they
//! connect to any site; sites check `<id>.site...` of the one they dial.
//!
//! `sbctl certs init` and `switchboard dev` use [`DevPki`] to make a
//! development CA and certificates, so a first run needs no PKI; production
//! brings its own, issued with the same names.

use std::path::Path;
use std::path::PathBuf;

use rcgen::BasicConstraints;
use rcgen::CertificateParams;
use rcgen::DistinguishedName;
use rcgen::DnType;
use rcgen::ExtendedKeyUsagePurpose;
use rcgen::IsCa;
use rcgen::Issuer;
use rcgen::KeyPair;
use rcgen::KeyUsagePurpose;
use time::OffsetDateTime;

use crate::error::ApiError;

/// The last DNS label of every Switchboard identity.
pub const DOMAIN_SUFFIX: &str = "switchboard";

/// How long development certificates are valid.
pub const DEV_CERTIFICATE_DAYS: i64 = 365;

/// The DNS domain of a cluster's identities.
pub fn cluster_domain(cluster_id: &str) -> String {
    format!("{cluster_id}.{DOMAIN_SUFFIX}")
}

/// What an identity may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Role {
    /// A control-plane site (Raft member).
    Site,
    /// A relay, acting as itself.
    Relay,
    /// An operator.
    Admin,
    /// A remote-access client (resolves routes).
    Client,
}

impl Role {
    /// The DNS label of the role.
    pub fn label(self) -> &'static str {
        match self {
            Role::Site => "site",
            Role::Relay => "relay",
            Role::Admin => "admin",
            Role::Client => "client",
        }
    }

    /// Reads a role label.
    pub fn from_label(label: &str) -> Option<Role> {
        match label {
            "site" => Some(Role::Site),
            "relay" => Some(Role::Relay),
            "admin" => Some(Role::Admin),
            "client" => Some(Role::Client),
            _ => None,
        }
    }
}

/// `<id>.<role>.<domain>`.
pub fn identity_name(role: Role, id: &str, domain: &str) -> String {
    format!("{id}.{}.{domain}", role.label())
}

/// The name every site certificate carries and clients check.
pub fn sites_name(domain: &str) -> String {
    format!("sites.{domain}")
}

/// Splits `<id>.<role>.<domain>` for this cluster's domain.
pub fn parse_identity_name<'a>(name: &'a str, domain: &str) -> Option<(Role, &'a str)> {
    let rest = name.strip_suffix(domain)?.strip_suffix('.')?;
    let (id, role) = rest.rsplit_once('.')?;
    if id.is_empty() || id.contains('.') {
        return None;
    }
    Some((Role::from_label(role)?, id))
}

/// A certificate and its private key, PEM encoded.
#[derive(Clone, Debug)]
pub struct IssuedCertificate {
    /// The certificate, PEM.
    pub cert_pem: String,
    /// Its private key, PEM.
    pub key_pem: String,
}

/// The validity window of a certificate.
#[derive(Clone, Copy, Debug)]
pub struct Validity {
    /// Valid from.
    pub not_before: OffsetDateTime,
    /// Valid until.
    pub not_after: OffsetDateTime,
}

impl Validity {
    /// From a day ago (clock skew) for `days` days.
    pub fn days(days: i64) -> Self {
        let now = OffsetDateTime::now_utc();
        Validity {
            not_before: now - time::Duration::days(1),
            not_after: now + time::Duration::days(days),
        }
    }
}

fn setup(error: impl std::fmt::Display) -> ApiError {
    ApiError::Setup(format!("certificate: {error}"))
}

/// A certificate authority that signs a cluster's identities.
pub struct CertificateAuthority {
    params: CertificateParams,
    key: KeyPair,
    cert_pem: String,
}

fn ca_params(cluster_id: &str, validity: Validity) -> Result<CertificateParams, ApiError> {
    let mut params = CertificateParams::new(Vec::<String>::new()).map_err(setup)?;
    let mut name = DistinguishedName::new();
    name.push(DnType::CommonName, format!("Switchboard CA {cluster_id}"));
    name.push(DnType::OrganizationName, "Switchboard");
    params.distinguished_name = name;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = validity.not_before;
    params.not_after = validity.not_after;
    Ok(params)
}

impl CertificateAuthority {
    /// A new CA for a cluster.
    pub fn generate(cluster_id: &str, validity: Validity) -> Result<Self, ApiError> {
        let params = ca_params(cluster_id, validity)?;
        let key = KeyPair::generate().map_err(setup)?;
        let cert_pem = params.self_signed(&key).map_err(setup)?.pem();
        Ok(CertificateAuthority {
            params,
            key,
            cert_pem,
        })
    }

    /// A CA made by `generate`, from its files.
    pub fn load(cluster_id: &str, cert_pem: String, key_pem: &str) -> Result<Self, ApiError> {
        let key = KeyPair::from_pem(key_pem).map_err(setup)?;
        // Only the subject name and the key matter for signing; they are the same.
        let params = ca_params(cluster_id, Validity::days(1))?;
        Ok(CertificateAuthority {
            params,
            key,
            cert_pem,
        })
    }

    /// The CA certificate.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The CA key.
    pub fn key_pem(&self) -> String {
        self.key.serialize_pem()
    }

    /// Issues a certificate for `id` in `role` of the cluster `domain`.
    pub fn issue(
        &self,
        role: Role,
        id: &str,
        domain: &str,
        validity: Validity,
    ) -> Result<IssuedCertificate, ApiError> {
        let mut names = vec![identity_name(role, id, domain)];
        if role == Role::Site {
            names.push(sites_name(domain));
        }
        let mut params = CertificateParams::new(names).map_err(setup)?;
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, identity_name(role, id, domain));
        params.distinguished_name = name;
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = match role {
            Role::Site => vec![
                ExtendedKeyUsagePurpose::ServerAuth,
                ExtendedKeyUsagePurpose::ClientAuth,
            ],
            _ => vec![ExtendedKeyUsagePurpose::ClientAuth],
        };
        params.not_before = validity.not_before;
        params.not_after = validity.not_after;
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().map_err(setup)?;
        let issuer = Issuer::from_params(&self.params, &self.key);
        let cert = params.signed_by(&key, &issuer).map_err(setup)?;
        Ok(IssuedCertificate {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// Writes a file, and for keys makes it readable by its owner only.
pub fn write_secret(path: &Path, contents: &str) -> Result<(), ApiError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| ApiError::Setup(format!("writing {}: {e}", path.display())))?;
    file.write_all(contents.as_bytes())
        .map_err(|e| ApiError::Setup(format!("writing {}: {e}", path.display())))
}

fn write_public(path: &Path, contents: &str) -> Result<(), ApiError> {
    std::fs::write(path, contents)
        .map_err(|e| ApiError::Setup(format!("writing {}: {e}", path.display())))
}

/// Where a certificate and its key are.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CertificatePaths {
    /// The certificate file.
    pub cert: PathBuf,
    /// Its key file.
    pub key: PathBuf,
}

/// A directory of development certificates.
pub struct DevPki {
    /// Where the files are.
    pub dir: PathBuf,
    /// The cluster the certificates name.
    pub cluster_id: String,
}

impl DevPki {
    /// The CA certificate path.
    pub fn ca_path(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// The shared key for host and client tokens.
    pub fn token_key_path(&self) -> PathBuf {
        self.dir.join("token.key")
    }

    /// The shared key that seals the node-info signing key in the state.
    pub fn state_key_path(&self) -> PathBuf {
        self.dir.join("state.key")
    }

    /// The files of one identity.
    pub fn paths(&self, role: Role, id: &str) -> CertificatePaths {
        CertificatePaths {
            cert: self.dir.join(format!("{}-{id}.pem", role.label())),
            key: self.dir.join(format!("{}-{id}.key", role.label())),
        }
    }

    /// Makes a new CA, a token key, and certificates for the given identities.
    pub fn init(
        dir: &Path,
        cluster_id: &str,
        identities: &[(Role, String)],
    ) -> Result<DevPki, ApiError> {
        std::fs::create_dir_all(dir)
            .map_err(|e| ApiError::Setup(format!("creating {}: {e}", dir.display())))?;
        let pki = DevPki {
            dir: dir.to_owned(),
            cluster_id: cluster_id.to_owned(),
        };
        let ca =
            CertificateAuthority::generate(cluster_id, Validity::days(DEV_CERTIFICATE_DAYS * 5))?;
        write_public(&pki.ca_path(), ca.cert_pem())?;
        write_secret(&dir.join("ca.key"), &ca.key_pem())?;
        let token_key: [u8; 32] = rand::random();
        write_secret(&pki.token_key_path(), &hex::encode(token_key))?;
        let state_key: [u8; 32] = rand::random();
        write_secret(&pki.state_key_path(), &hex::encode(state_key))?;
        for (role, id) in identities {
            pki.issue_with(&ca, *role, id, Validity::days(DEV_CERTIFICATE_DAYS))?;
        }
        Ok(pki)
    }

    /// The CA of an existing directory.
    pub fn authority(&self) -> Result<CertificateAuthority, ApiError> {
        let read = |path: PathBuf| {
            std::fs::read_to_string(&path)
                .map_err(|e| ApiError::Setup(format!("reading {}: {e}", path.display())))
        };
        CertificateAuthority::load(
            &self.cluster_id,
            read(self.ca_path())?,
            &read(self.dir.join("ca.key"))?,
        )
    }

    /// Issues one more certificate from this directory's CA.
    pub fn issue(
        &self,
        role: Role,
        id: &str,
        validity: Validity,
    ) -> Result<CertificatePaths, ApiError> {
        self.issue_with(&self.authority()?, role, id, validity)
    }

    fn issue_with(
        &self,
        ca: &CertificateAuthority,
        role: Role,
        id: &str,
        validity: Validity,
    ) -> Result<CertificatePaths, ApiError> {
        let issued = ca.issue(role, id, &cluster_domain(&self.cluster_id), validity)?;
        let paths = self.paths(role, id);
        write_public(&paths.cert, &issued.cert_pem)?;
        write_secret(&paths.key, &issued.key_pem)?;
        Ok(paths)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_names_round_trip_and_reject_other_domains() {
        let domain = cluster_domain("prod");
        let name = identity_name(Role::Relay, "relay-7", &domain);
        assert_eq!(name, "relay-7.relay.prod.switchboard");
        assert_eq!(
            parse_identity_name(&name, &domain),
            Some((Role::Relay, "relay-7"))
        );
        assert_eq!(parse_identity_name(&name, "staging.switchboard"), None);
        assert_eq!(
            parse_identity_name("x.y.relay.prod.switchboard", &domain),
            None
        );
        assert_eq!(
            parse_identity_name("x.root.prod.switchboard", &domain),
            None
        );
        assert_eq!(parse_identity_name(&sites_name(&domain), &domain), None);
    }
}
