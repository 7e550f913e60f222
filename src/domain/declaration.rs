//! The declarative user document of SPEC §6: what `tessera apply`,
//! `serve --seed` and `POST /admin/apply` take. One set of types reads it
//! from TOML (`[[user]]` tables, in a file) and from JSON (`{"users": […]}`,
//! over the admin API), so both are held to the same fields and checks.
//! [`DeclaredUser::check`] turns an entry into a [`Desired`] user with every
//! value parsed, or an error naming the user and the field.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::domain::networks::AllowedNetworks;
use crate::domain::token_rate::TokenRate;
use crate::domain::user::{AccountStatus, Username, check_password_rule};
use crate::domain::values::{Note, TokenTtl};
use crate::login::password::PasswordHash;
use crate::runtime::redact::{passwords_in, without_these};
use crate::runtime::time;
use crate::runtime::time::parse_duration;
use tessera_verify::scope::Scopes;

/// A declarative file: `[[user]]` tables.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeclarationFile {
    /// The users, in file order.
    #[serde(default, rename = "user")]
    pub users: Vec<DeclaredUser>,
}

/// The body of `POST /admin/apply`: the same document as JSON, and how to
/// apply it.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApplyRequest {
    /// The users the store should hold.
    #[serde(default)]
    pub users: Vec<DeclaredUser>,
    /// Delete users the document does not name.
    #[serde(default)]
    pub prune: bool,
    /// Work out the changes, make none.
    #[serde(default)]
    pub dry_run: bool,
}

/// One user as the document states it. Absent optional fields mean "none"
/// (an applied file clears an expiry it no longer gives); an absent
/// password means "keep the stored one" (or generate one for a new user).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeclaredUser {
    /// The login name.
    pub username: String,
    /// A clear-text password (test fixtures).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// A hash as exported: a PHC string `$argon2id$…`, or the export's
    /// `{"argon2id":{…}}` / `{"sha256-salted":{…}}` form.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_hash: Option<DeclaredHash>,
    /// `active` (the default) or `disabled`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<AccountStatus>,
    /// RFC 3339 UTC.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<String>,
    /// A duration (`15m`, `1h`) or whole seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_ttl: Option<DeclaredTtl>,
    /// Free text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// What its tokens may be granted (absent: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    /// CIDRs its logins may come from (absent: anywhere).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_networks: Option<Vec<String>>,
    /// `N/s`, `N/min` or `N/h` (absent: unlimited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_rate: Option<String>,
    /// Logins need a DPoP proof (absent: false).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dpop_required: Option<bool>,
}

/// A password hash as a document may give it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum DeclaredHash {
    /// `$argon2id$v=19$m=…,t=…,p=…$salt$hash`.
    Phc(String),
    /// As in an export's user line.
    Exported(PasswordHash),
}

/// A token TTL as a document may give it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum DeclaredTtl {
    /// Whole seconds.
    Seconds(u64),
    /// A humantime duration: `90s`, `15m`, `1h`, `7d`.
    Text(String),
}

/// A declared user with every field parsed and checked.
#[derive(Debug)]
pub struct Desired {
    /// The login name.
    pub username: Username,
    /// A clear-text password to set (or keep, when it already verifies).
    pub password: Option<Zeroizing<String>>,
    /// A hash to store as given.
    pub password_hash: Option<PasswordHash>,
    /// Active or disabled.
    pub status: AccountStatus,
    /// Unix seconds.
    pub expires_at: Option<u64>,
    /// Seconds.
    pub token_ttl_secs: Option<u64>,
    /// Free text.
    pub note: Option<String>,
    /// Scopes.
    pub scopes: Scopes,
    /// Allowed networks (empty: anywhere).
    pub allowed_networks: AllowedNetworks,
    /// Token rate (None: unlimited).
    pub token_rate: Option<TokenRate>,
    /// Logins need a DPoP proof.
    pub dpop_required: bool,
}

/// What an apply did (or, in a dry run, would do): the answer of
/// `POST /admin/apply`.
#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApplyReport {
    /// Users created, by name.
    pub created: Vec<String>,
    /// Users whose fields or password changed.
    pub updated: Vec<String>,
    /// Users deleted (only with `prune`).
    pub deleted: Vec<String>,
    /// Users that already matched.
    pub unchanged: u64,
    /// Passwords generated for created users that the document gave none;
    /// shown once, never stored in clear.
    pub passwords: BTreeMap<String, String>,
}

