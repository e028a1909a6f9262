//! Mutual TLS with rustls (ring provider only), reloaded without a restart.
//!
//! A site holds one set of files: the CA that signs the cluster's
//! identities, its own certificate and its key. Servers present the
//! certificate and check callers' certificates against the CA; the same
//! certificate is the site's client identity towards other sites. A reload
//! task notices changed files and swaps them in: new handshakes use the new
//! certificate and CA at once, existing connections finish on the old ones.

use std::path::Path;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use std::time::SystemTime;

use arc_swap::ArcSwap;
use rustls::DistinguishedName;
use rustls::RootCertStore;
use rustls::ServerConfig;
use rustls::SignatureScheme;
use rustls::client::danger::HandshakeSignatureValid;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::CertificateDer;
use rustls::pki_types::PrivateKeyDer;
use rustls::pki_types::UnixTime;
use rustls::pki_types::pem::PemObject;
use rustls::server::ClientHello;
use rustls::server::ResolvesServerCert;
use rustls::server::WebPkiClientVerifier;
use rustls::server::danger::ClientCertVerified;
use rustls::server::danger::ClientCertVerifier;
use rustls::sign::CertifiedKey;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tonic::transport::Certificate;
use tonic::transport::ClientTlsConfig;
use tonic::transport::Identity;

use crate::connection::Connection;
use crate::error::ApiError;
use crate::limits::ConnectionLimits;
use crate::per_source::PerSource;

/// Pause after a failed accept (out of file descriptors, say), so the
/// loop does not spin while the cause lasts.
const ACCEPT_RETRY_PAUSE: Duration = Duration::from_millis(50);

/// Longest a TLS handshake may take before the connection is dropped.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once per port; more wait in the accept queue.
pub const HANDSHAKES_IN_FLIGHT_MAX: usize = 256;
/// Handshakes in progress at once from one source address; a connection
/// past it is closed at once. An eighth of the slots: 300 idle sockets
/// from one address (that never send a TLS byte) hold 32 slots for
/// `HANDSHAKE_TIMEOUT`, and everyone else handshakes at once. Room enough
/// for a NAT gateway's hosts reconnecting together (they retry).
pub const HANDSHAKES_PER_SOURCE_MAX: usize = HANDSHAKES_IN_FLIGHT_MAX / 8;
/// Accepted connections waiting for the gRPC server to take them.
const ACCEPTED_QUEUE_MAX: usize = 64;

/// The process's crypto provider: ring, nothing else.
pub fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Where a site's (or a client's) TLS files are.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TlsFiles {
    /// CA certificates (PEM) that sign the cluster's identities.
    pub ca: PathBuf,
    /// This identity's certificate chain (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
}

/// The contents of a set of TLS files, parsed and checked.
#[derive(Clone)]
pub struct TlsMaterial {
    /// The CA certificates to trust, PEM.
    pub ca_pem: String,
    /// This side's certificate chain, PEM.
    pub cert_pem: String,
    /// Its private key, PEM.
    pub key_pem: String,
    roots: Arc<RootCertStore>,
    certified_key: Arc<CertifiedKey>,
}

fn read(path: &Path) -> Result<String, ApiError> {
    std::fs::read_to_string(path)
        .map_err(|e| ApiError::Setup(format!("reading {}: {e}", path.display())))
}

fn modified(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

impl TlsFiles {
    /// Reads and checks the files: the certificate must parse, match the key,
    /// and the CA file must hold at least one certificate.
    pub fn load(&self) -> Result<TlsMaterial, ApiError> {
        let ca_pem = read(&self.ca)?;
        let cert_pem = read(&self.cert)?;
        let key_pem = read(&self.key)?;
        let bad = |path: &Path, e: &dyn std::fmt::Display| {
            ApiError::Setup(format!("{}: {e}", path.display()))
        };
        let mut roots = RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
            let cert = cert.map_err(|e| bad(&self.ca, &e))?;
            roots.add(cert).map_err(|e| bad(&self.ca, &e))?;
        }
        if roots.is_empty() {
            return Err(ApiError::Setup(format!(
                "{} holds no CA certificate",
                self.ca.display()
            )));
        }
        let chain: Vec<CertificateDer<'static>> =
            CertificateDer::pem_slice_iter(cert_pem.as_bytes())
                .collect::<Result<_, _>>()
                .map_err(|e| bad(&self.cert, &e))?;
        if chain.is_empty() {
            return Err(ApiError::Setup(format!(
                "{} holds no certificate",
                self.cert.display()
            )));
        }
        let key =
            PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| bad(&self.key, &e))?;
        let certified_key =
            CertifiedKey::from_der(chain, key, &provider()).map_err(|e| bad(&self.key, &e))?;
        Ok(TlsMaterial {
            ca_pem,
            cert_pem,
            key_pem,
            roots: Arc::new(roots),
            certified_key: Arc::new(certified_key),
        })
    }

    fn modified(&self) -> [Option<SystemTime>; 3] {
        [
            modified(&self.ca),
            modified(&self.cert),
            modified(&self.key),
        ]
    }
}

