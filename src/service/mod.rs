//! The use cases, one file per job: issuing tokens (`issue`), verifying
//! them (`verify`), users (`users`), their secrets' rotation (`rotation`) and evidence of use (`last_used`), revocations (`revocations`), signing
//! keys (`keys`), export and import (`backup`), and their errors
//! (`error`). Knows nothing of HTTP and sees storage only through the
//! [`Store`](crate::store::Store) trait. Read-mostly state every request reads — the keyring
//! with its verified-token cache — is an `arc-swap` snapshot replaced
//! right after the commit that changed it, under one lock, so no request
//! sees state older than an acknowledged write.

mod apply;
mod backup;
mod error;
mod feed;
mod issue;
mod keys;
mod last_used;
mod revocations;
mod rotation;
mod running;
mod secrets;
mod users;
mod verify;

pub use error::{AdminError, InternalError, IssueError, VerifyError};
pub use issue::{BUSY_PAUSE, IssuedToken, LoginProof, new_jti};
pub use keys::{JWKS_MAX_AGE_SECS, KeyView};
pub use last_used::{FLUSH_EVERY, PendingUses};
pub use revocations::{RevokeTarget, SELF_REVOKE_BURST, SELF_REVOKE_PER_SEC};
pub use rotation::Rotated;
pub use running::{Pruned, Service, Settings};
pub use secrets::SecretUse;
pub use users::{NewUser, UserPatch};
pub use verify::VerifiedToken;

use error::crypto;

#[cfg(test)]
mod equal_work_tests;
#[cfg(test)]
mod tests;
