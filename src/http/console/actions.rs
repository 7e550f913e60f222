//! What each console route does: the route table of [`handle`], and one
//! function per page or action, each calling the service function the
//! admin API calls for the same change.

use warp::http::{Method, StatusCode};
use warp::reply::Response;
use zeroize::Zeroizing;

use super::pages::{self, CSRF_FIELD, NewPartnerForm};
use super::session::{Flash, Live};
use super::{Request, forbidden, guard, page, see_other, stylesheet, with_session_cookie};
use crate::domain::networks::AllowedNetworks;
use crate::domain::secrets::Grace;
use crate::domain::token_rate::TokenRate;
use crate::domain::user::{AccountStatus, User, Username};
use crate::domain::values::Note;
use crate::http::form;
use crate::http::reply::with_retry_after;
use crate::http::secrets::SecretRefusal;
use crate::http::state::AppState;
use crate::runtime::time;
use crate::service::{AdminError, NewUser, SecretUse, UserPatch};
use tessera_verify::scope::Scopes;

/// Partners per page of the list.
const PAGE: usize = 50;
/// Audit events the filter looks through (the newest).
const AUDIT_WINDOW: usize = 1000;
/// Audit events shown at most.
const AUDIT_SHOWN: usize = 200;

/// The pairs of a form body or a query string (malformed: none).
struct Fields(Vec<(String, String)>);

impl Fields {
    fn parse(raw: &str) -> Self {
        Self(form::parse_pairs(raw).unwrap_or_default())
    }

    /// The field's value ("" when absent; the last one wins).
    fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }
}

