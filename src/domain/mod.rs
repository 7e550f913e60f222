//! The domain values: users and the account-state rules ([`user`]), the
//! signing keyring ([`keys`]), the small values an operator sets
//! ([`values`]), a user's secrets ([`secrets`]) and the rules of their rotation ([`rotation`]), a user's login policy ([`networks`], [`token_rate`]), and the declarative user document ([`declaration`]).
//! Knows no HTTP and no storage engine.

pub mod declaration;
pub mod keys;
pub mod networks;
pub mod rotation;
pub mod secrets;
pub mod token_rate;
pub mod user;
pub mod values;
