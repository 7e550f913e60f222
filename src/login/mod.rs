//! What a login is made of: which client a request counts as
//! ([`client`]), the password schemes and the attempt that costs the same
//! whoever the user is ([`password`]), the pool that runs Argon2id
//! ([`hash_pool`]), and the per-key limits that slow guessing and bound
//! what a partner may write ([`throttle`], [`rate_limit`]).

pub mod client;
pub mod hash_pool;
pub mod password;
pub mod per_key;
pub mod rate_limit;
pub mod throttle;