impl ApplyReport {
    /// `N created, N updated, N deleted, N unchanged`.
    pub fn summary(&self) -> String {
        format!(
            "{} created, {} updated, {} deleted, {} unchanged",
            self.created.len(),
            self.updated.len(),
            self.deleted.len(),
            self.unchanged
        )
    }
}

fn field_error(user: &str, field: &str, message: impl std::fmt::Display) -> String {
    format!("user {user:?}: {field}: {message}")
}

impl DeclaredHash {
    fn parse(&self) -> Result<PasswordHash, String> {
        let hash = match self {
            Self::Phc(phc) if phc.starts_with("$argon2id$") => {
                PasswordHash::Argon2id { phc: phc.clone() }
            }
            Self::Phc(_) => {
                return Err("give an Argon2id PHC string ($argon2id$…) or an exported hash object like {\"sha256-salted\":{…}}".into());
            }
            Self::Exported(hash) => hash.clone(),
        };
        hash.validate()?;
        Ok(hash)
    }
}

impl DeclaredTtl {
    fn seconds(&self) -> Result<u64, String> {
        let secs = match self {
            Self::Seconds(s) => *s,
            Self::Text(t) => parse_duration(t)?.as_secs(),
        };
        Ok(TokenTtl::from_secs(secs)?.secs())
    }
}

impl DeclaredUser {
    /// Parses and checks every field; the error names the user and field.
    pub fn check(&self) -> Result<Desired, String> {
        let user = self.username.as_str();
        let username = Username::parse(user).map_err(|e| field_error(user, "username", e))?;
        if self.password.is_some() && self.password_hash.is_some() {
            return Err(field_error(
                user,
                "password",
                "give password or password_hash, not both",
            ));
        }
        if let Some(pw) = &self.password {
            check_password_rule(pw).map_err(|e| field_error(user, "password", e))?;
        }
        let password_hash = self
            .password_hash
            .as_ref()
            .map(DeclaredHash::parse)
            .transpose()
            .map_err(|e| field_error(user, "password_hash", e))?;
        let expires_at = self
            .expires_at
            .as_deref()
            .map(|t| time::parse_rfc3339(t).and_then(|s| time::check_in_range("expires_at", s)))
            .transpose()
            .map_err(|e| field_error(user, "expires_at", e))?;
        let token_ttl_secs = self
            .token_ttl
            .as_ref()
            .map(DeclaredTtl::seconds)
            .transpose()
            .map_err(|e| field_error(user, "token_ttl", e))?;
        let note = self
            .note
            .clone()
            .map(Note::parse)
            .transpose()
            .map_err(|e| field_error(user, "note", e))?
            .map(Note::into_inner);
        let scopes = Scopes::new(self.scopes.iter().flatten())
            .map_err(|e| field_error(user, "scopes", e.to_string()))?;
        let allowed_networks =
            AllowedNetworks::parse(self.allowed_networks.as_deref().unwrap_or(&[]))
                .map_err(|e| field_error(user, "allowed_networks", e))?;
        let token_rate = self
            .token_rate
            .as_deref()
            .map(TokenRate::parse)
            .transpose()
            .map_err(|e| field_error(user, "token_rate", e))?;
        Ok(Desired {
            scopes,
            allowed_networks,
            token_rate,
            dpop_required: self.dpop_required.unwrap_or(false),
            username,
            password: self.password.clone().map(Zeroizing::new),
            password_hash,
            status: self.status.unwrap_or(AccountStatus::Active),
            expires_at,
            token_ttl_secs,
            note,
        })
    }
}

/// Checks every entry and that no name is declared twice.
pub fn check_all(users: &[DeclaredUser]) -> Result<Vec<Desired>, String> {
    let mut seen = HashSet::new();
    users
        .iter()
        .map(|u| {
            let desired = u.check()?;
            if !seen.insert(desired.username.clone()) {
                return Err(field_error(
                    &u.username,
                    "username",
                    "declared twice; keep one entry per user",
                ));
            }
            Ok(desired)
        })
        .collect()
}

