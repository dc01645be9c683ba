//! Subcommands: `serve` (the default), `migrate`, `user create`.

use std::io::BufRead;

use clap::{Parser, Subcommand};
use secrecy::SecretString;

use crate::auth::password::PasswordHasher;
use crate::db;
use crate::domain::{Email, Password, Role, Username};
use crate::routes::users::{NewAccount, insert_account};
use crate::settings::Settings;
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
}

/// Runs a command; the error is one line for the operator.
pub async fn run(cli: Cli) -> Result<(), String> {
    let settings = Settings::load().map_err(|e| e.to_string())?;
    telemetry::init(&settings.log);
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings).await,
        Command::Migrate => migrate(settings).await,
        Command::User {
            command:
                UserCommand::Create {
                    username,
                    email,
                    admin,
                },
        } => create_user(settings, &username, &email, admin).await,
    }
}

async fn serve(settings: Settings) -> Result<(), String> {
    let application = Application::build(settings.clone())
        .await
        .map_err(|e| e.to_string())?;
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
    let database = settings.database.clone();
    actix_web::rt::task::spawn_blocking(move || {
        let (pool, _) = db::connect(&database).map_err(|e| e.to_string())?;
        let mut conn = pool.get().map_err(|e| format!("database: {e}"))?;
        let applied = db::migrate(&mut conn).map_err(|e| format!("migration failed: {e}"))?;
        if applied.is_empty() {
            eprintln!("tessera: the database is up to date");
        }
        for migration in applied {
            eprintln!("tessera: applied {migration}");
        }
        Ok(())
    })
    .await
    .map_err(|e| e.to_string())?
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
    let password_hash = hasher
        .hash(password.into_secret())
        .await
        .map_err(|e| e.to_string())?;
    let account = NewAccount {
        username,
        email,
        password_hash,
        role: if admin { Role::Admin } else { Role::User },
    };
    let database = settings.database.clone();
    let user = actix_web::rt::task::spawn_blocking(move || {
        let (pool, _) = db::connect(&database).map_err(|e| e.to_string())?;
        let mut conn = pool.get().map_err(|e| format!("database: {e}"))?;
        db::migrate(&mut conn).map_err(|e| format!("migration failed: {e}"))?;
        insert_account(&mut conn, &account).map_err(|e| e.to_string())
    })
    .await
    .map_err(|e| e.to_string())??;
    eprintln!(
        "tessera: created {} user {} ({})",
        user.role, user.username, user.id
    );
    Ok(())
}
