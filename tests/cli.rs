//! The `tessera` binary as an operator meets it: subcommands, settings from
//! files and environment, and one clear line when a setting is bad.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::process::{Command, Output, Stdio};

const SECRET: &str = "cli-test-secret-0123456789abcdef-0123";

/// `tessera ARGS` in a fresh directory, with only the given TESSERA_ variables.
fn tessera(dir: &std::path::Path, args: &[&str], env: &[(&str, &str)], stdin: &str) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_tessera"));
    command.args(args).current_dir(dir);
    for (key, _) in std::env::vars() {
        if key.starts_with("TESSERA") {
            command.env_remove(key);
        }
    }
    command
        .env("TESSERA__PASSWORD__ARGON2_MEMORY_KIB", "1024")
        .env("TESSERA__PASSWORD__ARGON2_ITERATIONS", "1")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().expect("spawn tessera");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    child.wait_with_output().expect("tessera output")
}

/// A port nothing listens on now.
fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn migrate_creates_the_sqlite_database_in_the_data_folder() {
    let dir = tempfile::tempdir().unwrap();
    let output = tessera(dir.path(), &["migrate"], &[], "");
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(dir.path().join("data/tessera.db").is_file());
    let again = tessera(dir.path(), &["migrate"], &[], "");
    assert!(again.status.success());
    assert!(stderr(&again).contains("up to date"));
}

#[test]
fn user_create_reads_the_password_from_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "user",
        "create",
        "--username",
        "root",
        "--email",
        "root@example.com",
        "--admin",
    ];
    let output = tessera(
        dir.path(),
        &args,
        &[("TESSERA__JWT__SECRET", SECRET)],
        "correct horse battery\n",
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stderr(&output).contains("admin"));
    assert!(!stderr(&output).contains("correct horse"));
    let duplicate = tessera(dir.path(), &args, &[], "correct horse battery\n");
    assert!(!duplicate.status.success());
    assert!(
        stderr(&duplicate).contains("conflict"),
        "{}",
        stderr(&duplicate)
    );
}

#[test]
fn user_create_refuses_a_short_password() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "user",
        "create",
        "--username",
        "bob",
        "--email",
        "bob@example.com",
    ];
    let output = tessera(dir.path(), &args, &[], "short\n");
    assert!(!output.status.success());
    assert!(stderr(&output).contains("password"));
}

/// A bad setting stops startup with one line that names the key.
fn assert_refused(env: &[(&str, &str)], key: &str) {
    let dir = tempfile::tempdir().unwrap();
    let output = tessera(dir.path(), &["serve"], env, "");
    assert!(!output.status.success(), "started with {env:?}");
    let text = stderr(&output);
    let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("tessera:")).collect();
    assert_eq!(lines.len(), 1, "{text}");
    assert!(lines[0].contains(key), "{text}");
}

#[test]
fn an_unknown_algorithm_stops_startup_naming_the_setting() {
    assert_refused(&[("TESSERA__JWT__ALGORITHM", "none")], "jwt.algorithm");
}

#[test]
fn a_short_secret_stops_startup_naming_the_setting() {
    assert_refused(&[("TESSERA__JWT__SECRET", "too-short")], "jwt.secret");
}

#[test]
fn an_unreadable_secret_file_stops_startup_naming_the_setting() {
    assert_refused(
        &[("TESSERA__JWT__SECRET_FILE", "/nonexistent/key")],
        "jwt.secret_file",
    );
}

#[test]
fn production_without_an_explicit_key_refuses_to_start() {
    assert_refused(&[("TESSERA__SERVER__ENV", "production")], "jwt.secret");
}

#[test]
fn a_bad_bind_address_stops_startup_naming_the_setting() {
    assert_refused(
        &[("TESSERA__SERVER__BIND", "not-an-address")],
        "server.bind",
    );
}

#[test]
fn an_unreachable_database_stops_startup_naming_the_setting() {
    assert_refused(
        &[
            ("TESSERA__JWT__SECRET", SECRET),
            (
                "TESSERA__DATABASE__URL",
                "postgres://nobody@127.0.0.1:1/none",
            ),
        ],
        "database.url",
    );
}

#[test]
fn an_unknown_database_scheme_stops_startup_naming_the_setting() {
    assert_refused(&[("TESSERA__DATABASE__URL", "mysql://x")], "database.url");
}