/// Reads a TOML declarative file's text. An error names the line, the
/// column and the entry's user but never quotes the file: the line at
/// fault may hold a clear password or a hash (`apply` and `serve --seed`
/// print it to a terminal or the journal), so every password value in the
/// file is redacted from the message too.
pub fn parse_toml(text: &str) -> Result<DeclarationFile, String> {
    toml::from_str(text).map_err(|e| {
        let table = toml::from_str::<toml::Table>(text).ok();
        let secrets = table
            .as_ref()
            .and_then(|t| serde_json::to_value(t).ok())
            .map(|document| passwords_in(&document))
            .unwrap_or_default();
        let message = without_these(e.message().trim(), &secrets);
        let message = match e.span() {
            Some(span) => {
                let before = &text[..span.start.min(text.len())];
                let line = before.matches('\n').count() + 1;
                let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
                format!("line {line}, column {column}: {message}")
            }
            None => message,
        };
        let entries: Vec<toml::Value> = table
            .and_then(|mut t| t.remove("user"))
            .and_then(|v| v.try_into().ok())
            .unwrap_or_default();
        let bad = entries
            .iter()
            .position(|v| DeclaredUser::deserialize(v.clone()).is_err());
        match bad {
            Some(i) => format!(
                "{}: {message}",
                which_user(i, entries[i].get("username").and_then(toml::Value::as_str))
            ),
            None => message,
        }
    })
}

/// Why a `POST /admin/apply` body was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApplyBodyError {
    /// Not the request's shape (bad JSON, an unknown top-level field): 400.
    Malformed(String),
    /// A user entry breaks a rule (a bad value, an unknown field), named by
    /// its user, its place and the field: 422, as every other broken rule.
    Entry(String),
}

/// Reads a `POST /admin/apply` body; a user entry that does not read is
/// named (its place, username and field) beside serde's message.
pub fn parse_apply_json(body: &[u8]) -> Result<ApplyRequest, ApplyBodyError> {
    serde_json::from_slice(body).map_err(|e| {
        let entries: Vec<serde_json::Value> = serde_json::from_slice::<serde_json::Value>(body)
            .ok()
            .and_then(|mut v| v.get_mut("users").map(serde_json::Value::take))
            .and_then(|v| serde_json::from_value(v).ok())
            .unwrap_or_default();
        let bad = entries
            .iter()
            .position(|v| DeclaredUser::deserialize(v).is_err());
        let Some(i) = bad else {
            return ApplyBodyError::Malformed(e.to_string());
        };
        let entry = &entries[i];
        let name = entry.get("username").and_then(serde_json::Value::as_str);
        let (field, message) = bad_field(entry).unwrap_or_else(|| (None, e.to_string()));
        // serde quotes a value of the wrong type: never a password's.
        let message = without_these(&message, &passwords_in(entry));
        ApplyBodyError::Entry(match field {
            Some(field) => format!("{}: {field}: {message}", which_user(i, name)),
            None => format!("{}: {message}", which_user(i, name)),
        })
    })
}

/// The first field of a user entry that does not read on its own, with
/// serde's message (None when the entry is not an object).
fn bad_field(entry: &serde_json::Value) -> Option<(Option<String>, String)> {
    let fields = entry.as_object()?;
    let username = fields
        .get("username")
        .cloned()
        .unwrap_or_else(|| serde_json::Value::from("x"));
    fields.iter().find_map(|(field, value)| {
        let mut alone = serde_json::Map::new();
        alone.insert("username".into(), username.clone());
        alone.insert(field.clone(), value.clone());
        DeclaredUser::deserialize(&serde_json::Value::Object(alone))
            .err()
            .map(|e| (Some(field.clone()), e.to_string()))
    })
}

