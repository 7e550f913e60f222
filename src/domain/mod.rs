//! The domain values: users and the account-state rules ([`user`]), the
//! signing keyring ([`keys`]), the small values an operator sets
//! ([`values`]), and the declarative user document ([`declaration`]).
//! Knows no HTTP and no storage engine.

pub mod declaration;
pub mod keys;
pub mod user;
pub mod values;
