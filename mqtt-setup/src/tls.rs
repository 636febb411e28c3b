//! TLS material from PEM files, checked when it is loaded: a missing, empty or garbled file is
//! an error naming the file, not a failed handshake later.

use std::path::{Path, PathBuf};

use rumqttc::TlsConfiguration;
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::{FileRole, SetupError};

/// The TLS files of a connection: the CA that signed the broker's certificate and, for mutual
/// TLS, the client's certificate and key.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TlsFiles {
    pub ca_file: Option<PathBuf>,
    pub client_cert_file: Option<PathBuf>,
    pub client_key_file: Option<PathBuf>,
}

impl TlsFiles {
    /// Whether any file is named.
    pub fn is_empty(&self) -> bool {
        self.ca_file.is_none() && self.client_cert_file.is_none() && self.client_key_file.is_none()
    }

    /// Reads and checks the files. `None` when no file is named: then an `mqtts://` connection
    /// trusts the system's roots.
    pub fn load(&self) -> Result<Option<TlsConfiguration>, SetupError> {
        let client_auth = match (&self.client_cert_file, &self.client_key_file) {
            (Some(c), Some(k)) => Some((certificates(FileRole::ClientCert, c)?, key(k)?)),
            (None, None) => None,
            (Some(_), None) => return Err(SetupError::HalfClientAuth { missing: FileRole::ClientKey }),
            (None, Some(_)) => return Err(SetupError::HalfClientAuth { missing: FileRole::ClientCert }),
        };
        match &self.ca_file {
            Some(ca) => {
                Ok(Some(TlsConfiguration::Simple { ca: certificates(FileRole::Ca, ca)?, alpn: None, client_auth }))
            }
            None if client_auth.is_none() => Ok(None),
            // rumqttc takes a client certificate only together with a CA.
            None => Err(SetupError::ClientAuthWithoutCa),
        }
    }
}

fn read(role: FileRole, path: &Path) -> Result<Vec<u8>, SetupError> {
    std::fs::read(path).map_err(|source| SetupError::ReadFile { role, path: path.to_path_buf(), source })
}

/// The file's bytes once it holds at least one PEM certificate and nothing unreadable.
fn certificates(role: FileRole, path: &Path) -> Result<Vec<u8>, SetupError> {
    let pem = read(role, path)?;
    let mut n = 0;
    for c in CertificateDer::pem_slice_iter(&pem) {
        c.map_err(|e| SetupError::NotPem { role, path: path.to_path_buf(), detail: pem_error(&e) })?;
        n += 1;
    }
    if n == 0 {
        return Err(SetupError::NotPem { role, path: path.to_path_buf(), detail: "no certificate in it".into() });
    }
    Ok(pem)
}

fn key(path: &Path) -> Result<Vec<u8>, SetupError> {
    let role = FileRole::ClientKey;
    let pem = read(role, path)?;
    PrivateKeyDer::from_pem_slice(&pem).map_err(|e| SetupError::NotPem {
        role,
        path: path.to_path_buf(),
        detail: match e {
            rustls_pki_types::pem::Error::NoItemsFound => "no private key in it".into(),
            e => pem_error(&e),
        },
    })?;
    Ok(pem)
}