#[test]
fn a_misspelt_environment_key_stops_startup_naming_it() {
    assert_refused(&[("TESSERA__SERVER__BINDD", "0.0.0.0:1")], "bindd");
}

#[test]
fn a_config_file_named_by_tessera_config_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("extra.toml");
    std::fs::write(&file, "[jwt]\nalgorithm = \"XS999\"\n").unwrap();
    let output = tessera(
        dir.path(),
        &["migrate"],
        &[("TESSERA_CONFIG", file.to_str().unwrap())],
        "",
    );
    assert!(!output.status.success());
    assert!(stderr(&output).contains("jwt.algorithm"));
}

#[test]
fn the_generated_key_is_kept_private_in_the_data_folder() {
    let dir = tempfile::tempdir().unwrap();
    let args = [
        "user",
        "create",
        "--username",
        "k",
        "--email",
        "k@example.com",
    ];
    // `user create` does not need the key; `serve` makes it. Start and stop serve.
    let _ = tessera(dir.path(), &args, &[], "correct horse battery\n");
    let mut child = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .current_dir(dir.path())
        .env("TESSERA__SERVER__BIND", "127.0.0.1:0")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let key = dir.path().join("data/jwt.key");
    for _ in 0..100 {
        if key.is_file() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let metadata = std::fs::metadata(&key).expect("jwt.key generated");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(metadata.permissions().mode() & 0o777, 0o600);
    }
    assert!(std::fs::read_to_string(&key).unwrap().len() >= 32);
}

