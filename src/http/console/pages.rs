//! The console's pages, rendered on the server with `maud` (every value
//! HTML-escaped by the template engine). The accessible names — headings,
//! link and button texts, field labels — are SPEC §16's contract with
//! operators, screen readers and the browser tests: keep them exactly.

use maud::{DOCTYPE, Markup, html};

use crate::domain::user::User;
use crate::runtime::time;
use crate::service::KeyView;
use crate::store::AuditEvent;

/// Where the session's sign-out and every form post their CSRF token.
pub const CSRF_FIELD: &str = "csrf";

fn or_dash(value: Option<String>) -> String {
    value.unwrap_or_else(|| "-".to_owned())
}

/// The frame of every page: the title, the navigation with `Sign out`
/// when signed in, and a one-line error when there is one.
pub fn layout(title: &str, csrf: Option<&str>, error: Option<&str>, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · Tessera" }
                link rel="stylesheet" href="/console/console.css";
            }
            body {
                header {
                    span.brand { "Tessera" }
                    @if let Some(csrf) = csrf {
                        nav aria-label="Console" {
                            a href="/console/users" { "Partners" }
                            a href="/console/users/new" { "New partner" }
                            a href="/console/keys" { "Keys" }
                            a href="/console/audit" { "Audit" }
                        }
                        form.inline method="post" action="/console/sign-out" {
                            input type="hidden" name=(CSRF_FIELD) value=(csrf);
                            button type="submit" { "Sign out" }
                        }
                    }
                }
                main {
                    h1 { (title) }
                    @if let Some(e) = error {
                        p.error role="alert" { (e) }
                    }
                    (body)
                }
            }
        }
    }
}

/// The sign-in form.
pub fn sign_in(error: Option<&str>) -> Markup {
    layout(
        "Sign in",
        None,
        error,
        html! {
            form method="post" action="/console/sign-in" {
                label for="token" { "Admin token" }
                input #token type="password" name="token" autocomplete="current-password" required;
                button type="submit" { "Sign in" }
            }
        },
    )
}

/// `Partners`: a page of users, the search form, and `Next`.
pub fn partners(csrf: &str, users: &[User], search: &str, next: Option<&str>) -> Markup {
    layout(
        "Partners",
        Some(csrf),
        None,
        html! {
            form method="get" action="/console/users" role="search" {
                label for="search" { "Search" }
                input #search type="search" name="search" value=(search);
                button type="submit" { "Find" }
            }
            table {
                thead { tr { th { "Username" } th { "Status" } th { "Scopes" } th { "Expires" } th { "Last login" } } }
                tbody {
                    @for u in users {
                        tr {
                            td { a href={ "/console/users/" (u.username) } { (u.username) } }
                            td { (status_text(u)) }
                            td { (u.scopes) }
                            td { (or_dash(u.expires_at.map(time::rfc3339))) }
                            td { (or_dash(u.last_login_at.map(time::rfc3339))) }
                        }
                    }
                }
            }
            @if users.is_empty() { p { "No partner matches." } }
            @if let Some(next) = next {
                a href={ "/console/users?" (form_urlencoded::Serializer::new(String::new())
                    .append_pair("search", search)
                    .append_pair("after", next)
                    .finish()) } { "Next" }
            }
        },
    )
}

fn status_text(u: &User) -> &'static str {
    match u.status {
        crate::domain::user::AccountStatus::Active => "active",
        crate::domain::user::AccountStatus::Disabled => "disabled",
    }
}

/// What the `New partner` form holds (kept after a refusal).
#[derive(Debug, Default, Clone)]
pub struct NewPartnerForm {
    /// `Username`.
    pub username: String,
    /// `Note`.
    pub note: String,
    /// `Scopes`, space or comma separated.
    pub scopes: String,
    /// `Expires at`, RFC 3339 or empty.
    pub expires_at: String,
}

/// `New partner`.
pub fn new_partner(csrf: &str, form: &NewPartnerForm, error: Option<&str>) -> Markup {
    layout(
        "New partner",
        Some(csrf),
        error,
        html! {
            form method="post" action="/console/users" {
                input type="hidden" name=(CSRF_FIELD) value=(csrf);
                label for="username" { "Username" }
                input #username name="username" value=(form.username) required;
                label for="note" { "Note" }
                input #note name="note" value=(form.note);
                label for="scopes" { "Scopes" }
                input #scopes name="scopes" value=(form.scopes);
                label for="expires_at" { "Expires at" }
                input #expires_at name="expires_at" value=(form.expires_at) placeholder="2027-06-30T00:00:00Z";
                button type="submit" { "Create" }
            }
        },
    )
}

