//! What a login is made of: which client a request counts as
//! ([`client`]), the password schemes ([`password`]) and the checks that
//! cost the same whoever the user is ([`login_check`]), the pool that runs Argon2id
//! ([`hash_pool`]), and the per-key limits that slow guessing and bound
//! what a partner may write ([`throttle`], [`rate_limit`]).

pub mod client;
pub mod hash_pool;
pub mod login_check;
pub mod password;
pub mod per_key;
pub mod rate_limit;
pub mod throttle;
