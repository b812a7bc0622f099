//! The cluster's certificates and kubeconfigs, generated on first start the way `kubeadm init`
//! lays them out, so a learner gets a working `admin.conf` with no manual PKI steps.
//!
//! Later starts reuse what is in `--cert-dir`, so kubeconfigs handed out keep working across
//! restarts. Files holding private keys are written with mode 0600.

use std::fs;
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use base64::Engine;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use time::{Duration, OffsetDateTime};

/// Where the serving side's files are, whether generated or given by flags.
#[derive(Debug, Clone)]
pub struct ServingFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
    /// CA that client certificates must chain to.
    pub client_ca: PathBuf,
}

/// A client identity to issue: the certificate's CN is the user, each O a group.
struct Client {
    file: &'static str,
    user: &'static str,
    groups: &'static [&'static str],
}

/// The identities kubeadm creates, one kubeconfig each.
const CLIENTS: &[Client] = &[
    Client {
        file: "admin",
        user: "kubernetes-admin",
        groups: &["system:masters"],
    },
    Client {
        file: "scheduler",
        user: "system:kube-scheduler",
        groups: &[],
    },
    Client {
        file: "controller-manager",
        user: "system:kube-controller-manager",
        groups: &[],
    },
];

/// Why the PKI could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum PkiError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: {source}")]
    Certificate { path: PathBuf, source: rcgen::Error },
}

/// What the certificates must name.
pub struct PkiRequest<'a> {
    pub cert_dir: &'a Path,
    /// Address clients reach the apiserver at: goes in the serving certificate and kubeconfigs.
    pub advertise_address: IpAddr,
    pub secure_port: u16,
    /// First address of the service range: the `kubernetes` service's ClusterIP.
    pub first_service_ip: IpAddr,
}

/// Makes sure the CA, serving certificate and client kubeconfigs exist in the cert dir,
/// creating whatever is missing.
pub fn ensure(request: &PkiRequest) -> Result<ServingFiles, PkiError> {
    let dir = request.cert_dir;
    fs::create_dir_all(dir).map_err(|source| PkiError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let ca_cert_path = dir.join("ca.crt");
    let ca_key_path = dir.join("ca.key");
    if !ca_cert_path.exists() || !ca_key_path.exists() {
        let key = generate_key(&ca_key_path)?;
        let mut params = params_for("kubernetes", &[], Duration::days(3650));
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let cert = params
            .self_signed(&key)
            .map_err(|source| cert_error(&ca_cert_path, source))?;
        write_file(&ca_cert_path, cert.pem().as_bytes(), 0o644)?;
        write_file(&ca_key_path, key.serialize_pem().as_bytes(), 0o600)?;
        tracing::info!(path = %ca_cert_path.display(), "generated cluster CA");
    }
    let ca_pem = read(&ca_cert_path)?;
    let ca_key = KeyPair::from_pem(&read(&ca_key_path)?)
        .map_err(|source| cert_error(&ca_key_path, source))?;
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, ca_key)
        .map_err(|source| cert_error(&ca_cert_path, source))?;

    let serving = ServingFiles {
        cert: dir.join("apiserver.crt"),
        key: dir.join("apiserver.key"),
        client_ca: ca_cert_path,
    };
    if !serving.cert.exists() || !serving.key.exists() {
        let mut names: Vec<String> = [
            "localhost",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
        ]
        .into_iter()
        .map(String::from)
        .collect();
        names.push("kubernetes.default.svc.cluster.local".into());
        for ip in [
            "127.0.0.1".parse().unwrap(),
            request.first_service_ip,
            request.advertise_address,
        ] {
            let ip = ip.to_string();
            if !names.contains(&ip) {
                names.push(ip);
            }
        }
        let mut params = params_for("kube-apiserver", &[], Duration::days(365));
        params.subject_alt_names = CertificateParams::new(names)
            .map_err(|source| cert_error(&serving.cert, source))?
            .subject_alt_names;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        issue(&params, &issuer, &serving.cert, &serving.key)?;
    }

    let server = format!(
        "https://{}",
        socket(request.advertise_address, request.secure_port)
    );
    for client in CLIENTS {
        let kubeconfig = dir.join(format!("{}.conf", client.file));
        if kubeconfig.exists() {
            continue;
        }
        let mut params = params_for(client.user, client.groups, Duration::days(365));
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        let key = KeyPair::generate().map_err(|source| cert_error(&kubeconfig, source))?;
        let cert = params
            .signed_by(&key, &issuer)
            .map_err(|source| cert_error(&kubeconfig, source))?;
        let text = Kubeconfig {
            server: &server,
            ca_pem: &ca_pem,
            user: client.user,
            cert_pem: &cert.pem(),
            key_pem: &key.serialize_pem(),
        }
        .yaml();
        write_file(&kubeconfig, text.as_bytes(), 0o600)?;
        tracing::info!(path = %kubeconfig.display(), user = client.user, "wrote kubeconfig");
    }
    Ok(serving)
}

fn socket(ip: IpAddr, port: u16) -> String {
    match ip {
        IpAddr::V4(ip) => format!("{ip}:{port}"),
        IpAddr::V6(ip) => format!("[{ip}]:{port}"),
    }
}

