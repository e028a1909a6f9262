//! How a client proves who it is: TLS to the sites and a bearer token.

use tonic::transport::ClientTlsConfig;

use super::ClientError;

/// How a client proves who it is.
#[derive(Clone, Debug, Default)]
pub struct Credentials {
    /// TLS to the sites (the CA to trust, and a client certificate if any).
    pub tls: Option<ClientTlsConfig>,
    /// A bearer token (hosts, and clients without a certificate).
    pub token: Option<String>,
}

impl Credentials {
    /// No TLS, no token: for sites run with the `insecure` setting.
    pub fn insecure() -> Self {
        Credentials::default()
    }

    /// TLS from files: trust `ca`, present `cert`/`key` if given, and check
    /// that the server is a site of `cluster_id`.
    pub fn from_files(
        cluster_id: &str,
        ca: &std::path::Path,
        identity: Option<(&std::path::Path, &std::path::Path)>,
        token: Option<String>,
    ) -> Result<Self, ClientError> {
        let read = |path: &std::path::Path| {
            std::fs::read_to_string(path)
                .map_err(|e| ClientError::Credentials(format!("reading {}: {e}", path.display())))
        };
        let mut tls = ClientTlsConfig::new()
            .ca_certificate(tonic::transport::Certificate::from_pem(read(ca)?))
            .domain_name(crate::pki::sites_name(&crate::pki::cluster_domain(
                cluster_id,
            )));
        if let Some((cert, key)) = identity {
            tls = tls.identity(tonic::transport::Identity::from_pem(
                read(cert)?,
                read(key)?,
            ));
        }
        Ok(Credentials {
            tls: Some(tls),
            token,
        })
    }
}
