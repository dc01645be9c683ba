//! Email: the mails tessera sends (password reset, email verification,
//! email change), rendered from templates and delivered off the request
//! path.
//!
//! [`Mailer::send`] renders a mail and puts it on a bounded queue; it never
//! waits for the network. One background task delivers the queue through
//! the configured transport, retrying transient failures with a doubling
//! backoff; a mail that cannot be delivered is logged (without its link,
//! which carries a token) and counted in `/metrics`. [`Mailer::drain`]
//! delivers what is left at shutdown.

mod templates;

use std::collections::BinaryHeap;
use std::sync::Arc;
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use secrecy::ExposeSecret;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

pub use templates::Templates;

use crate::metrics::Metrics;
use crate::settings::{DeployEnv, EmailSettings, EmailTransport, SettingsError};

/// The mails tessera sends; each is a template (text, HTML and subject).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MailKind {
    PasswordReset,
    VerifyEmail,
    /// To the new address: confirm the change.
    EmailChange,
    /// To the old address: a change was asked for.
    EmailChangeNotice,
}

impl MailKind {
    pub const ALL: [MailKind; 4] = [
        MailKind::PasswordReset,
        MailKind::VerifyEmail,
        MailKind::EmailChange,
        MailKind::EmailChangeNotice,
    ];

    /// The template name, and the metrics label.
    pub fn name(self) -> &'static str {
        match self {
            MailKind::PasswordReset => "password_reset",
            MailKind::VerifyEmail => "verify_email",
            MailKind::EmailChange => "email_change",
            MailKind::EmailChangeNotice => "email_change_notice",
        }
    }
}

/// One mail to send: who to, which template, and its variables.
pub struct Mail {
    pub kind: MailKind,
    pub to: String,
    pub username: String,
    /// The link to follow (it carries a one-time token), if the mail has one.
    pub link: Option<String>,
    /// The address a verification or change mail confirms.
    pub email: Option<String>,
    /// How long the link works.
    pub expires_minutes: u64,
}

/// A rendered mail on the queue.
struct Outgoing {
    kind: MailKind,
    message: Message,
    /// What the log transport shows: the text part, link included.
    text: String,
    to: String,
    attempts: u32,
}

enum Job {
    Deliver(Box<Outgoing>),
    /// Deliver what is queued (once each, no more backoff), then answer.
    Drain(oneshot::Sender<()>),
}

/// Where mails go.
#[derive(Clone)]
enum Transport {
    Log,
    Smtp(AsyncSmtpTransport<Tokio1Executor>),
}

/// Renders mails and queues them for delivery.
pub struct Mailer {
    queue: Option<mpsc::Sender<Job>>,
    templates: Templates,
    from: Mailbox,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mailer")
            .field("enabled", &self.queue.is_some())
            .finish_non_exhaustive()
    }
}

/// How delivery behaves: attempts and backoff.
#[derive(Clone, Copy)]
struct RetryPolicy {
    max_attempts: u32,
    initial: Duration,
}

impl RetryPolicy {
    /// The wait after the `attempt`-th failure: doubling, at most an hour.
    fn backoff(self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1)).min(1 << 12);
        (self.initial * factor).min(Duration::from_secs(3600))
    }
}