fn params_for(common_name: &str, organizations: &[&str], validity: Duration) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut name = DistinguishedName::new();
    for organization in organizations {
        name.push(DnType::OrganizationName, *organization);
    }
    name.push(DnType::CommonName, common_name);
    params.distinguished_name = name;
    let now = OffsetDateTime::now_utc();
    // Tolerate small clock skew between machines, like kubeadm does.
    params.not_before = now - Duration::minutes(5);
    params.not_after = now + validity;
    params
}

fn issue(
    params: &CertificateParams,
    issuer: &Issuer<'_, KeyPair>,
    cert_path: &Path,
    key_path: &Path,
) -> Result<(), PkiError> {
    let key = generate_key(key_path)?;
    let cert = params
        .signed_by(&key, issuer)
        .map_err(|source| cert_error(cert_path, source))?;
    write_file(key_path, key.serialize_pem().as_bytes(), 0o600)?;
    write_file(cert_path, cert.pem().as_bytes(), 0o644)
}

fn generate_key(path: &Path) -> Result<KeyPair, PkiError> {
    KeyPair::generate().map_err(|source| cert_error(path, source))
}

/// A client's kubeconfig, its PEM blocks named: as five `&str` arguments, the certificate
/// and the key could trade places unnoticed.
struct Kubeconfig<'a> {
    server: &'a str,
    ca_pem: &'a str,
    user: &'a str,
    cert_pem: &'a str,
    key_pem: &'a str,
}

impl Kubeconfig<'_> {
    fn yaml(&self) -> String {
        let Kubeconfig {
            server,
            ca_pem,
            user,
            cert_pem,
            key_pem,
        } = self;
        let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s);
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- cluster:\n    certificate-authority-data: {ca}\n    server: {server}\n  name: kubernetes\n\
             contexts:\n- context:\n    cluster: kubernetes\n    user: {user}\n  name: {user}@kubernetes\n\
             current-context: {user}@kubernetes\npreferences: {{}}\nusers:\n- name: {user}\n  user:\n    \
             client-certificate-data: {cert}\n    client-key-data: {key}\n",
            ca = b64(ca_pem),
            cert = b64(cert_pem),
            key = b64(key_pem),
        )
    }
}

fn read(path: &Path) -> Result<String, PkiError> {
    fs::read_to_string(path).map_err(|source| PkiError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// Writes atomically (temp file + rename) so a crash never leaves half a key behind.
pub(crate) fn write_file(path: &Path, contents: &[u8], mode: u32) -> Result<(), PkiError> {
    let io = |source| PkiError::Io {
        path: path.to_path_buf(),
        source,
    };
    let temp = path.with_extension("tmp");
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(mode)
        .open(&temp)
        .map_err(io)?;
    file.write_all(contents).map_err(io)?;
    file.sync_all().map_err(io)?;
    fs::rename(&temp, path).map_err(io)
}

fn cert_error(path: &Path, source: rcgen::Error) -> PkiError {
    PkiError::Certificate {
        path: path.to_path_buf(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn first_start_generates_and_later_starts_reuse() {
        let dir = tempfile::tempdir().unwrap();
        let request = PkiRequest {
            cert_dir: dir.path(),
            advertise_address: "192.0.2.10".parse().unwrap(),
            secure_port: 6443,
            first_service_ip: "10.96.0.1".parse().unwrap(),
        };
        let files = ensure(&request).unwrap();
        for name in [
            "ca.key",
            "apiserver.key",
            "admin.conf",
            "scheduler.conf",
            "controller-manager.conf",
        ] {
            let mode = fs::metadata(dir.path().join(name))
                .unwrap()
                .permissions()
                .mode()
                & 0o777;
            assert_eq!(mode, 0o600, "{name} holds a key");
        }
        let admin = fs::read_to_string(dir.path().join("admin.conf")).unwrap();
        assert!(admin.contains("server: https://192.0.2.10:6443"));
        assert!(admin.contains("kubernetes-admin@kubernetes"));

        let serving = fs::read(&files.cert).unwrap();
        let (_, pem) = x509_parser::pem::parse_x509_pem(&serving).unwrap();
        let cert = pem.parse_x509().unwrap();
        let sans: Vec<String> = cert
            .subject_alternative_name()
            .unwrap()
            .unwrap()
            .value
            .general_names
            .iter()
            .map(|name| match name {
                x509_parser::extensions::GeneralName::DNSName(dns) => dns.to_string(),
                x509_parser::extensions::GeneralName::IPAddress(&[a, b, c, d]) => {
                    IpAddr::from([a, b, c, d]).to_string()
                }
                other => format!("{other:?}"),
            })
            .collect();
        for name in [
            "kubernetes.default.svc.cluster.local",
            "localhost",
            "10.96.0.1",
            "192.0.2.10",
            "127.0.0.1",
        ] {
            assert!(
                sans.iter().any(|s| s == name),
                "{name} missing from {sans:?}"
            );
        }

        let ca_before = fs::read(dir.path().join("ca.crt")).unwrap();
        ensure(&request).unwrap();
        assert_eq!(
            fs::read(dir.path().join("ca.crt")).unwrap(),
            ca_before,
            "the CA is reused"
        );
        assert_eq!(
            fs::read_to_string(dir.path().join("admin.conf")).unwrap(),
            admin,
            "kubeconfigs are reused"
        );
    }
}
