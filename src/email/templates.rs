//! The mail templates: compiled in, each replaceable by a file of the same
//! name in `email.templates_dir`. Every mail has a subject
//! (`NAME_subject.txt`), a text part (`NAME.txt`) and an HTML part
//! (`NAME.html`, auto-escaped).

use std::path::Path;

use minijinja::{Environment, context};

use super::{Mail, MailKind};
use crate::settings::SettingsError;

/// The compiled-in templates: (file name, source).
const BUILT_IN: [(&str, &str); 12] = [
    (
        "password_reset_subject.txt",
        include_str!("templates/password_reset_subject.txt"),
    ),
    (
        "password_reset.txt",
        include_str!("templates/password_reset.txt"),
    ),
    (
        "password_reset.html",
        include_str!("templates/password_reset.html"),
    ),
    (
        "verify_email_subject.txt",
        include_str!("templates/verify_email_subject.txt"),
    ),
    (
        "verify_email.txt",
        include_str!("templates/verify_email.txt"),
    ),
    (
        "verify_email.html",
        include_str!("templates/verify_email.html"),
    ),
    (
        "email_change_subject.txt",
        include_str!("templates/email_change_subject.txt"),
    ),
    (
        "email_change.txt",
        include_str!("templates/email_change.txt"),
    ),
    (
        "email_change.html",
        include_str!("templates/email_change.html"),
    ),
    (
        "email_change_notice_subject.txt",
        include_str!("templates/email_change_notice_subject.txt"),
    ),
    (
        "email_change_notice.txt",
        include_str!("templates/email_change_notice.txt"),
    ),
    (
        "email_change_notice.html",
        include_str!("templates/email_change_notice.html"),
    ),
];

/// A mail's three parts, rendered.
pub struct Rendered {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The template set.
pub struct Templates {
    env: Environment<'static>,
}

impl Default for Templates {
    fn default() -> Self {
        let mut env = Environment::new();
        for (name, source) in BUILT_IN {
            // The built-in templates are tested to parse.
            let _ = env.add_template(name, source);
        }
        Self { env }
    }
}

impl Templates {
    /// The built-in templates, with those found in `dir` replacing theirs.
    /// A template that does not parse, or renders with an error, stops
    /// startup naming `email.templates_dir`.
    pub fn load(dir: Option<&Path>) -> Result<Self, SettingsError> {
        let mut templates = Self::default();
        let error = |message: String| SettingsError::new("email.templates_dir", message);
        if let Some(dir) = dir {
            if !dir.is_dir() {
                return Err(error(format!("{} is not a folder", dir.display())));
            }
            for (name, _) in BUILT_IN {
                let path = dir.join(name);
                if !path.is_file() {
                    continue;
                }
                let source = std::fs::read_to_string(&path)
                    .map_err(|e| error(format!("{}: {e}", path.display())))?;
                templates
                    .env
                    .add_template_owned(name, source)
                    .map_err(|e| error(format!("{}: {e}", path.display())))?;
            }
        }
        // Render each once with sample values, so a broken override is
        // found now rather than when a user needs the mail.
        for kind in MailKind::ALL {
            templates
                .render(&Mail {
                    kind,
                    to: "someone@example.com".to_owned(),
                    username: "someone".to_owned(),
                    link: Some("https://example.com/?token=t".to_owned()),
                    email: Some("someone@example.com".to_owned()),
                    expires_minutes: 30,
                })
                .map_err(error)?;
        }
        Ok(templates)
    }

    pub fn render(&self, mail: &Mail) -> Result<Rendered, String> {
        let name = mail.kind.name();
        let values = context! {
            username => &mail.username,
            link => &mail.link,
            email => &mail.email,
            expires_minutes => mail.expires_minutes,
        };
        let part = |suffix: &str| {
            let file = format!("{name}{suffix}");
            self.env
                .get_template(&file)
                .and_then(|template| template.render(&values))
                .map_err(|e| format!("template {file}: {e}"))
        };
        Ok(Rendered {
            subject: part("_subject.txt")?.trim().to_owned(),
            text: part(".txt")?,
            html: part(".html")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mail(kind: MailKind) -> Mail {
        Mail {
            kind,
            to: "alice@example.com".to_owned(),
            username: "<alice>".to_owned(),
            link: Some("https://auth.example.com/reset-password?token=abc&x=1".to_owned()),
            email: Some("alice@example.com".to_owned()),
            expires_minutes: 30,
        }
    }

    #[test]
    fn every_built_in_template_renders_with_text_and_html() {
        let templates = Templates::load(None).unwrap();
        for kind in MailKind::ALL {
            let rendered = templates.render(&mail(kind)).unwrap();
            assert!(!rendered.subject.is_empty());
            assert!(rendered.text.contains("<alice>"), "text is not escaped");
            assert!(rendered.html.contains("&lt;alice&gt;"), "HTML is escaped");
        }
    }

    #[test]
    fn a_template_in_the_folder_replaces_the_built_in_one() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("password_reset_subject.txt"),
            "Neues Passwort für {{ username }}",
        )
        .unwrap();
        let templates = Templates::load(Some(dir.path())).unwrap();
        let rendered = templates.render(&mail(MailKind::PasswordReset)).unwrap();
        assert_eq!(rendered.subject, "Neues Passwort für <alice>");
    }

    #[test]
    fn a_broken_template_stops_startup_naming_the_setting() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("verify_email.html"), "{% if %}").unwrap();
        let error = Templates::load(Some(dir.path())).err().unwrap();
        assert_eq!(error.key, "email.templates_dir");
    }
}
