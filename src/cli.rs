//! Subcommands: `serve` (the default), `migrate`, `user create|disable|enable|set-role`,
//! `client create|list|delete`, `keys generate`, `import django`, `healthcheck`.

use std::io::BufRead;

use clap::{Parser, Subcommand};
use secrecy::{ExposeSecret, SecretString};

use crate::accounts::{AccountError, Accounts, NewAccount, ProfileChanges};
use crate::auth::clients::ServiceClients;
use crate::auth::keys;
use crate::auth::password::PasswordHasher;
use crate::auth::sessions::LoginThrottle;
use crate::auth::throttle::AddressThrottle;
use crate::auth::tokens::write_private_file;
use crate::db::{self, Database};
use crate::domain::{Email, Password, Role, Username};
use crate::import::django::{self, ImportOptions};
use crate::recovery::Outbox;
use crate::settings::{Algorithm, Settings};
use crate::startup::Application;
use crate::telemetry;

#[derive(Debug, Parser)]
#[command(
    name = "tessera",
    version,
    about = "A stateless JWT-issuing authentication service"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Apply migrations, then serve HTTP (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Manage users.
    User {
        #[command(subcommand)]
        command: UserCommand,
    },
    /// Manage service clients (OAuth 2.0 client credentials).
    Client {
        #[command(subcommand)]
        command: ClientCommand,
    },
    /// Exit 0 if the local server answers `GET /healthz` with 200 within
    /// three seconds, 1 otherwise (for container HEALTHCHECKs: no curl needed).
    Healthcheck,
    /// Manage signing keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Import accounts from another system.
    Import {
        #[command(subcommand)]
        source: ImportSource,
    },
}

#[derive(Debug, Subcommand)]
pub enum ImportSource {
    /// Copy a Django project's users (with their password hashes) and DRF
    /// authtoken keys (stored only as hashes) into tessera's database, after
    /// applying tessera's migrations. Safe to re-run: what was imported
    /// before is left as it is; conflicts are reported, never overwritten.
    Django {
        /// The Django database: sqlite://PATH or postgres://...
        #[arg(long, value_name = "URL")]
        from: String,
        /// The user model's table, for a custom user model (e.g. accounts_user).
        #[arg(long, value_name = "NAME", default_value = "auth_user")]
        user_table: String,
        /// Report what would be imported, and write nothing.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// Write a new key pair: DIR/private.pem (mode 0600) and DIR/public.pem.
    Generate {
        /// ES256, RS256 or EdDSA.
        #[arg(long)]
        algorithm: String,
        /// The folder to write into (created if missing).
        #[arg(long)]
        out: std::path::PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Create a service client; prints `client_id=...` and
    /// `client_secret=...` (shown once: only its hash is stored).
    Create {
        /// A name for people (e.g. the service's).
        #[arg(long)]
        name: String,
        /// A scope the client may ask for (repeatable; RFC 6749 scope tokens).
        #[arg(long = "scope", value_name = "SCOPE")]
        scopes: Vec<String>,
    },
    /// List the service clients (id, name, scopes, creation time); never a secret.
    List,
    /// Delete a service client: its secret stops working, and its tokens
    /// fail on the logout-sensitive routes and in introspection.
    Delete {
        #[arg(long)]
        client_id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user; the password is read from standard input (one line).
    Create {
        #[arg(long)]
        username: String,
        #[arg(long)]
        email: String,
        /// Give the user the admin role.
        #[arg(long)]
        admin: bool,
    },
    /// Disable an account: its tokens are revoked at once, and it can no
    /// longer log in, refresh or reset its password.
    Disable {
        #[arg(long)]
        username: String,
    },
    /// Enable a disabled account again.
    Enable {
        #[arg(long)]
        username: String,
    },
    /// Change a user's role; their earlier access tokens stop working on
    /// the logout-sensitive routes, and the next login or refresh carries
    /// the new role.
    SetRole {
        #[arg(long)]
        username: String,
        /// `admin` or `user`.
        #[arg(long)]
        role: String,
    },
}

/// Runs a command; the error is one line for the operator.
pub async fn run(cli: Cli) -> Result<(), String> {
    // Key generation needs no settings (and must work before any exist).
    if let Some(Command::Keys {
        command: KeysCommand::Generate { algorithm, out },
    }) = &cli.command
    {
        return generate_keys(algorithm, out);
    }
    let settings = Settings::load().map_err(|e| e.to_string())?;
    // Held to the end of the command: the server has stopped and its mails
    // have drained by then, and dropping it writes out the queued lines.
    let log = telemetry::init(&settings);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings, &log).await,
        Command::Migrate => migrate(settings).await,
        Command::User {
            command:
                UserCommand::Create {
                    username,
                    email,
                    admin,
                },
        } => create_user(settings, &username, &email, admin).await,
        Command::User {
            command: UserCommand::Disable { username },
        } => {
            govern_user(settings, &username, |changes| {
                changes.is_active = Some(false)
            })
            .await
        }
        Command::User {
            command: UserCommand::Enable { username },
        } => {
            govern_user(settings, &username, |changes| {
                changes.is_active = Some(true)
            })
            .await
        }
        Command::User {
            command: UserCommand::SetRole { username, role },
        } => {
            let role = Role::parse(&role).map_err(|e| format!("--role: {e}"))?;
            govern_user(settings, &username, |changes| changes.role = Some(role)).await
        }
        Command::Client { command } => manage_clients(settings, command).await,
        Command::Keys { .. } => Ok(()),
        Command::Import {
            source:
                ImportSource::Django {
                    from,
                    user_table,
                    dry_run,
                },
        } => {
            let options = ImportOptions {
                from: SecretString::from(from),
                user_table,
                dry_run,
            };
            import_django(settings, options).await
        }
        Command::Healthcheck => healthcheck(&settings),
    }
}

fn healthcheck(settings: &Settings) -> Result<(), String> {
    use std::io::{Read, Write};
    use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
    use std::time::Duration;
    let bind = settings.server.bind;
    // A wildcard bind is reached through loopback.
    let address = match bind.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv4Addr::LOCALHOST.into(), bind.port())
        }
        IpAddr::V6(ip) if ip.is_unspecified() => {
            SocketAddr::new(Ipv6Addr::LOCALHOST.into(), bind.port())
        }
        _ => bind,
    };
    let timeout = Duration::from_secs(3);
    let mut stream = TcpStream::connect_timeout(&address, timeout)
        .map_err(|e| format!("healthcheck: cannot connect to {address}: {e}"))?;
    stream
        .set_read_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    stream
        .set_write_timeout(Some(timeout))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(b"GET /healthz HTTP/1.0\r\nHost: localhost\r\n\r\n")
        .map_err(|e| format!("healthcheck: {e}"))?;
    let mut head = [0u8; 12];
    stream
        .read_exact(&mut head)
        .map_err(|e| format!("healthcheck: {e}"))?;
    if head.starts_with(b"HTTP/1.") && &head[9..12] == b"200" {
        Ok(())
    } else {
        Err(format!(
            "healthcheck: {address} answered {}",
            String::from_utf8_lossy(&head)
        ))
    }
}