/// A partner's page: its fields and secrets, the one-time password if
/// one waits, and every action.
pub fn partner(
    csrf: &str,
    u: &User,
    now: u64,
    new_password: Option<&str>,
    error: Option<&str>,
) -> Markup {
    let base = format!("/console/users/{}", u.username);
    let disabled = u.status == crate::domain::user::AccountStatus::Disabled;
    layout(
        u.username.as_str(),
        Some(csrf),
        error,
        html! {
            @if let Some(pw) = new_password {
                div.flash role="status" aria-label="New password" {
                    p { "The new password, shown once:" }
                    code { (pw) }
                }
            }
            dl {
                dt { "Status" } dd { (status_text(u)) }
                dt { "Created" } dd { (time::rfc3339(u.created_at)) }
                dt { "Last login" } dd { (or_dash(u.last_login_at.map(time::rfc3339))) }
                dt { "Tokens valid after" } dd { (or_dash(u.tokens_valid_after.map(time::rfc3339))) }
            }
            h2 { "Secrets" }
            table {
                thead { tr { th { "ID" } th { "Created" } th { "Expires" } th { "Last used" } } }
                tbody {
                    @for s in u.secret_views(now) {
                        tr {
                            td { code { (s.id) } }
                            td { (s.created_at) }
                            td { (or_dash(s.expires_at)) }
                            td { (or_dash(s.last_used_at)) }
                        }
                    }
                }
            }
            form method="post" action={ (base) "/rotate" } {
                input type="hidden" name=(CSRF_FIELD) value=(csrf);
                label for="grace" { "Grace period" }
                input #grace name="grace" value="24h";
                button type="submit" { "Rotate secret" }
            }
            h2 { "Settings" }
            form method="post" action=(base) {
                input type="hidden" name=(CSRF_FIELD) value=(csrf);
                label for="scopes" { "Scopes" }
                input #scopes name="scopes" value=(u.scopes);
                label for="note" { "Note" }
                input #note name="note" value=(u.note.clone().unwrap_or_default());
                label for="allowed_networks" { "Allowed networks" }
                input #allowed_networks name="allowed_networks" value=(u.allowed_networks);
                label for="token_rate" { "Token rate" }
                input #token_rate name="token_rate" value=(u.token_rate.map(|r| r.to_string()).unwrap_or_default());
                label for="expires_at" { "Expires at" }
                input #expires_at name="expires_at" value=(u.expires_at.map(time::rfc3339).unwrap_or_default());
                label for="dpop_required" { "DPoP required" }
                input #dpop_required type="checkbox" name="dpop_required" value="on" checked[u.dpop_required];
                button type="submit" { "Save" }
            }
            h2 { "Actions" }
            form.inline method="post" action={ (base) "/status" } {
                input type="hidden" name=(CSRF_FIELD) value=(csrf);
                @if disabled {
                    input type="hidden" name="status" value="active";
                    button type="submit" { "Enable" }
                } @else {
                    input type="hidden" name="status" value="disabled";
                    button type="submit" { "Disable" }
                }
            }
            form.inline method="post" action={ (base) "/revoke" } {
                input type="hidden" name=(CSRF_FIELD) value=(csrf);
                button type="submit" { "Revoke all tokens" }
            }
            a.button href={ (base) "/delete" } { "Delete" }
        },
    )
}

/// The confirmation a delete needs.
pub fn confirm_delete(csrf: &str, username: &str) -> Markup {
    layout(
        &format!("Delete {username}?"),
        Some(csrf),
        None,
        html! {
            p { "Its tokens stop verifying at once. This can not be undone." }
            form method="post" action={ "/console/users/" (username) "/delete" } {
                input type="hidden" name=(CSRF_FIELD) value=(csrf);
                button type="submit" { "Confirm delete" }
            }
            a href={ "/console/users/" (username) } { "Cancel" }
        },
    )
}

/// `Keys`.
pub fn keys(csrf: &str, keys: &[KeyView], error: Option<&str>) -> Markup {
    layout(
        "Keys",
        Some(csrf),
        error,
        html! {
            table {
                thead { tr { th { "Key ID" } th { "Status" } th { "Created" } th { "Retired" } } }
                tbody {
                    @for k in keys {
                        tr {
                            td { code { (k.kid) } }
                            td { (key_status(k)) }
                            td { (time::rfc3339(k.created_at)) }
                            td { (or_dash(k.retired_at.map(time::rfc3339))) }
                        }
                    }
                }
            }
            form method="post" action="/console/keys/rotate" {
                input type="hidden" name=(CSRF_FIELD) value=(csrf);
                button type="submit" { "Rotate keys" }
            }
        },
    )
}

/// `Audit`: events newest first, filtered by `Target` and `Action`.
pub fn audit(csrf: &str, events: &[AuditEvent], target: &str, action: &str) -> Markup {
    layout(
        "Audit",
        Some(csrf),
        None,
        html! {
            form method="get" action="/console/audit" {
                label for="target" { "Target" }
                input #target name="target" value=(target);
                label for="action" { "Action" }
                input #action name="action" value=(action);
                button type="submit" { "Filter" }
            }
            table {
                thead { tr { th { "Seq" } th { "At" } th { "Action" } th { "Target" } th { "Detail" } } }
                tbody {
                    @for e in events {
                        tr {
                            td { (e.seq) }
                            td { (time::rfc3339(e.at)) }
                            td { (e.action) }
                            td { (e.target) }
                            td { (e.detail) }
                        }
                    }
                }
            }
        },
    )
}

/// A page for a path the console does not have.
pub fn not_found(csrf: Option<&str>) -> Markup {
    layout(
        "Not found",
        csrf,
        None,
        html! { p { a href="/console/users" { "Partners" } } },
    )
}

fn key_status(k: &KeyView) -> &'static str {
    match k.status {
        crate::domain::keys::KeyStatus::Next => "next",
        crate::domain::keys::KeyStatus::Active => "active",
        crate::domain::keys::KeyStatus::Retired => "retired",
    }
}