impl Mailer {
    /// Builds the transport and the templates from `email.*` and starts the
    /// delivery task (on the current runtime). `log` is refused in
    /// production; a bad URL, address or template stops startup naming the
    /// setting.
    pub fn start(
        settings: &EmailSettings,
        env: DeployEnv,
        metrics: Arc<Metrics>,
    ) -> Result<Self, SettingsError> {
        let from: Mailbox = settings.from.parse().map_err(|e| {
            SettingsError::new(
                "email.from",
                format!("`{}` is not an address: {e}", settings.from),
            )
        })?;
        let templates = Templates::load(settings.templates_dir.as_deref())?;
        let transport = match settings.transport {
            EmailTransport::None => None,
            EmailTransport::Log if env == DeployEnv::Production => {
                return Err(SettingsError::new(
                    "email.transport",
                    "`log` writes reset links to the log and is refused in production; \
                     set `smtp` (with email.smtp_url) or `none`",
                ));
            }
            EmailTransport::Log => Some(Transport::Log),
            EmailTransport::Smtp => {
                let url = settings.smtp_url.as_ref().ok_or_else(|| {
                    SettingsError::new("email.smtp_url", "is required when email.transport is smtp")
                })?;
                let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url.expose_secret())
                    .map_err(|e| {
                        SettingsError::new(
                            "email.smtp_url",
                            crate::db::redact_password(&e.to_string(), url.expose_secret()),
                        )
                    })?
                    .timeout(Some(Duration::from_secs(10)))
                    .build();
                Some(Transport::Smtp(transport))
            }
        };
        let queue = transport.map(|transport| {
            let (sender, receiver) = mpsc::channel(settings.queue_capacity.get());
            let policy = RetryPolicy {
                max_attempts: settings.max_attempts.get(),
                initial: settings.retry_initial_secs.duration(),
            };
            // On the runtime, not the thread's local set: lettre's pooled
            // connections spawn their clean-up when dropped, which panics
            // outside a runtime context, and a local set's tasks are dropped
            // outside it when the process (or a test) ends.
            tokio::spawn(deliver_forever(
                receiver,
                transport,
                policy,
                Arc::clone(&metrics),
            ));
            sender
        });
        Ok(Self {
            queue,
            templates,
            from,
            metrics,
        })
    }

    /// A mailer that sends nothing (`email.transport = "none"`), for the CLI.
    pub fn disabled(metrics: Arc<Metrics>) -> Self {
        Self {
            queue: None,
            templates: Templates::default(),
            from: Mailbox::new(
                None,
                "no-reply@localhost"
                    .parse()
                    .unwrap_or_else(|_| unreachable!("a literal address")),
            ),
            metrics,
        }
    }

    /// Renders `mail` and queues it; never waits for the network. A mail
    /// that cannot be rendered or queued is logged and counted, and the
    /// caller goes on.
    pub fn send(&self, mail: Mail) {
        let Some(queue) = &self.queue else {
            return;
        };
        let kind = mail.kind;
        let outgoing = match self.render(mail) {
            Ok(outgoing) => outgoing,
            Err(error) => {
                tracing::error!(kind = kind.name(), %error, "a mail could not be built");
                self.metrics.email(kind.name(), "failed");
                return;
            }
        };
        if queue.try_send(Job::Deliver(Box::new(outgoing))).is_err() {
            tracing::error!(
                kind = kind.name(),
                "the mail queue is full: a mail was dropped"
            );
            self.metrics.email(kind.name(), "dropped");
        }
    }

    /// Delivers what is queued, each mail once more at most, waiting up to
    /// `deadline`; for shutdown.
    pub async fn drain(&self, deadline: Duration) {
        let Some(queue) = &self.queue else {
            return;
        };
        let (done, finished) = oneshot::channel();
        if queue.send(Job::Drain(done)).await.is_ok()
            && tokio::time::timeout(deadline, finished).await.is_err()
        {
            tracing::warn!("shutdown: the mail queue was not drained in time");
        }
    }

    fn render(&self, mail: Mail) -> Result<Outgoing, String> {
        let rendered = self.templates.render(&mail)?;
        let to: Mailbox = mail
            .to
            .parse()
            .map_err(|e| format!("not an address: {e}"))?;
        let message = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(rendered.subject)
            .multipart(MultiPart::alternative_plain_html(
                rendered.text.clone(),
                rendered.html,
            ))
            .map_err(|e| e.to_string())?;
        Ok(Outgoing {
            kind: mail.kind,
            message,
            text: rendered.text,
            to: mail.to,
            attempts: 0,
        })
    }
}