#[test]
fn keys_generate_writes_a_private_pem_only_its_owner_can_read() {
    let dir = tempfile::tempdir().unwrap();
    for algorithm in ["ES256", "EdDSA"] {
        let out = dir.path().join(algorithm);
        let output = tessera(
            dir.path(),
            &[
                "keys",
                "generate",
                "--algorithm",
                algorithm,
                "--out",
                out.to_str().unwrap(),
            ],
            &[],
            "",
        );
        assert!(output.status.success(), "{}", stderr(&output));
        assert!(stderr(&output).contains("kid"));
        let private = std::fs::read_to_string(out.join("private.pem")).unwrap();
        assert!(private.starts_with("-----BEGIN PRIVATE KEY-----"));
        assert!(
            std::fs::read_to_string(out.join("public.pem"))
                .unwrap()
                .starts_with("-----BEGIN PUBLIC KEY-----")
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(out.join("private.pem"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}

#[test]
fn keys_generate_refuses_to_overwrite_a_key() {
    let dir = tempfile::tempdir().unwrap();
    let args = ["keys", "generate", "--algorithm", "ES256", "--out", "k"];
    assert!(tessera(dir.path(), &args, &[], "").status.success());
    let again = tessera(dir.path(), &args, &[], "");
    assert!(!again.status.success());
    assert!(stderr(&again).contains("refusing to overwrite"));
}

#[test]
fn keys_generate_refuses_an_unknown_algorithm() {
    let dir = tempfile::tempdir().unwrap();
    let output = tessera(
        dir.path(),
        &["keys", "generate", "--algorithm", "HS999", "--out", "k"],
        &[],
        "",
    );
    assert!(!output.status.success());
    assert!(stderr(&output).contains("--algorithm"));
}

#[test]
fn an_asymmetric_algorithm_without_a_private_key_names_the_setting() {
    assert_refused(
        &[("TESSERA__JWT__ALGORITHM", "ES256")],
        "jwt.private_key_file",
    );
}

#[test]
fn a_key_of_the_wrong_type_names_the_setting() {
    let dir = tempfile::tempdir().unwrap();
    let keys = dir.path().join("ed");
    let output = tessera(
        dir.path(),
        &[
            "keys",
            "generate",
            "--algorithm",
            "EdDSA",
            "--out",
            keys.to_str().unwrap(),
        ],
        &[],
        "",
    );
    assert!(output.status.success());
    let private = keys.join("private.pem");
    assert_refused(
        &[
            ("TESSERA__JWT__ALGORITHM", "ES256"),
            ("TESSERA__JWT__PRIVATE_KEY_FILE", private.to_str().unwrap()),
        ],
        "jwt.private_key_file",
    );
}

/// Starts `tessera serve` on a free port and reports whether it is still
/// running two seconds later (a bad setting exits at once).
fn serve_starts(dir: &std::path::Path, env: &[(&str, &str)]) -> bool {
    let mut child = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .current_dir(dir)
        .env("TESSERA__SERVER__BIND", "127.0.0.1:0")
        .envs(env.iter().copied())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(std::time::Duration::from_secs(2));
    let running = child.try_wait().unwrap().is_none();
    let _ = child.kill();
    let _ = child.wait();
    running
}

#[test]
fn list_settings_are_comma_separated_in_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    for out in [&a, &b] {
        let args = [
            "keys",
            "generate",
            "--algorithm",
            "ES256",
            "--out",
            out.to_str().unwrap(),
        ];
        assert!(tessera(dir.path(), &args, &[], "").status.success());
    }
    let private = a.join("private.pem").display().to_string();
    let public = format!(
        "{}, {}",
        a.join("public.pem").display(),
        b.join("public.pem").display()
    );
    let env = [
        ("TESSERA__JWT__ALGORITHM", "ES256"),
        ("TESSERA__JWT__PRIVATE_KEY_FILE", private.as_str()),
        ("TESSERA__JWT__PUBLIC_KEY_FILES", public.as_str()),
    ];
    assert!(
        serve_starts(dir.path(), &env),
        "two comma-separated key files are read"
    );
}

#[test]
fn healthcheck_succeeds_against_a_running_server_and_fails_without_one() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let bind = format!("0.0.0.0:{port}");
    let env = [("TESSERA__SERVER__BIND", bind.as_str())];
    let down = tessera(dir.path(), &["healthcheck"], &env, "");
    assert!(!down.status.success(), "no server yet");
    let mut server = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .current_dir(dir.path())
        .env("TESSERA__SERVER__BIND", &bind)
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut healthy = false;
    for _ in 0..50 {
        if tessera(dir.path(), &["healthcheck"], &env, "")
            .status
            .success()
        {
            healthy = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let _ = server.kill();
    let _ = server.wait();
    assert!(
        healthy,
        "healthcheck reaches a server bound to 0.0.0.0 through loopback"
    );
}

#[test]
fn an_invalid_cors_origin_names_the_setting() {
    assert_refused(
        &[("TESSERA__CORS__ALLOWED_ORIGINS", "app.example.com/path")],
        "cors.allowed_origins",
    );
}

#[test]
fn a_bad_trusted_proxy_names_the_setting() {
    assert_refused(
        &[("TESSERA__SERVER__TRUSTED_PROXIES", "10.0.0.0/8,nonsense")],
        "server.trusted_proxies",
    );
}

fn django_fixture() -> String {
    format!(
        "sqlite://{}/tests/fixtures/django/django.sqlite3",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn import_django_prints_a_summary_and_a_rerun_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let from = django_fixture();
    let args = ["import", "django", "--from", from.as_str()];
    let first = tessera(dir.path(), &args, &[], "");
    assert!(first.status.success(), "{}", stderr(&first));
    let report = stdout(&first);
    assert!(
        report.contains("users: 11 imported, 0 already imported, 1 skipped"),
        "{report}"
    );
    assert!(
        report.contains("skipped user Email_Twin (django id 12): email"),
        "{report}"
    );
    assert!(report.contains("tokens: 3 imported"), "{report}");
    let second = tessera(dir.path(), &args, &[], "");
    assert!(second.status.success(), "{}", stderr(&second));
    let report = stdout(&second);
    assert!(
        report.contains("users: 0 imported, 11 already imported, 1 skipped"),
        "{report}"
    );
    assert!(
        report.contains("tokens: 0 imported, 3 already imported"),
        "{report}"
    );
}

#[test]
fn import_django_dry_run_reports_and_writes_no_account() {
    let dir = tempfile::tempdir().unwrap();
    let from = django_fixture();
    let dry = ["import", "django", "--from", from.as_str(), "--dry-run"];
    let output = tessera(dir.path(), &dry, &[], "");
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stdout(&output).contains("users: 11 imported"));
    assert!(stdout(&output).contains("dry run: no account or key was written"));
    // A real run afterwards still imports everything.
    let real = ["import", "django", "--from", from.as_str()];
    let output = tessera(dir.path(), &real, &[], "");
    assert!(
        stdout(&output).contains("users: 11 imported"),
        "{}",
        stdout(&output)
    );
}

#[test]
fn import_django_from_a_missing_file_fails_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.sqlite3");
    let from = format!("sqlite://{}", missing.display());
    let output = tessera(dir.path(), &["import", "django", "--from", &from], &[], "");
    assert_eq!(output.status.code(), Some(2));
    assert!(stderr(&output).contains("--from"), "{}", stderr(&output));
    assert!(!missing.exists());
}

#[test]
fn import_django_refuses_a_user_table_that_is_not_a_name() {
    let dir = tempfile::tempdir().unwrap();
    let from = django_fixture();
    let args = [
        "import",
        "django",
        "--from",
        from.as_str(),
        "--user-table",
        "auth_user; DROP TABLE auth_user",
    ];
    let output = tessera(dir.path(), &args, &[], "");
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("--user-table"),
        "{}",
        stderr(&output)
    );
}

#[test]
fn import_django_names_a_missing_user_table() {
    let dir = tempfile::tempdir().unwrap();
    let from = django_fixture();
    let args = [
        "import",
        "django",
        "--from",
        from.as_str(),
        "--user-table",
        "accounts_user",
    ];
    let output = tessera(dir.path(), &args, &[], "");
    assert_eq!(output.status.code(), Some(2));
    assert!(
        stderr(&output).contains("accounts_user"),
        "{}",
        stderr(&output)
    );
}

/// `user create` for `name` in `dir`, expecting success.
fn create_user(dir: &std::path::Path, name: &str) {
    let email = format!("{name}@example.com");
    let args = ["user", "create", "--username", name, "--email", &email];
    let output = tessera(dir, &args, &[], "correct horse battery\n");
    assert!(output.status.success(), "{}", stderr(&output));
}

#[test]
fn user_disable_and_enable_switch_the_account() {
    let dir = tempfile::tempdir().unwrap();
    create_user(dir.path(), "alice");
    let disabled = tessera(
        dir.path(),
        &["user", "disable", "--username", "Alice"],
        &[],
        "",
    );
    assert!(disabled.status.success(), "{}", stderr(&disabled));
    assert!(
        stderr(&disabled).contains("now a disabled user"),
        "{}",
        stderr(&disabled)
    );
    let enabled = tessera(
        dir.path(),
        &["user", "enable", "--username", "alice"],
        &[],
        "",
    );
    assert!(enabled.status.success(), "{}", stderr(&enabled));
    assert!(
        stderr(&enabled).contains("now an active user"),
        "{}",
        stderr(&enabled)
    );
}

#[test]
fn user_set_role_makes_an_admin() {
    let dir = tempfile::tempdir().unwrap();
    create_user(dir.path(), "alice");
    let output = tessera(
        dir.path(),
        &["user", "set-role", "--username", "alice", "--role", "admin"],
        &[],
        "",
    );
    assert!(output.status.success(), "{}", stderr(&output));
    assert!(stderr(&output).contains("admin"), "{}", stderr(&output));
}

#[test]
fn user_set_role_refuses_an_unknown_role() {
    let dir = tempfile::tempdir().unwrap();
    create_user(dir.path(), "alice");
    let output = tessera(
        dir.path(),
        &["user", "set-role", "--username", "alice", "--role", "root"],
        &[],
        "",
    );
    assert!(!output.status.success());
    assert!(stderr(&output).contains("--role"), "{}", stderr(&output));
}

#[test]
fn user_disable_names_an_unknown_user() {
    let dir = tempfile::tempdir().unwrap();
    let output = tessera(
        dir.path(),
        &["user", "disable", "--username", "nobody"],
        &[],
        "",
    );
    assert!(!output.status.success());
    assert!(
        stderr(&output).contains("--username"),
        "{}",
        stderr(&output)
    );
}

/// A `tessera serve` logging at `info` in `format`, on a free port, with
/// its stderr read line by line.
struct Served {
    child: std::process::Child,
    lines: std::sync::mpsc::Receiver<String>,
    reading: std::thread::JoinHandle<()>,
    port: u16,
    /// The lines read until it listened.
    logged: Vec<String>,
}

fn serve_logging(dir: &std::path::Path, format: &str) -> Served {
    use std::io::{BufRead, BufReader};
    let mut child = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .current_dir(dir)
        .env("TESSERA__SERVER__BIND", "127.0.0.1:0")
        .env("TESSERA__LOG__FORMAT", format)
        .env("TESSERA__LOG__LEVEL", "info")
        .env_remove("RUST_LOG")
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (lines_tx, lines) = std::sync::mpsc::channel::<String>();
    let reader = BufReader::new(child.stderr.take().unwrap());
    let reading = std::thread::spawn(move || {
        for line in reader.lines() {
            let _ = lines_tx.send(line.unwrap());
        }
    });
    let mut logged = Vec::new();
    let port = loop {
        let line = lines
            .recv_timeout(std::time::Duration::from_secs(30))
            .expect("tessera logs that it listens");
        let port = line
            .contains("tessera listening")
            .then(|| {
                let digits = line.split("port").nth(1)?;
                let digits: String = digits
                    .chars()
                    .skip_while(|c| !c.is_ascii_digit())
                    .take_while(char::is_ascii_digit)
                    .collect();
                digits.parse::<u16>().ok()
            })
            .flatten();
        logged.push(line);
        if let Some(port) = port {
            break port;
        }
    };
    Served {
        child,
        lines,
        reading,
        port,
        logged,
    }
}

impl Served {
    /// `GET path` with `X-Request-Id: id`, on a connection of its own.
    fn get(&self, path: &str, id: &str) {
        self.send("GET", path, id, "");
    }

    /// `method path` with `X-Request-Id: id` and a JSON `body`, on a
    /// connection of its own; returns the answer.
    fn send(&self, method: &str, path: &str, id: &str, body: &str) -> String {
        use std::io::Read;
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: t\r\nX-Request-Id: {id}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\
             Connection: close\r\n\r\n{body}",
            body.len()
        );
        let mut stream = std::net::TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        stream.write_all(request.as_bytes()).unwrap();
        let mut answer = String::new();
        stream.read_to_string(&mut answer).unwrap();
        assert!(answer.starts_with("HTTP/1.1 "), "{answer}");
        answer
    }

    /// Stops it with SIGTERM (a clean stop) and returns everything it logged.
    fn stop(mut self) -> Vec<String> {
        let stopped = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(stopped.success());
        assert!(self.child.wait().unwrap().success(), "a clean stop");
        self.reading.join().unwrap();
        self.logged.extend(self.lines.try_iter());
        self.logged
    }
}

/// Runs `tessera serve` with `log.format = FORMAT`, sends `GET /healthz`
/// (with a request id) and `GET /users/x` (no token: 401), stops it with
/// SIGTERM, and returns everything it logged: the lines not yet written
/// out at the stop must come out too.
fn access_log_of_a_served_run(format: &str) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let served = serve_logging(dir.path(), format);
    served.get("/healthz", "access-log-test-1");
    served.get("/users/x", "access-log-test-2");
    served.stop()
}

