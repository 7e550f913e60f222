//! Property tests (proptest, stable Rust) for every parser: the JWT codec,
//! the credentials parser, username validation, RFC 3339 and durations.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64;
use ed25519_dalek::SigningKey;
use proptest::prelude::*;
use tessera::domain::user::Username;
use tessera::http::form;
use tessera::token::{self, Claims};

const KID: &str = "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k";

fn key() -> SigningKey {
    SigningKey::from_bytes(&[42; 32])
}

fn claims_strategy() -> impl Strategy<Value = Claims> {
    (
        any::<String>(),
        any::<String>(),
        0u64..u64::MAX / 2,
        1u64..u64::MAX / 2,
        "[A-Za-z0-9_-]{22}",
        proptest::option::of(any::<u64>()),
    )
        .prop_map(|(iss, sub, iat, ttl, jti, generation)| Claims {
            iss,
            sub,
            iat,
            exp: iat + ttl,
            jti,
            generation,
            scope: None,
            cnf: None,
        })
}

fn verify_at(t: &str, iss: &str, now: u64) -> Result<Claims, token::TokenError> {
    let vk = key().verifying_key();
    token::verify(t, |kid| (kid == KID).then_some(&vk), iss, now, 0)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn any_claims_round_trip(c in claims_strategy()) {
        let t = token::encode(&c, &token::encoded_header(KID), &key());
        if t.len() <= token::MAX_TOKEN_LEN {
            prop_assert_eq!(verify_at(&t, &c.iss, c.iat), Ok(c));
        } else {
            prop_assert_eq!(verify_at(&t, &c.iss, c.iat), Err(token::TokenError::Malformed));
        }
    }

    #[test]
    fn any_single_byte_mutation_is_rejected(
        c in claims_strategy().prop_filter("fits", |c| c.iss.len() + c.sub.len() < 1500),
        pos in any::<prop::sample::Index>(),
        replacement in 0x21u8..0x7f,
    ) {
        let t = token::encode(&c, &token::encoded_header(KID), &key());
        let i = pos.index(t.len());
        prop_assume!(t.as_bytes()[i] != replacement);
        let mut bytes = t.into_bytes();
        bytes[i] = replacement;
        let mutated = String::from_utf8(bytes).unwrap();
        prop_assert!(verify_at(&mutated, &c.iss, c.iat).is_err(), "accepted {}", mutated);
    }

    #[test]
    fn arbitrary_text_never_verifies_or_panics(s in any::<String>()) {
        prop_assert!(verify_at(&s, "tessera", 1).is_err());
    }

    #[test]
    fn arbitrary_three_part_base64_never_verifies(a in any::<Vec<u8>>(), b in any::<Vec<u8>>(), c in any::<Vec<u8>>()) {
        let t = format!("{}.{}.{}", B64.encode(a), B64.encode(b), B64.encode(c));
        prop_assert!(verify_at(&t, "tessera", 1).is_err());
    }

    #[test]
    fn credentials_merge_query_and_form_case_insensitively(
        user in any::<String>(),
        pass in any::<String>(),
        decoy in any::<String>(),
        upper_user in any::<bool>(),
        upper_pass in any::<bool>(),
        placement in 0u8..3,
    ) {
        let enc = |v: &str| form_urlencoded::byte_serialize(v.as_bytes()).collect::<String>();
        let uname = if upper_user { "USERNAME" } else { "username" };
        let pname = if upper_pass { "Password" } else { "password" };
        let (query, body) = match placement {
            0 => (format!("{uname}={}&{pname}={}", enc(&user), enc(&pass)), String::new()),
            1 => (String::new(), format!("{pname}={}&{uname}={}", enc(&pass), enc(&user))),
            _ => (format!("{uname}={}&{pname}={}", enc(&decoy), enc(&decoy)), format!("{uname}={}&{pname}={}", enc(&user), enc(&pass))),
        };
        let c = form::credentials(&query, &body).unwrap();
        prop_assert_eq!(c.username.as_deref(), Some(user.as_str()));
        prop_assert_eq!(c.password.as_deref(), Some(pass.as_str()));
    }

    #[test]
    fn form_parser_never_panics(q in any::<String>(), b in any::<String>()) {
        let _ = form::credentials(&q, &b);
    }

    #[test]
    fn valid_usernames_are_accepted(name in "[A-Za-z0-9._@-]{1,128}") {
        let parsed = Username::parse(&name).unwrap();
        prop_assert_eq!(parsed.as_str(), name.as_str());
    }

    #[test]
    fn usernames_with_other_characters_are_refused(
        prefix in "[A-Za-z0-9._@-]{0,60}",
        bad in any::<char>().prop_filter("outside the set", |c| !(c.is_ascii_alphanumeric() || "._@-".contains(*c))),
        suffix in "[A-Za-z0-9._@-]{0,60}",
    ) {
        let name = format!("{prefix}{bad}{suffix}");
        prop_assert!(Username::parse(&name).is_err());
    }

    #[test]
    fn rfc3339_round_trips(secs in 0u64..253_402_300_799) {
        let text = tessera::runtime::time::rfc3339(secs);
        prop_assert_eq!(tessera::runtime::time::parse_rfc3339(&text), Ok(secs));
    }

    #[test]
    fn rfc3339_parser_never_panics(s in any::<String>()) {
        let _ = tessera::runtime::time::parse_rfc3339(&s);
    }

    #[test]
    fn durations_parse(n in 1u64..10_000_000, unit in prop::sample::select(vec![("s", 1u64), ("m", 60), ("h", 3600), ("d", 86400)])) {
        let d = tessera::runtime::time::parse_duration(&format!("{n}{}", unit.0)).unwrap();
        prop_assert_eq!(d.as_secs(), n * unit.1);
    }

    #[test]
    fn duration_parser_never_panics(s in any::<String>()) {
        let _ = tessera::runtime::time::parse_duration(&s);
    }
}
