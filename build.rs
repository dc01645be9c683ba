//! Compiles the PostgreSQL half of the integration suite in only when
//! `TESSERA_TEST_POSTGRES_URL` names a server, and the SMTP tests only when
//! a test mail server can run (`python3 -m aiosmtpd`, Debian's
//! `python3-aiosmtpd`; `TESSERA_TEST_SMTP=1` or `0` decides instead);
//! otherwise those tests are marked ignored, so `cargo test` says they were
//! skipped instead of failing.

use std::process::{Command, Stdio};

fn main() {
    println!("cargo::rerun-if-env-changed=TESSERA_TEST_POSTGRES_URL");
    println!("cargo::rerun-if-env-changed=TESSERA_TEST_SMTP");
    println!("cargo::rustc-check-cfg=cfg(tessera_postgres_tests)");
    println!("cargo::rustc-check-cfg=cfg(tessera_smtp_tests)");
    if std::env::var_os("TESSERA_TEST_POSTGRES_URL").is_some_and(|url| !url.is_empty()) {
        println!("cargo::rustc-cfg=tessera_postgres_tests");
    }
    // Debian's package serves /usr/bin/python3, which a pyenv or virtualenv
    // `python3` on PATH may hide.
    let python = ["python3", "/usr/bin/python3"].into_iter().find(|python| {
        Command::new(python)
            .args(["-c", "import aiosmtpd"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    });
    let smtp = match std::env::var("TESSERA_TEST_SMTP").as_deref() {
        Ok("1") => true,
        Ok("0") => false,
        _ => python.is_some(),
    };
    if smtp {
        println!("cargo::rustc-cfg=tessera_smtp_tests");
    }
    println!(
        "cargo::rustc-env=TESSERA_TEST_SMTP_PYTHON={}",
        python.unwrap_or("python3")
    );
}
