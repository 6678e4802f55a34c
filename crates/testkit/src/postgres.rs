//! A PostgreSQL server of a test's own, for what the shared one cannot do: TLS with a test CA,
//! and being stopped and started again under load. `initdb` in a temporary folder (as the
//! `postgres` user when the test runs as root, since PostgreSQL refuses to run as root), then
//! `postgres` on a free loopback port, ended by its pid.
//!
//! Without PostgreSQL's server binaries the test skips with one line, except under CI
//! (`MEDGATE_CI`), where it fails (`scripts/postgres-up` installs them).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

/// A running `postgres`; ended when dropped.
pub struct PostgresServer {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
    tls: bool,
}

/// The newest installed server's binaries (`/usr/lib/postgresql/<version>/bin`).
fn server_binaries() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("postgres").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| out.stdout.starts_with(b"0\n"))
}

/// `program` as the `postgres` user when we are root (`setpriv` execs it: the pid is the
/// server's own).
fn as_server_user(program: &Path) -> Command {
    if is_root() {
        let mut command = Command::new("setpriv");
        command
            .args([
                "--reuid=postgres",
                "--regid=postgres",
                "--clear-groups",
                "--",
            ])
            .arg(program);
        command
    } else {
        Command::new(program)
    }
}

fn give_to_server_user(path: &Path) {
    if is_root() {
        let status = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(path)
            .status()
            .unwrap();
        assert!(status.success(), "chown {}", path.display());
    }
}

impl PostgresServer {
    /// Initialises and starts a server. With `tls`, it accepts only TLS connections over TCP,
    /// with a certificate for `localhost` from a fresh test CA ([`ca_path`](Self::ca_path)).
    pub fn start(tls: bool) -> Option<PostgresServer> {
        let Some(bin) = server_binaries() else {
            assert!(
                std::env::var_os("MEDGATE_CI").is_none(),
                "PostgreSQL's server binaries are required under CI (scripts/postgres-up)"
            );
            static SAID: Once = Once::new();
            SAID.call_once(|| eprintln!("skipped: no PostgreSQL server binaries to start"));
            return None;
        };
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        give_to_server_user(dir.path());
        let initialised = as_server_user(&bin.join("initdb"))
            .arg("-D")
            .arg(&data)
            .args(["-A", "trust", "-U", "postgres", "--no-sync"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(initialised.success(), "initdb failed");
        let hba = if tls {
            "local all all trust\nhostssl all all 127.0.0.1/32 trust\nhostssl all all ::1/128 trust\n"
        } else {
            "local all all trust\nhost all all 127.0.0.1/32 trust\nhost all all ::1/128 trust\n"
        };
        std::fs::write(data.join("pg_hba.conf"), hba).unwrap();
        if tls {
            write_certificates(&data);
        }
        give_to_server_user(dir.path());
        let mut server = PostgresServer {
            bin,
            dir,
            port: 0,
            child: None,
            tls,
        };
        server.spawn();
        Some(server)
    }

    fn spawn(&mut self) {
        // A free port now; the server binds it a moment later (retried if someone took it).
        for _ in 0..5 {
            if self.port == 0 {
                let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
                self.port = listener.local_addr().unwrap().port();
            }
            let mut command = as_server_user(&self.bin.join("postgres"));
            command
                .arg("-D")
                .arg(self.dir.path().join("data"))
                .args(["-p", &self.port.to_string()])
                .args(["-c", "listen_addresses=localhost"])
                .arg("-c")
                .arg(format!(
                    "unix_socket_directories={}",
                    self.dir.path().display()
                ))
                .args(["-c", "fsync=off", "-c", "max_connections=200"]);
            if self.tls {
                command.args([
                    "-c",
                    "ssl=on",
                    "-c",
                    "ssl_cert_file=server.crt",
                    "-c",
                    "ssl_key_file=server.key",
                ]);
            }
            let child = command
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap();
            self.child = Some(child);
            if self.wait_until_ready() {
                return;
            }
            self.stop();
            self.port = 0;
        }
        panic!("postgres did not start");
    }

    /// Polls `pg_isready` until the server accepts connections, or the process ended.
    fn wait_until_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(child) = &mut self.child
                && child.try_wait().ok().flatten().is_some()
            {
                return false;
            }
            let ready = Command::new(self.bin.join("pg_isready"))
                .args(["-q", "-h"])
                .arg(self.dir.path())
                .args(["-p", &self.port.to_string()])
                .status()
                .is_ok_and(|status| status.success());
            if ready {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    /// `postgres://postgres@localhost:PORT/postgres`, plus `?sslmode=require` with TLS.
    pub fn url(&self) -> String {
        let tls = if self.tls { "?sslmode=require" } else { "" };
        format!("postgres://postgres@localhost:{}/postgres{tls}", self.port)
    }

    /// The test CA's certificate (PEM) that signed the server's, with TLS.
    pub fn ca_path(&self) -> PathBuf {
        self.dir.path().join("data/ca.crt")
    }

    /// A fast shutdown (SIGINT: sessions are ended, as a restart ends them), waited for.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(30);
            while child.try_wait().ok().flatten().is_none() {
                if Instant::now() > deadline {
                    let _ = child.kill();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port and data.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

impl Drop for PostgresServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A test CA (`ca.crt`) and a certificate for `localhost` it signed (`server.crt`,
/// `server.key`, 0600 as PostgreSQL requires), in `data`.
fn write_certificates(data: &Path) {
    let mut ca_params = CertificateParams::default();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();
    let key = KeyPair::generate().unwrap();
    let leaf = CertificateParams::new(vec!["localhost".to_string()])
        .unwrap()
        .signed_by(&key, &ca)
        .unwrap();
    std::fs::write(data.join("ca.crt"), ca.pem()).unwrap();
    std::fs::write(data.join("server.crt"), leaf.pem()).unwrap();
    let key_path = data.join("server.key");
    std::fs::write(&key_path, key.serialize_pem()).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&key_path, std::fs::Permissions::from_mode(0o600)).unwrap();
}