/// The status of a refused action, as the admin API answers it.
fn status_of(e: &AdminError) -> StatusCode {
    match e {
        AdminError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
        AdminError::NotFound(_) => StatusCode::NOT_FOUND,
        AdminError::Conflict(_) => StatusCode::CONFLICT,
        AdminError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        AdminError::StorageFull(_) => StatusCode::INSUFFICIENT_STORAGE,
        AdminError::RateLimited(_) => StatusCode::TOO_MANY_REQUESTS,
        AdminError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// What an operator reads about a refusal (an internal failure is logged,
/// not shown).
fn message_of(e: &AdminError) -> String {
    match e {
        AdminError::Internal(inner) => {
            tracing::error!(error = %inner, "console action failed");
            "internal error; see the server log".to_owned()
        }
        e => e.to_string(),
    }
}

/// Routes one console request.
pub(super) async fn handle(state: &AppState, req: Request) -> Response {
    let now = state.service.now();
    let rest = req.path.strip_prefix("/console").unwrap_or("");
    let segments: Vec<&str> = rest.split('/').filter(|s| !s.is_empty()).collect();
    let live = guard::session_cookie(&req.headers).and_then(|c| state.console.find(c, now));
    match (&req.method, segments.as_slice()) {
        (&Method::GET, []) if rest.is_empty() => return see_other("/console/"),
        (&Method::GET, ["console.css"]) => return stylesheet(),
        (&Method::GET, []) if live.is_some() => return see_other("/console/users"),
        (&Method::GET, []) => return page(StatusCode::OK, pages::sign_in(None)),
        (&Method::POST, ["sign-in"]) => return sign_in(state, &req, now),
        _ => {}
    }
    let Some(live) = live else {
        // No live session: pages lead to the sign-in form; a POST is refused.
        return if req.method == Method::GET {
            see_other("/console/")
        } else {
            forbidden(None)
        };
    };
    let csrf = live.csrf.as_str();
    let form = Fields::parse(std::str::from_utf8(&req.body).unwrap_or(""));
    if req.method == Method::POST
        && !(guard::same_origin(&req.headers) && live.csrf_matches(form.get(CSRF_FIELD)))
    {
        return forbidden(Some(&live));
    }
    let query = Fields::parse(&req.query);
    match (&req.method, segments.as_slice()) {
        (&Method::POST, ["sign-out"]) => {
            state.console.end(&live);
            with_session_cookie(see_other("/console/"), None, state.console_secure_cookie)
        }
        (&Method::GET, ["users"]) => partners(state, csrf, &query),
        (&Method::GET, ["users", "new"]) => page(
            StatusCode::OK,
            pages::new_partner(csrf, &NewPartnerForm::default(), None),
        ),
        (&Method::POST, ["users"]) => create(state, &live, &form).await,
        (&Method::GET, ["users", name]) => partner(state, &live, name, None, StatusCode::OK),
        (&Method::POST, ["users", name]) => save(state, &live, name, &form).await,
        (&Method::POST, ["users", name, "status"]) => set_status(state, &live, name, &form).await,
        (&Method::POST, ["users", name, "revoke"]) => revoke(state, &live, name).await,
        (&Method::POST, ["users", name, "rotate"]) => rotate(state, &live, name, &form).await,
        (&Method::GET, ["users", name, "delete"]) => match state.service.user(&parse_name(name)) {
            Ok(u) => page(
                StatusCode::OK,
                pages::confirm_delete(csrf, u.username.as_str()),
            ),
            Err(e) => not_found_or(state, &live, &e),
        },
        (&Method::POST, ["users", name, "delete"]) => delete(state, &live, name).await,
        (&Method::GET, ["keys"]) => keys(state, csrf, None, StatusCode::OK),
        (&Method::POST, ["keys", "rotate"]) => match state.service.rotate_keys(false).await {
            Ok(_) => see_other("/console/keys"),
            Err(e) => keys(state, csrf, Some(&message_of(&e)), status_of(&e)),
        },
        (&Method::GET, ["audit"]) => audit(state, csrf, &query),
        _ => page(StatusCode::NOT_FOUND, pages::not_found(Some(csrf))),
    }
}

/// A username from the path; one that breaks the rules names no user.
fn parse_name(segment: &str) -> Username {
    let decoded = form::percent_decode(segment, false).unwrap_or_default();
    Username::parse(&decoded).unwrap_or_else(|_| {
        Username::parse("-").unwrap_or_else(|_| unreachable!("\"-\" is a valid username"))
    })
}

fn not_found_or(state: &AppState, live: &Live, e: &AdminError) -> Response {
    let _ = state;
    page(
        status_of(e),
        pages::layout(
            "Not found",
            Some(&live.csrf),
            Some(&message_of(e)),
            maud::html! {},
        ),
    )
}

/// The sign-in form's POST: the admin token, counted under the admin
/// token's throttle like a wrong `Authorization` header.
fn sign_in(state: &AppState, req: &Request, now: u64) -> Response {
    if !guard::same_origin(&req.headers) {
        return forbidden(None);
    }
    let form = Fields::parse(std::str::from_utf8(&req.body).unwrap_or(""));
    let client = AppState::admin_client_key(req.peer);
    let token = Zeroizing::new(form.get("token").to_owned());
    let presented = (!token.is_empty()).then_some(token.as_str());
    match state.check_secret_text(SecretUse::AdminApi, &client, presented) {
        Ok(()) => {
            let cookie = state.console.start(now);
            tracing::info!(client = %req.peer.ip(), "console sign-in");
            with_session_cookie(
                see_other("/console/users"),
                Some(&cookie),
                state.console_secure_cookie,
            )
        }
        Err(SecretRefusal::Throttled(wait)) => with_retry_after(
            page(
                StatusCode::TOO_MANY_REQUESTS,
                pages::sign_in(Some(&format!(
                    "Too many wrong tokens from this address; try again in {} s.",
                    crate::http::reply::retry_after_secs(wait)
                ))),
            ),
            wait,
        ),
        Err(SecretRefusal::Absent | SecretRefusal::Wrong) => page(
            StatusCode::UNAUTHORIZED,
            pages::sign_in(Some(
                "That is not the admin token (the admin token file of the server's data dir).",
            )),
        ),
    }
}

/// `Partners`: a page of users whose name starts with `search`, after
/// `after`, read by the username index (no scan of the rest).
fn partners(state: &AppState, csrf: &str, query: &Fields) -> Response {
    let search = query.get("search").trim();
    let after = query.get("after");
    let mut users: Vec<User> = Vec::new();
    let start = if after.is_empty() {
        // Names at or after the prefix: the prefix itself, then the rest.
        if let Ok(exact) = Username::parse(search)
            && let Ok(u) = state.service.user(&exact)
        {
            users.push(u);
        }
        (!search.is_empty()).then_some(search)
    } else {
        Some(after)
    };
    let listed = match state.service.list_users(start, PAGE + 1) {
        Ok(p) => p.items,
        Err(e) => {
            return page(
                status_of(&e),
                pages::layout(
                    "Partners",
                    Some(csrf),
                    Some(&message_of(&e)),
                    maud::html! {},
                ),
            );
        }
    };
    users.extend(
        listed
            .into_iter()
            .take_while(|u| u.username.as_str().starts_with(search)),
    );
    let next = (users.len() > PAGE).then(|| users[PAGE - 1].username.to_string());
    users.truncate(PAGE);
    page(
        StatusCode::OK,
        pages::partners(csrf, &users, search, next.as_deref()),
    )
}

/// Scopes typed as a space- or comma-separated list.
fn scopes_field(text: &str) -> Result<Scopes, String> {
    Scopes::new(text.split([' ', ',']).filter(|s| !s.is_empty()))
        .map_err(|e| format!("Scopes: {e}"))
}

fn expires_field(text: &str) -> Result<Option<u64>, String> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    time::parse_rfc3339(text)
        .map(Some)
        .map_err(|e| format!("Expires at: {e}"))
}

fn note_field(text: &str) -> Result<Option<String>, String> {
    if text.is_empty() {
        return Ok(None);
    }
    Note::parse(text.to_owned())
        .map(|n| Some(n.into_inner()))
        .map_err(|e| format!("Note {e}"))
}

/// `Create` on `New partner`: a generated password, shown once on the new
/// partner's page; a refusal keeps what was typed.
async fn create(state: &AppState, live: &Live, form: &Fields) -> Response {
    let typed = NewPartnerForm {
        username: form.get("username").trim().to_owned(),
        note: form.get("note").to_owned(),
        scopes: form.get("scopes").to_owned(),
        expires_at: form.get("expires_at").to_owned(),
    };
    let refused = |status: StatusCode, message: &str| {
        page(
            status,
            pages::new_partner(&live.csrf, &typed, Some(message)),
        )
    };
    let fields = (|| {
        Ok::<_, String>((
            note_field(&typed.note)?,
            scopes_field(&typed.scopes)?,
            expires_field(&typed.expires_at)?,
        ))
    })();
    let (note, scopes, expires_at) = match fields {
        Ok(f) => f,
        Err(m) => return refused(StatusCode::UNPROCESSABLE_ENTITY, &m),
    };
    let created = state
        .service
        .create_user(NewUser {
            username: typed.username.clone(),
            note,
            scopes,
            expires_at,
            ..Default::default()
        })
        .await;
    match created {
        Ok((user, password)) => {
            if let Some(password) = password {
                state.console.set_flash(
                    live,
                    Flash {
                        username: user.username.to_string(),
                        password,
                    },
                );
            }
            see_other(&format!("/console/users/{}", user.username))
        }
        Err(e) => refused(status_of(&e), &message_of(&e)),
    }
}

/// A partner's page, with the one-time password if one waits for it.
fn partner(
    state: &AppState,
    live: &Live,
    name: &str,
    error: Option<&str>,
    status: StatusCode,
) -> Response {
    match state.service.user(&parse_name(name)) {
        Ok(user) => {
            let flash = state.console.take_flash(live, user.username.as_str());
            page(
                status,
                pages::partner(
                    &live.csrf,
                    &user,
                    state.service.now(),
                    flash.as_deref().map(String::as_str),
                    error,
                ),
            )
        }
        Err(e) => not_found_or(state, live, &e),
    }
}

/// A partner's page again with a refused field's message (422).
fn invalid(state: &AppState, live: &Live, name: &str, message: &str) -> Response {
    partner(
        state,
        live,
        name,
        Some(message),
        StatusCode::UNPROCESSABLE_ENTITY,
    )
}

/// After an action on a partner: back to its page, or the page with the
/// refusal.
fn after_action(
    state: &AppState,
    live: &Live,
    name: &str,
    done: Result<(), AdminError>,
) -> Response {
    match done {
        Ok(()) => see_other(&format!("/console/users/{}", parse_name(name))),
        Err(e) => partner(state, live, name, Some(&message_of(&e)), status_of(&e)),
    }
}

/// `Save`: the fields that differ from the stored ones, as one PATCH.
async fn save(state: &AppState, live: &Live, name: &str, form: &Fields) -> Response {
    let username = parse_name(name);
    let current = match state.service.user(&username) {
        Ok(u) => u,
        Err(e) => return not_found_or(state, live, &e),
    };
    let patch = (|| {
        let scopes = scopes_field(form.get("scopes"))?;
        let note = note_field(form.get("note"))?;
        let networks: Vec<&str> = form
            .get("allowed_networks")
            .split([' ', ','])
            .filter(|s| !s.is_empty())
            .collect();
        let networks =
            AllowedNetworks::parse(&networks).map_err(|e| format!("Allowed networks: {e}"))?;
        let rate = match form.get("token_rate").trim() {
            "" => None,
            r => Some(TokenRate::parse(r).map_err(|e| format!("Token rate: {e}"))?),
        };
        let expires_at = expires_field(form.get("expires_at"))?;
        // An unchecked box sends nothing.
        let dpop_required = form.get("dpop_required") == "on";
        Ok::<_, String>(UserPatch {
            scopes: (scopes != current.scopes).then_some(scopes),
            note: (note != current.note).then_some(note),
            allowed_networks: (networks != current.allowed_networks).then_some(networks),
            token_rate: (rate != current.token_rate).then_some(rate),
            expires_at: (expires_at != current.expires_at).then_some(expires_at),
            dpop_required: (dpop_required != current.dpop_required).then_some(dpop_required),
            ..Default::default()
        })
    })();
    let patch = match patch {
        Ok(p) => p,
        Err(m) => {
            return invalid(state, live, name, &m);
        }
    };
    if patch.is_empty() {
        return see_other(&format!("/console/users/{username}"));
    }
    let done = state.service.patch_user(&username, patch).await.map(drop);
    after_action(state, live, name, done)
}

/// `Disable` / `Enable`.
async fn set_status(state: &AppState, live: &Live, name: &str, form: &Fields) -> Response {
    let status = match form.get("status") {
        "active" => AccountStatus::Active,
        "disabled" => AccountStatus::Disabled,
        _ => {
            return invalid(state, live, name, "unknown status");
        }
    };
    let patch = UserPatch {
        status: Some(status),
        ..Default::default()
    };
    let done = state
        .service
        .patch_user(&parse_name(name), patch)
        .await
        .map(drop);
    after_action(state, live, name, done)
}

/// `Revoke all tokens`.
async fn revoke(state: &AppState, live: &Live, name: &str) -> Response {
    let done = state.service.revoke_user_tokens(&parse_name(name)).await;
    after_action(state, live, name, done)
}

/// `Rotate secret` with its `Grace period`: the new password shown once.
async fn rotate(state: &AppState, live: &Live, name: &str, form: &Fields) -> Response {
    let grace = match form.get("grace").trim() {
        "" => Grace::default(),
        text => match Grace::parse(text) {
            Ok(g) => g,
            Err(e) => {
                let m = format!("Grace period: {e}");
                return invalid(state, live, name, &m);
            }
        },
    };
    let username = parse_name(name);
    let done = match state.service.rotate_secret(&username, None, grace).await {
        Ok(rotated) => {
            if let Some(password) = rotated.password {
                state.console.set_flash(
                    live,
                    Flash {
                        username: username.to_string(),
                        password,
                    },
                );
            }
            Ok(())
        }
        Err(e) => Err(e),
    };
    after_action(state, live, name, done)
}

/// `Confirm delete`.
async fn delete(state: &AppState, live: &Live, name: &str) -> Response {
    match state.service.delete_user(&parse_name(name)).await {
        Ok(()) => see_other("/console/users"),
        Err(e) => partner(state, live, name, Some(&message_of(&e)), status_of(&e)),
    }
}

/// `Keys`, with a refusal (rotation too soon) when there is one.
fn keys(state: &AppState, csrf: &str, error: Option<&str>, status: StatusCode) -> Response {
    match state.service.keys() {
        Ok(keys) => page(status, pages::keys(csrf, &keys, error)),
        Err(e) => page(
            status_of(&e),
            pages::layout("Keys", Some(csrf), Some(&message_of(&e)), maud::html! {}),
        ),
    }
}

/// `Audit`: the newest events whose target is `Target` and whose action
/// starts with `Action` (either empty: any).
fn audit(state: &AppState, csrf: &str, query: &Fields) -> Response {
    let (target, action) = (query.get("target").trim(), query.get("action").trim());
    match state.service.audit_events(None, AUDIT_WINDOW) {
        Ok(events) => {
            let shown: Vec<_> = events
                .into_iter()
                .filter(|e| target.is_empty() || e.target == target)
                .filter(|e| e.action.starts_with(action))
                .take(AUDIT_SHOWN)
                .collect();
            page(StatusCode::OK, pages::audit(csrf, &shown, target, action))
        }
        Err(e) => page(
            status_of(&e),
            pages::layout("Audit", Some(csrf), Some(&message_of(&e)), maud::html! {}),
        ),
    }
}