impl TlsMaterial {
    /// A tonic client config presenting this identity and expecting a server
    /// certificate for `server_name` from the CA.
    pub fn client_config(&self, server_name: &str) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(&self.ca_pem))
            .identity(Identity::from_pem(&self.cert_pem, &self.key_pem))
            .domain_name(server_name)
    }

    /// The leaf certificate presented by this identity.
    pub fn leaf(&self) -> &CertificateDer<'static> {
        &self.certified_key.cert[0]
    }
}

/// Whether a port demands a client certificate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientAuth {
    /// Every connection presents a certificate from the CA.
    Required,
    /// A certificate, if presented, must be from the CA; without one the
    /// caller must bring a token with each request.
    Optional,
}

struct VerifierHolder(Arc<dyn ClientCertVerifier>);

/// A server's certificate and client verifier, swappable at run time.
pub struct ReloadableServer {
    certified_key: ArcSwap<CertifiedKey>,
    verifier: ArcSwap<VerifierHolder>,
    client_auth: ClientAuth,
}

impl std::fmt::Debug for ReloadableServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReloadableServer")
            .field("client_auth", &self.client_auth)
            .finish()
    }
}

fn verifier(
    roots: Arc<RootCertStore>,
    client_auth: ClientAuth,
) -> Result<Arc<dyn ClientCertVerifier>, ApiError> {
    let builder = WebPkiClientVerifier::builder_with_provider(roots, provider());
    let builder = match client_auth {
        ClientAuth::Required => builder,
        ClientAuth::Optional => builder.allow_unauthenticated(),
    };
    builder
        .build()
        .map_err(|e| ApiError::Setup(format!("client verifier: {e}")))
}

impl ReloadableServer {
    /// A server identity from loaded material.
    pub fn new(material: &TlsMaterial, client_auth: ClientAuth) -> Result<Arc<Self>, ApiError> {
        Ok(Arc::new(ReloadableServer {
            certified_key: ArcSwap::new(material.certified_key.clone()),
            verifier: ArcSwap::from_pointee(VerifierHolder(verifier(
                material.roots.clone(),
                client_auth,
            )?)),
            client_auth,
        }))
    }

    /// Swaps in new material for the next handshakes.
    pub fn reload(&self, material: &TlsMaterial) -> Result<(), ApiError> {
        let verifier = verifier(material.roots.clone(), self.client_auth)?;
        self.verifier.store(Arc::new(VerifierHolder(verifier)));
        self.certified_key.store(material.certified_key.clone());
        Ok(())
    }

    /// The rustls server config (HTTP/2 only, TLS 1.2 and 1.3).
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<ServerConfig>, ApiError> {
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| ApiError::Setup(format!("tls versions: {e}")))?
            .with_client_cert_verifier(Arc::new(ReloadingVerifier(self.clone())))
            .with_cert_resolver(Arc::new(ReloadingResolver(self.clone())));
        config.alpn_protocols = vec![b"h2".to_vec()];
        Ok(Arc::new(config))
    }
}

#[derive(Debug)]
struct ReloadingResolver(Arc<ReloadableServer>);

impl ResolvesServerCert for ReloadingResolver {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.0.certified_key.load_full())
    }
}

#[derive(Debug)]
struct ReloadingVerifier(Arc<ReloadableServer>);

impl ClientCertVerifier for ReloadingVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        self.0.client_auth == ClientAuth::Required
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // No hints: a client presents the one certificate it has.
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        self.0
            .verifier
            .load()
            .0
            .verify_client_cert(end_entity, intermediates, now)
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0
            .verifier
            .load()
            .0
            .verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0
            .verifier
            .load()
            .0
            .verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.verifier.load().0.supported_verify_schemes()
    }
}