#[test]
fn access_lines_come_out_while_the_server_runs() {
    let dir = tempfile::tempdir().unwrap();
    let mut served = serve_logging(dir.path(), "text");
    served.get("/healthz", "access-log-live-1");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        let line = served
            .lines
            .recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
            .expect("the access line is written out within seconds, without a stop");
        let written = line.contains("access-log-live-1");
        served.logged.push(line);
        if written {
            break;
        }
    }
    served.stop();
}

#[test]
fn the_json_access_log_carries_request_id_method_route_status_and_latency() {
    let logged = access_log_of_a_served_run("json");
    let requests: Vec<serde_json::Value> = logged
        .iter()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|line| line["message"] == "request")
        .collect();
    assert_eq!(requests.len(), 2, "{logged:#?}");
    for (line, (id, route, status)) in requests.iter().zip([
        ("access-log-test-1", "/healthz", 200),
        ("access-log-test-2", "/users/{id}", 401),
    ]) {
        assert_eq!(line["level"], "INFO", "{line}");
        assert!(line["timestamp"].is_string(), "{line}");
        assert_eq!(line["target"], "tessera::telemetry", "{line}");
        assert_eq!(line["method"], "GET", "{line}");
        assert_eq!(line["route"], route, "{line}");
        assert_eq!(line["status"], status, "{line}");
        assert!(line["latency_ms"].as_f64().unwrap() >= 0.0, "{line}");
        assert_eq!(line["span"]["name"], "request", "{line}");
        assert_eq!(line["span"]["request_id"], id, "{line}");
    }
}