fn pem_error(e: &rustls_pki_types::pem::Error) -> String {
    use rustls_pki_types::pem::Error as E;
    match e {
        E::MissingSectionEnd { .. } => "a PEM section has no END line".into(),
        E::IllegalSectionStart { .. } => "a PEM BEGIN line is malformed".into(),
        E::Base64Decode(_) => "a PEM section is not valid base64".into(),
        E::NoItemsFound => "no PEM section in it".into(),
        E::SectionTooLarge => "a PEM section is too large".into(),
        other => format!("{other:?}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A self-signed certificate (openssl req -x509 -newkey ec …), and its key.
    const CERT: &str = "-----BEGIN CERTIFICATE-----
MIIBfDCCASOgAwIBAgIUccPW2hwDYPvV/2iGzESNGuuIasUwCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJdGVzdC1jZXJ0MB4XDTI2MTIwNzIzNDYwOVoXDTM2MTIwNDIz
NDYwOVowFDESMBAGA1UEAwwJdGVzdC1jZXJ0MFkwEwYHKoZIzj0CAQYIKoZIzj0D
AQcDQgAErt1jZ7FVRByt6WQpQvgR9HCy8yMr69YA9Dypkb3MzR/QZmh8N+ETlr4A
iSbhkmyxZTrWGzRgTNsIzc/H9OxCuKNTMFEwHQYDVR0OBBYEFHowbYmbUodKaHjI
icSFvh9Q1pZOMB8GA1UdIwQYMBaAFHowbYmbUodKaHjIicSFvh9Q1pZOMA8GA1Ud
EwEB/wQFMAMBAf8wCgYIKoZIzj0EAwIDRwAwRAIgEjRtMrPz1FE0CqT2Mzrbx2dV
zxUzkv7cxNXuFP/q1ScCIGu+0tRMje7Va8W/YJPKG/3L8/+SZ5FPMSCT6kC7XT82
-----END CERTIFICATE-----
";

    const KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgzX7LEe/VKEApoqGN
ezQQZByL58Nwp8MQBRPGyBp/dUWhRANCAASu3WNnsVVEHK3pZClC+BH0cLLzIyvr
1gD0PKmRvczNH9BmaHw34ROWvgCJJuGSbLFlOtYbNGBM2wjNz8f07EK4
-----END PRIVATE KEY-----
";

    fn file(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn no_files_is_no_tls_configuration() {
        assert!(TlsFiles::default().load().unwrap().is_none());
    }

    #[test]
    fn a_ca_and_a_client_certificate_load() {
        let d = tempfile::tempdir().unwrap();
        let files = TlsFiles {
            ca_file: Some(file(d.path(), "ca.pem", CERT)),
            client_cert_file: Some(file(d.path(), "c.pem", CERT)),
            client_key_file: Some(file(d.path(), "k.pem", KEY)),
        };
        match files.load().unwrap() {
            Some(TlsConfiguration::Simple { ca, client_auth: Some((c, k)), .. }) => {
                assert_eq!(ca, CERT.as_bytes());
                assert_eq!((c.as_slice(), k.as_slice()), (CERT.as_bytes(), KEY.as_bytes()));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_missing_file_names_itself_and_its_role() {
        let files = TlsFiles { ca_file: Some("/nonexistent/ca.pem".into()), ..TlsFiles::default() };
        let e = files.load().unwrap_err();
        assert!(matches!(e, SetupError::ReadFile { role: FileRole::Ca, .. }), "{e:?}");
        assert!(e.to_string().contains("/nonexistent/ca.pem") && e.to_string().contains("CA"), "{e}");
        assert!(e.text().zh.contains("/nonexistent/ca.pem"), "{}", e.text().zh);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let d = tempfile::tempdir().unwrap();
        let cases = [
            ("empty", ""),
            ("text", "hello, I am not a certificate\n"),
            ("binary", "\u{0}\u{1}\u{7f}\u{ff}garbage"),
            ("no end", "-----BEGIN CERTIFICATE-----\nMIIB\n"),
            ("bad base64", "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n"),
            ("a key, not a certificate", KEY),
        ];
        for (name, text) in cases {
            let ca = file(d.path(), "ca.pem", text);
            let e = TlsFiles { ca_file: Some(ca.clone()), ..TlsFiles::default() }.load().unwrap_err();
            assert!(matches!(e, SetupError::NotPem { role: FileRole::Ca, .. }), "{name}: {e:?}");
            assert!(e.to_string().contains(&ca.display().to_string()), "{name}: {e}");
        }
        let files = TlsFiles {
            ca_file: Some(file(d.path(), "ca2.pem", CERT)),
            client_cert_file: Some(file(d.path(), "c.pem", CERT)),
            client_key_file: Some(file(d.path(), "k.pem", CERT)),
        };
        let e = files.load().unwrap_err();
        assert!(matches!(e, SetupError::NotPem { role: FileRole::ClientKey, .. }), "{e:?}");
        assert!(e.to_string().contains("no private key"), "{e}");
    }

    #[test]
    fn half_a_client_certificate_is_refused() {
        let d = tempfile::tempdir().unwrap();
        let ca = Some(file(d.path(), "ca.pem", CERT));
        let cert_only = TlsFiles {
            ca_file: ca.clone(),
            client_cert_file: Some(file(d.path(), "c.pem", CERT)),
            ..Default::default()
        };
        let e = cert_only.load().unwrap_err();
        assert!(matches!(e, SetupError::HalfClientAuth { missing: FileRole::ClientKey }), "{e:?}");
        let no_ca = TlsFiles {
            ca_file: None,
            client_cert_file: Some(file(d.path(), "c.pem", CERT)),
            client_key_file: Some(file(d.path(), "k.pem", KEY)),
        };
        assert!(matches!(no_ca.load().unwrap_err(), SetupError::ClientAuthWithoutCa));
    }
}