fn generate_keys(algorithm: &str, out: &std::path::Path) -> Result<(), String> {
    let algorithm = match algorithm.parse::<Algorithm>() {
        Ok(algorithm) if algorithm != Algorithm::HS256 => algorithm,
        _ => {
            return Err(format!(
                "--algorithm: `{algorithm}` is not one of ES256, RS256, EdDSA"
            ));
        }
    };
    let (private_pem, public_pem) = keys::generate_key_pair(algorithm)?;
    std::fs::create_dir_all(out)
        .map_err(|e| format!("--out: cannot create {}: {e}", out.display()))?;
    let (private_path, public_path) = (out.join("private.pem"), out.join("public.pem"));
    for path in [&private_path, &public_path] {
        if path.exists() {
            return Err(format!(
                "--out: {} exists; refusing to overwrite a key",
                path.display()
            ));
        }
    }
    write_private_file(&private_path, private_pem.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", private_path.display()))?;
    std::fs::write(&public_path, public_pem.as_bytes())
        .map_err(|e| format!("cannot write {}: {e}", public_path.display()))?;
    let kid = keys::load_public_key(algorithm, &public_pem)?.thumbprint();
    eprintln!(
        "tessera: wrote {} and {} ({algorithm}, kid {kid})",
        private_path.display(),
        public_path.display()
    );
    Ok(())
}

async fn serve(settings: Settings, log: &telemetry::LogGuard) -> Result<(), String> {
    let application = Application::build(settings.clone())
        .await
        .map_err(|e| e.to_string())?;
    application.count_dropped_log_lines(log.dropped_lines());
    tracing::info!(
        bind = %settings.server.bind,
        port = application.port(),
        workers = settings.workers(),
        "tessera listening"
    );
    application
        .run_until_stopped()
        .await
        .map_err(|e| e.to_string())
}

async fn migrate(settings: Settings) -> Result<(), String> {
    let (_, applied) = Database::open(&settings.database, None)
        .await
        .map_err(|e| e.to_string())?;
    if applied.is_empty() {
        eprintln!("tessera: the database is up to date");
    }
    for migration in applied {
        eprintln!("tessera: applied {migration}");
    }
    Ok(())
}

async fn create_user(
    settings: Settings,
    username: &str,
    email: &str,
    admin: bool,
) -> Result<(), String> {
    let username = Username::parse(username).map_err(|e| format!("--username: {e}"))?;
    let email = Email::parse(email).map_err(|e| format!("--email: {e}"))?;
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .map_err(|e| format!("cannot read the password from standard input: {e}"))?;
    let password = SecretString::from(line.trim_end_matches(['\n', '\r']).to_owned());
    zeroize::Zeroize::zeroize(&mut line);
    let password = Password::parse(password).map_err(|e| format!("password: {e}"))?;
    let hasher = PasswordHasher::new(&settings.password, 1).map_err(|e| e.to_string())?;
    let (db, _) = Database::open(&settings.database, None)
        .await
        .map_err(|e| e.to_string())?;
    let account = NewAccount {
        username,
        email,
        password,
        role: if admin { Role::Admin } else { Role::User },
        // The operator vouches for the address.
        email_verified: true,
    };
    let user = cli_accounts(db, hasher)
        .register(account)
        .await
        .map_err(|error| match error {
            AccountError::Taken(taken) if taken.username => {
                "conflict: --username: a user with that username or email already exists".to_owned()
            }
            AccountError::Taken(_) => {
                "conflict: --email: a user with that email or username already exists".to_owned()
            }
            other => other.to_string(),
        })?;
    eprintln!(
        "tessera: created {} user {} ({})",
        user.role, user.username, user.id
    );
    Ok(())
}

/// The account service as the CLI uses it: no mail is sent.
fn cli_accounts(db: Database, hasher: PasswordHasher) -> Accounts {
    let outbox = Outbox::disabled(std::sync::Arc::new(crate::metrics::Metrics::new()));
    Accounts::new(db, hasher, std::sync::Arc::new(outbox))
}

/// Applies an admin's change to the account named `username`, as
/// `PATCH /users/{id}` does.
async fn govern_user(
    settings: Settings,
    username: &str,
    change: impl FnOnce(&mut ProfileChanges),
) -> Result<(), String> {
    let hasher = PasswordHasher::new(&settings.password, 1).map_err(|e| e.to_string())?;
    let (db, _) = Database::open(&settings.database, None)
        .await
        .map_err(|e| e.to_string())?;
    let accounts = cli_accounts(db, hasher);
    let user = accounts
        .find_by_username(username.to_owned())
        .await
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("--username: no user named `{username}`"))?;
    let mut changes = ProfileChanges::default();
    change(&mut changes);
    let user = accounts
        .update_profile(user.id, changes)
        .await
        .map_err(|e| e.to_string())?;
    let state = if user.is_active {
        "an active"
    } else {
        "a disabled"
    };
    eprintln!(
        "tessera: {} ({}) is now {state} {}",
        user.username, user.id, user.role
    );
    Ok(())
}

