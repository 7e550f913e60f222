//! Declarative provisioning (SPEC §6 `apply`): make the stored users match
//! a document in one transaction. The plan is worked out from the current
//! users (hashing new passwords, checking given ones against stored hashes
//! off the executor), then written by one [`Store::write_users`] call with
//! one audit event per change, so the revocation feed sees every touched
//! subject. Applies are serialised with each other; an admin change to the
//! same user made while a plan is worked out is overwritten by the file.

use std::collections::HashMap;

use zeroize::Zeroizing;

use super::{AdminError, Service};
use crate::domain::declaration::{ApplyReport, Desired};
use crate::domain::user::{User, Username};
use crate::login::password::PasswordHash;
use crate::store::{Action, Audit, UserWrite};

/// Users read per page while planning.
const PAGE: usize = 1000;

/// What an apply writes and what it reports.
struct Plan {
    writes: Vec<(UserWrite, Audit)>,
    report: ApplyReport,
    max_ttl: Option<u64>,
}

impl Service {
    /// Makes the users match `desired` (deleting others only when `prune`);
    /// with `dry_run`, reports the changes and writes nothing (no password
    /// is generated then).
    pub async fn apply(
        &self,
        desired: Vec<Desired>,
        prune: bool,
        dry_run: bool,
    ) -> Result<ApplyReport, AdminError> {
        let _one_at_a_time = self.apply_lock.lock().await;
        let plan = self.plan(desired, prune, dry_run).await?;
        if !dry_run {
            if let Some(ttl) = plan.max_ttl {
                self.blocking(move |s| s.raise_ttl_high_water(ttl)).await?;
            }
            let writes = plan.writes;
            self.blocking(move |s| s.write_users(writes)).await?;
        }
        Ok(plan.report)
    }

    fn all_users(&self) -> Result<HashMap<Username, User>, AdminError> {
        let mut users = HashMap::new();
        let mut after: Option<String> = None;
        loop {
            let page = self.list_users(after.as_deref(), PAGE)?;
            users.extend(page.items.into_iter().map(|u| (u.username.clone(), u)));
            match page.next {
                Some(next) => after = Some(next),
                None => return Ok(users),
            }
        }
    }

    async fn plan(
        &self,
        desired: Vec<Desired>,
        prune: bool,
        dry_run: bool,
    ) -> Result<Plan, AdminError> {
        let mut current = self.all_users()?;
        let now = self.clock.now();
        let mut plan = Plan {
            writes: Vec::new(),
            report: ApplyReport::default(),
            max_ttl: desired.iter().filter_map(|d| d.token_ttl_secs).max(),
        };
        // One generation for every user this apply creates, drawn at the
        // first one (a plan that creates nobody draws none).
        let mut fresh_generation = None;
        for d in desired {
            let name = d.username.to_string();
            match current.remove(&d.username) {
                None => {
                    let (hash, generated) = if dry_run {
                        (None, None)
                    } else {
                        self.new_hash(&d).await.map(|(h, g)| (Some(h), g))?
                    };
                    if let Some(hash) = hash {
                        let generation = match fresh_generation {
                            Some(g) => g,
                            None => *fresh_generation.insert(self.draw_generation().await?),
                        };
                        let user = User {
                            status: d.status,
                            expires_at: d.expires_at,
                            token_ttl_secs: d.token_ttl_secs,
                            note: d.note,
                            scopes: d.scopes,
                            allowed_networks: d.allowed_networks,
                            token_rate: d.token_rate,
                            dpop_required: d.dpop_required,
                            ..User::new(&d.username, hash, now, generation)
                        };
                        let detail = format!("applied; password {}", user.password.scheme());
                        plan.writes.push((
                            UserWrite::Put(Box::new(user)),
                            self.audit(Action::UserCreate, &name, detail),
                        ));
                    }
                    if let Some(pw) = generated {
                        plan.report.passwords.insert(name.clone(), pw.to_string());
                    }
                    plan.report.created.push(name);
                }
                Some(stored) => {
                    let new_hash = self.changed_hash(&d, &stored.password).await?;
                    let mut user = stored.clone();
                    user.status = d.status;
                    user.expires_at = d.expires_at;
                    user.token_ttl_secs = d.token_ttl_secs;
                    user.note = d.note;
                    user.scopes = d.scopes;
                    user.allowed_networks = d.allowed_networks;
                    user.token_rate = d.token_rate;
                    user.dpop_required = d.dpop_required;
                    if let Some(hash) = new_hash {
                        // A declared password replaces every secret, as
                        // `POST /admin/users/{u}/password` does.
                        user.replace_secrets(hash, now);
                    }
                    let changed = changed_fields(&stored, &user);
                    if changed.is_empty() {
                        plan.report.unchanged += 1;
                        continue;
                    }
                    user.updated_at = now;
                    let detail = format!("applied; changed {}", changed.join(", "));
                    plan.writes.push((
                        UserWrite::Put(Box::new(user)),
                        self.audit(Action::UserUpdate, &name, detail),
                    ));
                    plan.report.updated.push(name);
                }
            }
        }
        if prune {
            let mut gone: Vec<Username> = current.into_keys().collect();
            gone.sort();
            for name in gone {
                let audit = self.audit(Action::UserDelete, name.as_str(), "applied --prune".into());
                plan.report.deleted.push(name.to_string());
                plan.writes.push((UserWrite::Delete(name), audit));
            }
        } else {
            plan.report.unchanged += current.len() as u64;
        }
        Ok(plan)
    }

    /// The hash for a new user: as given, from a given password, or from a
    /// generated one (returned to be shown once).
    async fn new_hash(
        &self,
        d: &Desired,
    ) -> Result<(PasswordHash, Option<Zeroizing<String>>), AdminError> {
        if let Some(hash) = &d.password_hash {
            return Ok((hash.clone(), None));
        }
        self.hash_new_password(d.password.as_ref().map(|p| p.to_string()))
            .await
    }

    /// The hash to store for an existing user, when the document changes
    /// it: a given hash that differs, or a given password the stored hash
    /// does not accept.
    async fn changed_hash(
        &self,
        d: &Desired,
        stored: &PasswordHash,
    ) -> Result<Option<PasswordHash>, AdminError> {
        if let Some(hash) = &d.password_hash {
            return Ok((hash != stored).then(|| hash.clone()));
        }
        let Some(pw) = d.password.clone() else {
            return Ok(None);
        };
        if self.password_matches(stored, &pw).await? {
            return Ok(None);
        }
        let (hash, _) = self.hash_new_password(Some(pw.to_string())).await?;
        Ok(Some(hash))
    }
}

/// The names of the fields that differ, for the audit log.
fn changed_fields(before: &User, after: &User) -> Vec<&'static str> {
    [
        ("status", before.status != after.status),
        ("expires_at", before.expires_at != after.expires_at),
        (
            "token_ttl_secs",
            before.token_ttl_secs != after.token_ttl_secs,
        ),
        ("note", before.note != after.note),
        ("scopes", before.scopes != after.scopes),
        (
            "allowed_networks",
            before.allowed_networks != after.allowed_networks,
        ),
        ("token_rate", before.token_rate != after.token_rate),
        ("dpop_required", before.dpop_required != after.dpop_required),
        ("password", before.password != after.password),
    ]
    .into_iter()
    .filter_map(|(field, differs)| differs.then_some(field))
    .collect()
}