/// TLS connections accepted on `listener`, for tonic's
/// `serve_with_incoming`. Handshakes run concurrently (bounded), each with a
/// timeout; a failed handshake is logged and counted, never fatal. Each
/// source address holds at most its share of the handshake slots and of
/// open connections (`limits`); past either, its new socket is closed at once.
pub fn incoming(
    listener: TcpListener,
    config: Arc<ServerConfig>,
    port: &'static str,
    limits: ConnectionLimits,
) -> tokio_stream::wrappers::ReceiverStream<Result<TlsStream<Connection>, std::io::Error>> {
    let (accepted, stream) = tokio::sync::mpsc::channel(ACCEPTED_QUEUE_MAX);
    let acceptor = TlsAcceptor::from(config);
    let handshakes = Arc::new(Semaphore::new(limits.handshakes_max));
    let handshakes_per_source = PerSource::new(limits.handshakes_per_source_max);
    let connections_per_source = PerSource::new(limits.connections_per_source_max);
    tokio::spawn(async move {
        loop {
            let (tcp, peer) = tokio::select! {
                _ = accepted.closed() => return,
                connection = listener.accept() => match connection {
                    Ok(connection) => connection,
                    Err(error) => {
                        tracing::warn!(port, %error, "accept failed");
                        tokio::time::sleep(ACCEPT_RETRY_PAUSE).await;
                        continue;
                    }
                },
            };
            let Some(slot) = connections_per_source.try_hold(peer.ip()) else {
                refused(port, "connections_per_source", peer);
                continue;
            };
            let Some(handshaking) = handshakes_per_source.try_hold(peer.ip()) else {
                refused(port, "handshakes_per_source", peer);
                continue;
            };
            let Ok(permit) = handshakes.clone().acquire_owned().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let accepted = accepted.clone();
            tokio::spawn(async move {
                let _ = tcp.set_nodelay(true);
                let connection = Connection::new(tcp, slot, limits.request_bytes_in_flight_max);
                let handshake =
                    tokio::time::timeout(limits.handshake_timeout, acceptor.accept(connection))
                        .await;
                drop(handshaking);
                drop(permit);
                match handshake {
                    Ok(Ok(stream)) => {
                        let _ = accepted.send(Ok(stream)).await;
                    }
                    Ok(Err(error)) => {
                        metrics::counter!("switchboard_tls_handshake_failures_total", "port" => port).increment(1);
                        tracing::info!(port, %peer, %error, "TLS handshake refused");
                    }
                    Err(_) => {
                        metrics::counter!("switchboard_tls_handshake_failures_total", "port" => port).increment(1);
                        tracing::info!(port, %peer, "TLS handshake timed out");
                    }
                }
            });
        }
    });
    tokio_stream::wrappers::ReceiverStream::new(stream)
}

/// Counts and logs a socket closed at accept because its source is at a cap.
fn refused(port: &'static str, reason: &'static str, peer: std::net::SocketAddr) {
    metrics::counter!("switchboard_connections_refused_total", "port" => port, "reason" => reason)
        .increment(1);
    tracing::debug!(port, %peer, reason, "source address at its cap; closed");
}

/// Watches a set of TLS files and calls `apply` with fresh material when any
/// of them changes. A file that does not load keeps the old material and is
/// logged; the next change is tried again.
pub fn spawn_reloader(
    files: TlsFiles,
    interval: Duration,
    apply: impl Fn(&TlsMaterial) -> Result<(), ApiError> + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut seen = files.modified();
        let mut ticker = tokio::time::interval(interval);
        ticker.tick().await;
        loop {
            ticker.tick().await;
            let now = files.modified();
            if now == seen {
                continue;
            }
            seen = now;
            match files.load().and_then(|material| apply(&material)) {
                Ok(()) => {
                    metrics::counter!("switchboard_tls_reloads_total").increment(1);
                    tracing::info!(cert = %files.cert.display(), "reloaded TLS certificate and CA");
                }
                Err(error) => {
                    metrics::counter!("switchboard_tls_reload_failures_total").increment(1);
                    tracing::error!(%error, "TLS files changed but do not load; keeping the previous ones");
                }
            }
        }
    })
}
