//! SMART on FHIR scopes for backend services (SMART App Launch 2.x, "Scopes and Launch
//! Context"): `system/<resource type or *>.<permissions>`, the permissions either v2's
//! `c r u d s` (a non-empty subsequence, in that order) or v1's `read` (= `rs`), `write`
//! (= `cud`) and `*` (all). Patient and user contexts and granular `?param=` scopes are not
//! backend-service scopes here: they parse as nothing, so they are never granted.

/// Bits of the permission set.
const C: u8 = 1;
const R: u8 = 2;
const U: u8 = 4;
const D: u8 = 8;
const S: u8 = 16;
const ORDER: [(char, u8); 5] = [('c', C), ('r', R), ('u', U), ('d', D), ('s', S)];

/// The longest scope string read, and the most scopes in one request.
pub const MAX_SCOPE_LEN: usize = 2048;
pub const MAX_SCOPES: usize = 32;

/// One `system/` scope: a resource type (or `*`) and what may be done to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SmartScope<'a> {
    resource: &'a str,
    permissions: u8,
}

impl<'a> SmartScope<'a> {
    /// Parses one scope; `None` for anything that is not a `system/` scope this grammar allows.
    pub fn parse(text: &'a str) -> Option<SmartScope<'a>> {
        let rest = text.strip_prefix("system/")?;
        let (resource, permissions) = rest.split_once('.')?;
        let resource_ok = resource == "*"
            || (!resource.is_empty()
                && resource.len() <= 64
                && resource.starts_with(|c: char| c.is_ascii_uppercase())
                && resource.chars().all(|c| c.is_ascii_alphanumeric()));
        if !resource_ok {
            return None;
        }
        let permissions = match permissions {
            "read" => R | S,
            "write" => C | U | D,
            "*" => C | R | U | D | S,
            v2 => v2_permissions(v2)?,
        };
        Some(SmartScope {
            resource,
            permissions,
        })
    }

    /// Whether this scope allows everything `other` asks for.
    pub fn covers(&self, other: &SmartScope<'_>) -> bool {
        (self.resource == "*" || self.resource == other.resource)
            && self.permissions & other.permissions == other.permissions
    }

    /// The v2 form (`system/Observation.rs`).
    fn v2(resource: &str, permissions: u8) -> String {
        let letters: String = ORDER
            .iter()
            .filter(|(_, bit)| permissions & bit != 0)
            .map(|(letter, _)| *letter)
            .collect();
        format!("system/{resource}.{letters}")
    }
}

fn v2_permissions(text: &str) -> Option<u8> {
    let mut bits = 0u8;
    let mut next = 0usize;
    for letter in text.chars() {
        let position = ORDER[next..].iter().position(|(l, _)| *l == letter)?;
        bits |= ORDER[next + position].1;
        next += position + 1;
    }
    (bits != 0).then_some(bits)
}

/// What a client that asked for `asked` (space-separated) may have, out of `granted` (the
/// partner's registered scopes): per asked scope, the permissions some granted scope for that
/// resource (or `*`) also gives. A scope granted whole keeps the text it was asked with;
/// one granted in part is written in the v2 form; one not granted at all is left out. `None`
/// when `asked` is too long or has too many scopes.
pub fn intersect(asked: &str, granted: &[String]) -> Option<Vec<String>> {
    if asked.len() > MAX_SCOPE_LEN {
        return None;
    }
    let asked: Vec<&str> = asked.split_ascii_whitespace().collect();
    if asked.len() > MAX_SCOPES {
        return None;
    }
    let granted: Vec<SmartScope<'_>> = granted
        .iter()
        .filter_map(|g| SmartScope::parse(g))
        .collect();
    let mut out: Vec<String> = Vec::new();
    let mut push = |scope: String| {
        if !out.contains(&scope) {
            out.push(scope);
        }
    };
    for text in asked {
        let Some(wanted) = SmartScope::parse(text) else {
            continue;
        };
        if granted.iter().any(|g| g.covers(&wanted)) {
            push(text.to_string());
            continue;
        }
        if wanted.resource == "*" {
            // Every resource it was granted, as far as the asked permissions go.
            for g in &granted {
                let both = g.permissions & wanted.permissions;
                if both != 0 {
                    push(SmartScope::v2(g.resource, both));
                }
            }
        } else {
            let allowed = granted
                .iter()
                .filter(|g| g.resource == "*" || g.resource == wanted.resource)
                .fold(0u8, |bits, g| bits | g.permissions);
            let both = allowed & wanted.permissions;
            if both != 0 {
                push(SmartScope::v2(wanted.resource, both));
            }
        }
    }
    Some(out)
}

/// Whether a token's SMART scopes (space-separated) allow what `required` asks for: the
/// gateway's mapping of a SMART scope to its route scopes.
pub fn allows(token_scopes: &str, required: &SmartScope<'_>) -> bool {
    token_scopes
        .split_ascii_whitespace()
        .filter_map(SmartScope::parse)
        .any(|held| held.covers(required))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn granted(scopes: &[&str]) -> Vec<String> {
        scopes.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn the_grammar_takes_v1_and_v2_and_nothing_else() {
        let read = SmartScope::parse("system/Observation.read").unwrap();
        assert_eq!(read, SmartScope::parse("system/Observation.rs").unwrap());
        assert_eq!(
            SmartScope::parse("system/*.*").unwrap(),
            SmartScope::parse("system/*.cruds").unwrap()
        );
        for refused in [
            "patient/Observation.rs",
            "user/Observation.read",
            "system/Observation.sr",
            "system/Observation.rr",
            "system/Observation.",
            "system/Observation.x",
            "system/observation.rs",
            "system/Obs-ervation.rs",
            "system/Observation.rs?category=vital-signs",
            "system/.rs",
            "launch",
            "openid",
            "",
        ] {
            assert_eq!(SmartScope::parse(refused), None, "{refused}");
        }
    }

    #[test]
    fn a_grant_is_the_intersection_of_asked_and_registered() {
        let registered = granted(&["system/Observation.rs", "system/Patient.read"]);
        let grant = |asked| intersect(asked, &registered).unwrap();
        assert_eq!(
            grant("system/Observation.read system/Patient.r"),
            ["system/Observation.read", "system/Patient.r"]
        );
        // Asked for more than registered: the part registered, in the v2 form.
        assert_eq!(grant("system/Observation.cruds"), ["system/Observation.rs"]);
        assert_eq!(
            grant("system/*.read"),
            ["system/Observation.rs", "system/Patient.rs"]
        );
        // Nothing of it registered, or not a backend scope at all.
        assert!(grant("system/Observation.cud").is_empty());
        assert!(grant("system/Device.rs patient/Observation.rs openid").is_empty());
        assert!(grant("").is_empty());
        // A wildcard registration covers any resource, only as far as its permissions go.
        let wildcard = granted(&["system/*.rs"]);
        assert_eq!(
            intersect("system/Device.read system/Device.write", &wildcard).unwrap(),
            ["system/Device.read"]
        );
        // Bounded.
        assert_eq!(
            intersect(&"system/Patient.r ".repeat(33), &registered),
            None
        );
        assert_eq!(intersect(&"x".repeat(MAX_SCOPE_LEN + 1), &registered), None);
    }

    #[test]
    fn a_route_mapping_needs_a_token_scope_that_covers_it() {
        let observations = SmartScope::parse("system/Observation.rs").unwrap();
        assert!(allows("system/Observation.read", &observations));
        assert!(allows("system/*.rs system/Patient.c", &observations));
        assert!(!allows("system/Observation.r", &observations));
        assert!(!allows("system/Patient.rs", &observations));
        assert!(!allows("patient/Observation.rs", &observations));
    }
}
