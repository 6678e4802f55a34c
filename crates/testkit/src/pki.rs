//! A throw-away PKI for TLS tests: a root CA, an intermediate it signed, and server
//! certificates the intermediate issues, as DER and PEM.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};

/// A root and one intermediate.
pub struct TestCa {
    root: CertifiedIssuer<'static, KeyPair>,
    intermediate: CertifiedIssuer<'static, KeyPair>,
}

/// A server certificate with its key and the chain it is served with.
pub struct Leaf {
    /// The leaf, then the intermediate (what a server presents).
    pub chain_pem: String,
    /// The leaf's private key, PKCS#8 PEM.
    pub key_pem: String,
    pub leaf_der: Vec<u8>,
    pub intermediate_der: Vec<u8>,
    /// The DER SubjectPublicKeyInfo of the leaf's key.
    pub spki_der: Vec<u8>,
}

/// Where `Leaf::write` put a leaf's files.
pub struct LeafFiles {
    pub cert: PathBuf,
    pub key: PathBuf,
}

fn ca_params(name: &str) -> CertificateParams {
    let mut params = CertificateParams::default();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    params
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        let root = CertifiedIssuer::self_signed(
            ca_params(&format!("{name} root")),
            KeyPair::generate().unwrap(),
        )
        .unwrap();
        let intermediate = CertifiedIssuer::signed_by(
            ca_params(&format!("{name} intermediate")),
            KeyPair::generate().unwrap(),
            &root,
        )
        .unwrap();
        TestCa { root, intermediate }
    }

    pub fn root_pem(&self) -> String {
        self.root.pem()
    }

    pub fn root_der(&self) -> Vec<u8> {
        self.root.der().to_vec()
    }

    /// Writes the root certificate to `path` (what a client adds to its trust store).
    pub fn write_root(&self, path: &Path) {
        std::fs::write(path, self.root_pem()).unwrap();
    }

    /// A server certificate for `names` (DNS names or IP addresses).
    pub fn issue(&self, names: &[&str]) -> Leaf {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .unwrap();
        params.distinguished_name.push(DnType::CommonName, names[0]);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        let key = KeyPair::generate().unwrap();
        let leaf = params.signed_by(&key, &self.intermediate).unwrap();
        Leaf {
            chain_pem: format!("{}{}", leaf.pem(), self.intermediate.pem()),
            key_pem: key.serialize_pem(),
            leaf_der: leaf.der().to_vec(),
            intermediate_der: self.intermediate.der().to_vec(),
            spki_der: rcgen::PublicKeyData::subject_public_key_info(&key),
        }
    }
}

impl Leaf {
    /// Writes `NAME.crt` (the chain) and `NAME.key` (0600) into `dir`.
    pub fn write(&self, dir: &Path, name: &str) -> LeafFiles {
        let files = LeafFiles {
            cert: dir.join(format!("{name}.crt")),
            key: dir.join(format!("{name}.key")),
        };
        std::fs::write(&files.cert, &self.chain_pem).unwrap();
        std::fs::write(&files.key, &self.key_pem).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&files.key, std::fs::Permissions::from_mode(0o600)).unwrap();
        files
    }
}

/// The DER SubjectPublicKeyInfo inside a DER certificate (for pins of CA certificates).
pub fn spki_of(cert_der: &[u8]) -> Vec<u8> {
    use der::{Decode, Encode};
    x509_cert::Certificate::from_der(cert_der)
        .unwrap()
        .tbs_certificate()
        .subject_public_key_info()
        .to_der()
        .unwrap()
}