/// A mail waiting for its next attempt, earliest first.
struct Retry {
    due: Instant,
    mail: Box<Outgoing>,
}

impl PartialEq for Retry {
    fn eq(&self, other: &Self) -> bool {
        self.due == other.due
    }
}
impl Eq for Retry {}
impl PartialOrd for Retry {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Retry {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        other.due.cmp(&self.due)
    }
}

/// The delivery task: sends each queued mail, schedules retries of
/// transient failures, and drains on request.
async fn deliver_forever(
    mut jobs: mpsc::Receiver<Job>,
    transport: Transport,
    policy: RetryPolicy,
    metrics: Arc<Metrics>,
) {
    let mut retries: BinaryHeap<Retry> = BinaryHeap::new();
    loop {
        let next_due = retries.peek().map(|retry| retry.due);
        let job = tokio::select! {
            job = jobs.recv() => match job {
                Some(job) => job,
                None => return,
            },
            () = sleep_until(next_due) => {
                if let Some(retry) = retries.pop() {
                    attempt(retry.mail, &transport, policy, &metrics, &mut retries).await;
                }
                continue;
            }
        };
        match job {
            Job::Deliver(mail) => attempt(mail, &transport, policy, &metrics, &mut retries).await,
            Job::Drain(done) => {
                // Whatever is queued behind, then the retries, once each.
                while let Ok(Job::Deliver(mail)) = jobs.try_recv() {
                    attempt(mail, &transport, policy, &metrics, &mut retries).await;
                }
                let waiting: Vec<Retry> = std::mem::take(&mut retries).into_vec();
                for retry in waiting {
                    let mut mail = retry.mail;
                    mail.attempts = policy.max_attempts.saturating_sub(1);
                    attempt(mail, &transport, policy, &metrics, &mut retries).await;
                }
                let _ = done.send(());
            }
        }
    }
}

async fn sleep_until(due: Option<Instant>) {
    match due {
        Some(due) => tokio::time::sleep_until(due).await,
        None => std::future::pending().await,
    }
}

/// One delivery attempt; a transient failure is scheduled again unless the
/// mail has had all its attempts.
async fn attempt(
    mut mail: Box<Outgoing>,
    transport: &Transport,
    policy: RetryPolicy,
    metrics: &Metrics,
    retries: &mut BinaryHeap<Retry>,
) {
    let kind = mail.kind.name();
    mail.attempts += 1;
    let result = match transport {
        Transport::Log => {
            tracing::info!(
                kind,
                to = %mail.to,
                text = %mail.text,
                "email (log transport: not sent)"
            );
            Ok(())
        }
        Transport::Smtp(smtp) => smtp.send(mail.message.clone()).await.map(drop),
    };
    match result {
        Ok(()) => {
            tracing::info!(kind, attempts = mail.attempts, "email delivered");
            metrics.email(kind, "sent");
        }
        Err(error) if error.is_permanent() || mail.attempts >= policy.max_attempts => {
            // The error says nothing of the body, so no token reaches the log.
            tracing::error!(kind, attempts = mail.attempts, %error, "email given up");
            metrics.email(kind, "failed");
        }
        Err(error) => {
            let wait = policy.backoff(mail.attempts);
            tracing::warn!(kind, attempts = mail.attempts, %error, retry_in_secs = wait.as_secs(), "email delivery failed; will retry");
            metrics.email(kind, "retried");
            retries.push(Retry {
                due: Instant::now() + wait,
                mail,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_backoff_doubles_and_is_bounded() {
        let policy = RetryPolicy {
            max_attempts: 8,
            initial: Duration::from_secs(2),
        };
        assert_eq!(policy.backoff(1), Duration::from_secs(2));
        assert_eq!(policy.backoff(2), Duration::from_secs(4));
        assert_eq!(policy.backoff(3), Duration::from_secs(8));
        assert_eq!(policy.backoff(40), Duration::from_secs(3600));
    }
}
