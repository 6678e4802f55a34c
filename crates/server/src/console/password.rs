//! Operators' passwords: Argon2id (RFC 9106) with OWASP's minimum parameters (19 MiB, two
//! passes, one lane), a random salt, stored as a PHC string. Hashing and checking take tens of
//! milliseconds of CPU and memory on purpose, so they run on the blocking pool, and a sign-in
//! is rate-limited before it gets here.

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::{Algorithm, Argon2, Params, Version};

/// Parameters a stored hash may ask for at most: a hash is checked with its own parameters, so
/// a row edited to ask for gigabytes must not be obeyed.
const MAX_MEMORY_KIB: u32 = 64 * 1024;
const MAX_PASSES: u32 = 8;
const MAX_LANES: u32 = 4;

fn argon2() -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::default())
}

/// The PHC string of a new hash of `password`.
pub(crate) fn hash(password: &str) -> Result<String, argon2::password_hash::Error> {
    Ok(argon2().hash_password(password.as_bytes())?.to_string())
}

/// Whether `password` matches `stored`; false too for a hash that is not Argon2id or asks for
/// more than [`MAX_MEMORY_KIB`], [`MAX_PASSES`] or [`MAX_LANES`].
pub(crate) fn matches(password: &str, stored: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(stored) else {
        return false;
    };
    let Ok(params) = Params::try_from(&parsed) else {
        return false;
    };
    if parsed.algorithm != Algorithm::Argon2id.ident()
        || params.m_cost() > MAX_MEMORY_KIB
        || params.t_cost() > MAX_PASSES
        || params.p_cost() > MAX_LANES
    {
        return false;
    }
    argon2()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hash_admits_its_password_only() {
        let stored = hash("correct horse battery").unwrap();
        assert!(
            stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{stored}"
        );
        assert!(matches("correct horse battery", &stored));
        assert!(!matches("correct horse batterY", &stored));
        assert!(!matches("", &stored));
        // Each hash has its own salt.
        assert_ne!(stored, hash("correct horse battery").unwrap());
    }

    #[test]
    fn forged_and_greedy_hashes_admit_nothing() {
        let stored = hash("correct horse battery").unwrap();
        let greedy = stored.replace("m=19456", "m=4194304");
        let argon2i = stored.replace("$argon2id$", "$argon2i$");
        let fewer_passes = stored.replace("t=2", "t=1");
        for forged in [
            greedy.as_str(),
            argon2i.as_str(),
            fewer_passes.as_str(),
            "",
            "$argon2id$",
            "plain text",
        ] {
            assert!(!matches("correct horse battery", forged), "{forged}");
        }
    }
}
