//! When this site's certificates expire, as gauges for the alert that
//! fires 14 days ahead: `switchboard_tls_certificate_expiry_timestamp_seconds`
//! with `certificate="site"` (its own leaf) and `certificate="ca"` (the
//! earliest CA it trusts). Set at start and at each reload.

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;
use switchboard_api::tls::TlsMaterial;

/// Records the expiry of `material`'s leaf and of its earliest CA.
pub fn record(material: &TlsMaterial) {
    if let Some(at) = not_after(material.leaf()) {
        set("site", at);
    }
    let earliest_ca = CertificateDer::pem_slice_iter(material.ca_pem.as_bytes())
        .filter_map(Result::ok)
        .filter_map(|ca| not_after(&ca))
        .min();
    if let Some(at) = earliest_ca {
        set("ca", at);
    }
}

fn set(certificate: &'static str, not_after_unix_s: i64) {
    metrics::gauge!(
        "switchboard_tls_certificate_expiry_timestamp_seconds",
        "certificate" => certificate
    )
    .set(not_after_unix_s as f64);
}

/// A DER certificate's notAfter, in Unix seconds; `None` if it does not
/// parse (the TLS stack has accepted it already, so this only hides the
/// gauge).
pub fn not_after(der: &CertificateDer<'_>) -> Option<i64> {
    let (_, certificate) = x509_parser::parse_x509_certificate(der.as_ref()).ok()?;
    Some(certificate.validity().not_after.timestamp())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_certificates_expiry_is_read_and_garbage_is_none() {
        let mut params = rcgen::CertificateParams::new(vec!["x.test".to_owned()]).expect("params");
        params.not_after = rcgen::date_time_ymd(2031, 5, 17);
        let key = rcgen::KeyPair::generate().expect("key");
        let certificate = params.self_signed(&key).expect("certificate");
        // 2031-05-17T00:00:00Z
        assert_eq!(not_after(certificate.der()), Some(1_936_742_400));
        assert_eq!(
            not_after(&CertificateDer::from(vec![0x30, 0x03, 1, 2, 3])),
            None
        );
    }
}