#[test]
fn the_text_access_log_carries_request_id_method_route_status_and_latency() {
    let logged = access_log_of_a_served_run("text");
    let requests: Vec<&String> = logged
        .iter()
        .filter(|line| line.contains("tessera::telemetry") && line.contains(": request "))
        .collect();
    assert_eq!(requests.len(), 2, "{logged:#?}");
    for (line, expected) in requests.iter().zip([
        [
            " INFO request{request_id=\"access-log-test-1\"}",
            "method=GET route=\"/healthz\" status=200 latency_ms=",
        ],
        [
            " INFO request{request_id=\"access-log-test-2\"}",
            "method=GET route=\"/users/{id}\" status=401 latency_ms=",
        ],
    ]) {
        for part in expected {
            assert!(line.contains(part), "{line} lacks {part}");
        }
    }
}

/// Serves the Django fixture's users with `log.format = FORMAT`, logs in
/// as one whose PBKDF2 hash is upgraded at login (the upgrade is logged on
/// a database thread) with `X-Request-Id: upgrade-log-test`, and returns
/// the line that reports the upgrade.
fn upgrade_line_of_a_served_login(format: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let from = django_fixture();
    let imported = tessera(dir.path(), &["import", "django", "--from", &from], &[], "");
    assert!(imported.status.success(), "{}", stderr(&imported));
    let served = serve_logging(dir.path(), format);
    let answer = served.send(
        "POST",
        "/auth/login",
        "upgrade-log-test",
        r#"{"username":"pbkdf2_user","password":"pbkdf2 secret 1"}"#,
    );
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let logged = served.stop();
    logged
        .iter()
        .find(|line| line.contains("password hash upgraded"))
        .unwrap_or_else(|| panic!("no upgrade line in {logged:#?}"))
        .clone()
}