/// `tessera client create|list|delete`.
async fn manage_clients(settings: Settings, command: ClientCommand) -> Result<(), String> {
    use std::io::Write as _;
    let (db, _) = Database::open(&settings.database, None)
        .await
        .map_err(|e| e.to_string())?;
    // Client authentication is not a CLI use case: a throttle is only needed
    // to build the service.
    let throttle = std::sync::Arc::new(LoginThrottle {
        addresses: AddressThrottle::new(1, std::time::Duration::from_secs(1), 1),
        account_max_failures: 1,
        window: chrono::TimeDelta::seconds(1),
    });
    let metrics = std::sync::Arc::new(crate::metrics::Metrics::new());
    let clients = ServiceClients::new(db, throttle, metrics);
    let mut out = std::io::stdout().lock();
    let write_error = |e: std::io::Error| format!("cannot write the output: {e}");
    match command {
        ClientCommand::Create { name, scopes } => {
            let (client, secret) = clients
                .create(&name, &scopes)
                .await
                .map_err(|e| e.to_string())?;
            writeln!(
                out,
                "client_id={}\nclient_secret={}",
                client.client_id,
                secret.expose_secret()
            )
            .map_err(write_error)?;
            eprintln!(
                "tessera: created service client {} ({}) with scopes [{}]; \
                 the secret is shown only this once",
                client.name,
                client.client_id,
                client.scopes.join(" ")
            );
        }
        ClientCommand::List => {
            for client in clients.list().await.map_err(|e| e.to_string())? {
                writeln!(
                    out,
                    "{}\t{}\t{}\t{}",
                    client.client_id,
                    client.name,
                    client.scopes.join(" "),
                    client
                        .created_at
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                )
                .map_err(write_error)?;
            }
        }
        ClientCommand::Delete { client_id } => {
            if !clients
                .delete(client_id.clone())
                .await
                .map_err(|e| e.to_string())?
            {
                return Err(format!("--client-id: no service client `{client_id}`"));
            }
            eprintln!(
                "tessera: deleted service client {client_id}; its tokens no longer work on the logout-sensitive routes"
            );
        }
    }
    Ok(())
}

async fn import_django(settings: Settings, options: ImportOptions) -> Result<(), String> {
    let database = settings.database.clone();
    let report = actix_web::rt::task::spawn_blocking(move || {
        let pool = db::connect(&database).map_err(|e| e.to_string())?;
        let mut conn = pool.get().map_err(|e| format!("database: {e}"))?;
        db::migrate(&mut conn).map_err(|e| format!("migration failed: {e}"))?;
        django::import(&mut conn, &options)
    })
    .await
    .map_err(|e| e.to_string())??;
    // The report is the command's output, for the operator or a script.
    std::io::Write::write_all(&mut std::io::stdout().lock(), report.to_string().as_bytes())
        .map_err(|e| format!("cannot write the report: {e}"))
}
