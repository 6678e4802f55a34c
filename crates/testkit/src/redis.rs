//! A Redis server of a test's own: `redis-server` started on a Unix socket in a temporary
//! folder (no TCP port to collide on, no state shared with another test), ended by its pid
//! when the guard is dropped or [`RedisServer::stop`] is called.
//!
//! Without `redis-server` on the PATH the test skips with one line, except under CI
//! (`MEDGATE_CI`), where it fails (`scripts/redis-up` installs it).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::time::{Duration, Instant};

/// A running `redis-server`; ended when dropped.
pub struct RedisServer {
    child: Option<Child>,
    dir: tempfile::TempDir,
}

impl RedisServer {
    /// Starts one and waits until it answers `PING`, or returns `None` (after one line) when
    /// this machine has no `redis-server` outside CI.
    pub fn start() -> Option<RedisServer> {
        let dir = tempfile::tempdir().unwrap();
        let mut server = RedisServer { child: None, dir };
        if !server.spawn() {
            assert!(
                std::env::var_os("MEDGATE_CI").is_none(),
                "redis-server is required under CI (scripts/redis-up installs it)"
            );
            static SAID: Once = Once::new();
            SAID.call_once(|| eprintln!("skipped: the shared-state tests need redis-server"));
            return None;
        }
        Some(server)
    }

    fn socket(&self) -> PathBuf {
        self.dir.path().join("redis.sock")
    }

    /// Starts the process (again, after [`stop`](Self::stop)); false when there is no
    /// `redis-server`.
    fn spawn(&mut self) -> bool {
        let socket = self.socket();
        let child = Command::new("redis-server")
            .args(["--port", "0", "--save", "", "--appendonly", "no"])
            .arg("--unixsocket")
            .arg(&socket)
            .args(["--unixsocketperm", "700", "--dir"])
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let Ok(child) = child else {
            return false;
        };
        self.child = Some(child);
        wait_until_answering(&socket);
        true
    }

    /// The URL a client connects with.
    pub fn url(&self) -> String {
        format!("redis+unix://{}", self.socket().display())
    }

    /// Ends the server with SIGKILL (what a crash looks like to clients) and waits for it.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_file(self.socket());
    }

    /// Starts it again on the same socket, empty.
    pub fn restart(&mut self) {
        self.stop();
        assert!(self.spawn(), "redis-server started before");
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Waits (up to 10 s) until the server at `socket` answers a `PING` with `+PONG`.
fn wait_until_answering(socket: &Path) {
    use std::io::{Read, Write};
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(mut stream) = std::os::unix::net::UnixStream::connect(socket) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(1)));
            let mut reply = [0u8; 7];
            if stream.write_all(b"PING\r\n").is_ok()
                && stream.read_exact(&mut reply).is_ok()
                && &reply == b"+PONG\r\n"
            {
                return;
            }
        }
        assert!(Instant::now() < deadline, "redis-server did not start");
        std::thread::sleep(Duration::from_millis(10));
    }
}