#[test]
fn a_text_line_logged_for_a_request_names_the_request_id() {
    let line = upgrade_line_of_a_served_login("text");
    assert!(
        line.contains(
            " INFO request{request_id=\"upgrade-log-test\"}: tessera::auth::sessions: \
             password hash upgraded to the configured cost user_id="
        ),
        "{line}"
    );
}

#[test]
fn a_json_line_logged_for_a_request_names_the_request_id() {
    let line: serde_json::Value =
        serde_json::from_str(&upgrade_line_of_a_served_login("json")).unwrap();
    assert_eq!(line["level"], "INFO", "{line}");
    assert!(line["timestamp"].is_string(), "{line}");
    assert_eq!(
        line["message"], "password hash upgraded to the configured cost",
        "{line}"
    );
    assert!(line["user_id"].is_string(), "{line}");
    assert_eq!(line["target"], "tessera::auth::sessions", "{line}");
    let span = serde_json::json!({"request_id": "upgrade-log-test", "name": "request"});
    assert_eq!(line["span"], span, "{line}");
    assert_eq!(line["spans"], serde_json::json!([span]), "{line}");
}

/// One HTTP/1.1 request on a new connection, sent whole; the response is
/// read later with [`read_response`].
fn send_request(port: u16, method: &str, path: &str, body: &str) -> std::net::TcpStream {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    stream
}

/// The status line of the response, or what went wrong reading it.
fn read_response(mut stream: std::net::TcpStream) -> String {
    use std::io::Read;
    stream
        .set_read_timeout(Some(std::time::Duration::from_secs(30)))
        .unwrap();
    let mut response = String::new();
    match stream.read_to_string(&mut response) {
        Ok(_) if !response.is_empty() => response.lines().next().unwrap_or_default().to_owned(),
        Ok(_) => "closed without an answer".to_owned(),
        Err(error) => format!("read failed: {error}"),
    }
}