/// `user "alice" (entry 3)`, or `entry 3` when it has no readable name.
fn which_user(index: usize, username: Option<&str>) -> String {
    match username {
        Some(name) => format!("user {name:?} (entry {})", index + 1),
        None => format!("the user of entry {}", index + 1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::values::MAX_NOTE_CHARS;

    fn one(toml: &str) -> Result<Desired, String> {
        let file = parse_toml(toml)?;
        check_all(&file.users).map(|mut v| v.remove(0))
    }

    /// A TOML error never quotes the file's line: it may hold a password
    /// (clear or hashed), which `apply` and `serve --seed` would print.
    #[test]
    fn toml_errors_never_show_a_password() {
        let secret = "hunter2-Chosen-Passw0rd";
        for text in [
            format!("[[user]]\nusername = \"a\"\npassword = \"{secret}\" status = \"x\"\n"),
            format!("[[user]]\nusername = \"a\"\npassword = \"{secret}\"\nstatus = 5\n"),
            format!(
                "user = [{{ username = \"a\", password = \"{secret}\", status = \"gone\" }}]\n"
            ),
            "[[user]]\nusername = \"a\"\npassword = 123456789\n".to_owned(),
            format!(
                "[[user]]\nusername = \"a\"\npassword_hash = {{ argon2id = {{ salt = \"{secret}\" }} }}\n"
            ),
        ] {
            let err = parse_toml(&text).unwrap_err();
            assert!(!err.contains(secret) && !err.contains("123456789"), "{err}");
            assert!(err.contains("line "), "{err}");
        }
        let err = parse_toml("[[user]]\nusername = \"a\"\nstatus = 5\n").unwrap_err();
        assert!(
            err.starts_with("user \"a\" (entry 1): line 3, column 10: "),
            "{err}"
        );
    }

    #[test]
    fn a_full_entry_parses() {
        let d = one(r#"
            [[user]]
            username = "channel_user"
            password = "6f1c8a52-0b7e-4d3c-9a51-2f8e7d6c5b4a"
            status = "disabled"
            expires_at = "2027-06-30T00:00:00Z"
            token_ttl = "15m"
            note = "calendar sync"
            "#)
        .unwrap();
        assert_eq!(d.username.as_str(), "channel_user");
        assert_eq!(d.status, AccountStatus::Disabled);
        assert_eq!(d.expires_at, Some(1_814_313_600));
        assert_eq!(d.token_ttl_secs, Some(900));
        assert_eq!(d.note.as_deref(), Some("calendar sync"));
    }

    #[test]
    fn defaults_are_active_and_none() {
        let d = one("[[user]]\nusername = \"a\"\ntoken_ttl = 60\n").unwrap();
        assert_eq!(d.status, AccountStatus::Active);
        assert_eq!((d.expires_at, d.token_ttl_secs), (None, Some(60)));
        assert!(d.password.is_none() && d.password_hash.is_none() && d.note.is_none());
    }

    #[test]
    fn errors_name_the_user_and_the_field() {
        for (toml, field) in [
            ("username = \"bad name\"", "username"),
            ("username = \"a\"\ntoken_ttl = \"forever\"", "token_ttl"),
            ("username = \"a\"\ntoken_ttl = 0", "token_ttl"),
            ("username = \"a\"\nexpires_at = \"tomorrow\"", "expires_at"),
            ("username = \"a\"\npassword = \"\"", "password"),
            (
                "username = \"a\"\npassword = \"x\"\npassword_hash = \"$argon2id$v=19$m=1,t=1,p=1$c2FsdA$aGFzaA\"",
                "password",
            ),
            (
                "username = \"a\"\npassword_hash = \"plain\"",
                "password_hash",
            ),
            (
                "username = \"a\"\npassword_hash = \"$argon2id$junk\"",
                "password_hash",
            ),
        ] {
            let err = one(&format!("[[user]]\n{toml}\n")).unwrap_err();
            assert!(err.contains(&format!(": {field}: ")), "{toml}: {err}");
        }
        let long = "x".repeat(MAX_NOTE_CHARS + 1);
        let err = one(&format!("[[user]]\nusername = \"a\"\nnote = \"{long}\"\n")).unwrap_err();
        assert!(err.starts_with("user \"a\": note: "), "{err}");
        let ok = "x".repeat(MAX_NOTE_CHARS);
        assert!(one(&format!("[[user]]\nusername = \"a\"\nnote = \"{ok}\"\n")).is_ok());
    }

    #[test]
    fn only_argon2id_phc_strings_are_taken_as_text() {
        let argon2i = "$argon2i$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaGhhc2hoYXNoaGFzaA";
        let err = one(&format!(
            "[[user]]\nusername = \"a\"\npassword_hash = \"{argon2i}\"\n"
        ))
        .unwrap_err();
        assert!(err.contains("give an Argon2id PHC string"), "{err}");
    }

    #[test]
    fn a_name_declared_twice_is_refused() {
        let file = parse_toml("[[user]]\nusername = \"a\"\n[[user]]\nusername = \"a\"\n").unwrap();
        let err = check_all(&file.users).unwrap_err();
        assert!(err.contains("declared twice"), "{err}");
    }

    #[test]
    fn unknown_fields_are_refused_with_their_place() {
        let err = parse_toml("[[user]]\nusername = \"a\"\npasword = \"x\"\n").unwrap_err();
        assert!(err.contains("pasword") && err.contains("line 3"), "{err}");
    }

    #[test]
    fn a_bad_entry_is_named_by_its_user_in_toml_and_json() {
        let toml = "[[user]]\nusername = \"ok\"\n[[user]]\nusername = \"bob\"\nstatus = \"gone\"\n[[user]]\nusername = \"c\"\npasword = \"x\"\n";
        let err = parse_toml(toml).unwrap_err();
        assert!(err.starts_with("user \"bob\" (entry 2): "), "{err}");
        assert!(err.contains("line 5"), "{err}");
        let err = parse_toml("[[user]]\nusernam = \"x\"\n").unwrap_err();
        assert!(err.starts_with("the user of entry 1: "), "{err}");
        let json = br#"{"users":[{"username":"ok"},{"username":"carol","pasword":"x"}]}"#;
        let ApplyBodyError::Entry(err) = parse_apply_json(json).unwrap_err() else {
            panic!("an entry's error")
        };
        assert!(
            err.starts_with("user \"carol\" (entry 2): pasword: unknown field `pasword`"),
            "{err}"
        );
        for json in [
            &br#"{"users":[{"username":"a","password":123456789}]}"#[..],
            br#"{"users":[{"username":"a","password_hash":{"argon2id":7777777}}]}"#,
        ] {
            let ApplyBodyError::Entry(err) = parse_apply_json(json).unwrap_err() else {
                panic!("an entry's error")
            };
            assert!(err.contains("user \"a\" (entry 1): password"), "{err}");
            assert!(
                !err.contains("123456789") && !err.contains("7777777"),
                "{err}"
            );
        }
        let json = br#"{"users":[{"status":"gone"}]}"#;
        let ApplyBodyError::Entry(err) = parse_apply_json(json).unwrap_err() else {
            panic!("an entry's error")
        };
        assert!(err.starts_with("the user of entry 1: "), "{err}");
        let ApplyBodyError::Malformed(err) =
            parse_apply_json(br#"{"users":[],"prune_all":true}"#).unwrap_err()
        else {
            panic!("the request's error")
        };
        assert!(err.starts_with("unknown field"), "{err}");
        assert!(parse_apply_json(br#"{"users":[{"username":"ok"}]}"#).is_ok());
    }

    #[test]
    fn exported_hashes_are_accepted_in_both_forms() {
        let hash = crate::login::password::hash_new("a chosen password").unwrap();
        let PasswordHash::Argon2id { phc } = &hash else {
            panic!("chosen passwords use Argon2id")
        };
        let d = one(&format!(
            "[[user]]\nusername = \"a\"\npassword_hash = \"{phc}\"\n"
        ))
        .unwrap();
        assert_eq!(d.password_hash, Some(hash.clone()));
        let json = serde_json::json!({"users":[{"username":"a","password_hash": hash}]});
        let req: ApplyRequest = serde_json::from_value(json).unwrap();
        assert_eq!(check_all(&req.users).unwrap()[0].password_hash, Some(hash));
    }

    #[test]
    fn the_summary_counts_each_kind() {
        let report = ApplyReport {
            created: vec!["a".into()],
            updated: vec!["b".into(), "c".into()],
            deleted: vec![],
            unchanged: 4,
            passwords: BTreeMap::new(),
        };
        assert_eq!(
            report.summary(),
            "1 created, 2 updated, 0 deleted, 4 unchanged"
        );
    }
}
