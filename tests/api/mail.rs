//! A real SMTP server for the tests: Debian's `python3-aiosmtpd`, serving
//! on a free local port and writing every message it accepts to a Maildir,
//! which the tests read back.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Generates, for each named `async fn name(backend: Backend)`, a module
/// `name` with a `sqlite` and a `postgres` test that need the SMTP server.
/// They are ignored (and say why) unless `python3 -m aiosmtpd` runs here;
/// the PostgreSQL one also needs `TESSERA_TEST_POSTGRES_URL`.
#[macro_export]
macro_rules! smtp_tests {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[actix_web::test]
                #[cfg_attr(
                    not(tessera_smtp_tests),
                    ignore = "SMTP suite skipped: install python3-aiosmtpd to run it"
                )]
                async fn sqlite() {
                    super::$name($crate::helpers::Backend::Sqlite).await
                }

                #[actix_web::test]
                #[cfg_attr(
                    not(all(tessera_smtp_tests, tessera_postgres_tests)),
                    ignore = "SMTP or PostgreSQL suite skipped: install python3-aiosmtpd and set TESSERA_TEST_POSTGRES_URL to run it"
                )]
                async fn postgres() {
                    super::$name($crate::helpers::Backend::Postgres).await
                }
            }
        )*
    };
}

/// A running `aiosmtpd` and its Maildir.
pub struct MailSink {
    pub port: u16,
    dir: tempfile::TempDir,
    child: Option<Child>,
}

/// One delivered message, decoded.
#[derive(Debug, Clone)]
pub struct ReceivedMail {
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
}

impl ReceivedMail {
    /// The token of the first tessera link in the text part.
    pub fn token(&self) -> String {
        let start = self.text.find("token=").expect("a link with a token") + "token=".len();
        self.text[start..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
            .collect()
    }

    /// The first `http(s)://` link in the text part.
    pub fn link(&self) -> String {
        let start = self.text.find("http").expect("a link");
        self.text[start..]
            .split_whitespace()
            .next()
            .expect("a link")
            .to_owned()
    }
}

impl MailSink {
    pub fn start() -> Self {
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let mut sink = MailSink {
            port,
            dir: tempfile::tempdir().expect("temp dir"),
            child: None,
        };
        sink.resume();
        sink
    }

    /// `smtp://127.0.0.1:PORT`, for `email.smtp_url`.
    pub fn url(&self) -> String {
        format!("smtp://127.0.0.1:{}", self.port)
    }

    /// Stops the server (the port then refuses connections).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server (again), on the same port and Maildir.
    pub fn resume(&mut self) {
        let child = Command::new(env!("TESSERA_TEST_SMTP_PYTHON"))
            .args(["-m", "aiosmtpd", "-n", "-l"])
            .arg(format!("127.0.0.1:{}", self.port))
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(self.dir.path().join("mail"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 -m aiosmtpd (Debian: python3-aiosmtpd)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "aiosmtpd did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Every message delivered so far.
    pub fn messages(&self) -> Vec<ReceivedMail> {
        let root = self.dir.path().join("mail");
        let mut files: Vec<PathBuf> = ["new", "cur"]
            .iter()
            .flat_map(|sub| std::fs::read_dir(root.join(sub)).into_iter().flatten())
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .collect();
        files.sort_by_key(|path| std::fs::metadata(path).and_then(|m| m.modified()).ok());
        files.iter().map(|path| parse(path)).collect()
    }

    /// Waits (up to 20 s) until `count` messages to `to` have arrived;
    /// returns them, oldest first.
    pub async fn wait_for(&self, to: &str, count: usize) -> Vec<ReceivedMail> {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let mine: Vec<ReceivedMail> = self
                .messages()
                .into_iter()
                .filter(|mail| mail.to.contains(to))
                .collect();
            if mine.len() >= count {
                return mine;
            }
            assert!(
                Instant::now() < deadline,
                "{count} mail(s) to {to} did not arrive; got {mine:?}"
            );
            actix_web::rt::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Asserts that no mail to `to` arrives within `wait`.
    pub async fn assert_none_to(&self, to: &str, wait: Duration) {
        actix_web::rt::time::sleep(wait).await;
        let mine: Vec<_> = self
            .messages()
            .into_iter()
            .filter(|mail| mail.to.contains(to))
            .collect();
        assert!(mine.is_empty(), "unexpected mail to {to}: {mine:?}");
    }
}

impl Drop for MailSink {
    fn drop(&mut self) {
        self.stop();
    }
}

fn parse(path: &Path) -> ReceivedMail {
    let raw = std::fs::read(path).expect("read a delivered mail");
    let mail = mailparse::parse_mail(&raw).expect("a well-formed mail");
    let header = |name: &str| {
        mail.headers
            .iter()
            .find(|h| h.get_key().eq_ignore_ascii_case(name))
            .map(|h| h.get_value())
            .unwrap_or_default()
    };
    let part = |mime: &str| {
        mail.subparts
            .iter()
            .find(|p| p.ctype.mimetype == mime)
            .and_then(|p| p.get_body().ok())
            .unwrap_or_default()
    };
    ReceivedMail {
        to: header("To"),
        subject: header("Subject"),
        text: part("text/plain"),
        html: part("text/html"),
    }
}