#[test]
fn sigterm_answers_every_login_in_flight_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut server = Command::new(env!("CARGO_BIN_EXE_tessera"))
        .current_dir(dir.path())
        .env("TESSERA__SERVER__BIND", format!("127.0.0.1:{port}"))
        .env("TESSERA__SERVER__WORKERS", "2")
        .env("TESSERA__PASSWORD__ARGON2_MEMORY_KIB", "8192")
        .env("TESSERA__PASSWORD__ARGON2_ITERATIONS", "2")
        .env("TESSERA__AUTH__ADDRESS_MAX_FAILURES", "1000")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut up = false;
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            up = true;
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(up, "the server did not start");
    let account =
        r#"{"username":"alice","email":"alice@example.com","password":"correct horse battery"}"#;
    let created = read_response(send_request(port, "POST", "/users", account));
    assert!(created.contains(" 201 "), "{created}");
    let login = r#"{"username":"alice","password":"correct horse battery"}"#;
    let in_flight: Vec<_> = (0..32)
        .map(|_| send_request(port, "POST", "/auth/login", login))
        .collect();
    // Every request was sent whole; let the server take them in, then stop it
    // while most still wait for their hash.
    std::thread::sleep(std::time::Duration::from_millis(100));
    let killed = Command::new("kill")
        .args(["-TERM", &server.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let answers: Vec<String> = in_flight.into_iter().map(read_response).collect();
    let status = server.wait().unwrap();
    let unanswered: Vec<&String> = answers.iter().filter(|a| !a.contains(" 200 ")).collect();
    assert!(
        unanswered.is_empty(),
        "{} of {} logins in flight at SIGTERM were not answered 200: {unanswered:?}",
        unanswered.len(),
        answers.len()
    );
    assert!(status.success(), "exit status {status}");
}

/// The value of `key=...` in the output of `client create`.
fn output_value(output: &Output, key: &str) -> String {
    stdout(output)
        .lines()
        .find_map(|line| line.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("no {key} in {}", stdout(output)))
        .to_owned()
}

#[test]
fn client_create_prints_the_secret_once_and_stores_only_its_hash() {
    let dir = tempfile::tempdir().unwrap();
    let output = tessera(
        dir.path(),
        &[
            "client",
            "create",
            "--name",
            "billing",
            "--scope",
            "users:read",
            "--scope",
            "audit",
        ],
        &[],
        "",
    );
    assert!(output.status.success(), "{}", stderr(&output));
    let client_id = output_value(&output, "client_id");
    let secret = output_value(&output, "client_secret");
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(&secret)
        .unwrap();
    assert!(bytes.len() >= 32, "at least 256 bits");
    assert!(!stderr(&output).contains(&secret));
    // The file and its write-ahead log, whichever holds the row now.
    let mut database = std::fs::read(dir.path().join("data/tessera.db")).unwrap();
    database.extend(std::fs::read(dir.path().join("data/tessera.db-wal")).unwrap_or_default());
    let contains = |needle: &[u8]| database.windows(needle.len()).any(|w| w == needle);
    assert!(
        !contains(secret.as_bytes()),
        "the secret is stored in clear"
    );
    assert!(contains(tessera::auth::refresh::hash(&secret).as_bytes()));
    let list = tessera(dir.path(), &["client", "list"], &[], "");
    assert!(list.status.success(), "{}", stderr(&list));
    let listed = stdout(&list);
    assert!(listed.contains(&client_id), "{listed}");
    assert!(listed.contains("billing"));
    assert!(listed.contains("users:read audit"));
    assert!(!listed.contains(&secret));
}

#[test]
fn client_create_refuses_a_bad_scope() {
    let dir = tempfile::tempdir().unwrap();
    let output = tessera(
        dir.path(),
        &["client", "create", "--name", "x", "--scope", "a\"b"],
        &[],
        "",
    );
    assert!(!output.status.success());
    assert!(stderr(&output).contains("--scope"), "{}", stderr(&output));
}

#[test]
fn client_delete_removes_the_client_and_refuses_an_unknown_one() {
    let dir = tempfile::tempdir().unwrap();
    let output = tessera(dir.path(), &["client", "create", "--name", "x"], &[], "");
    assert!(output.status.success(), "{}", stderr(&output));
    let client_id = output_value(&output, "client_id");
    let deleted = tessera(
        dir.path(),
        &["client", "delete", "--client-id", &client_id],
        &[],
        "",
    );
    assert!(deleted.status.success(), "{}", stderr(&deleted));
    let list = tessera(dir.path(), &["client", "list"], &[], "");
    assert!(!stdout(&list).contains(&client_id));
    let again = tessera(
        dir.path(),
        &["client", "delete", "--client-id", &client_id],
        &[],
        "",
    );
    assert!(!again.status.success());
    assert!(stderr(&again).contains("--client-id"), "{}", stderr(&again));
}
