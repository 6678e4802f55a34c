//! Android system properties, from property files (`build.prop`, `default.prop`) and from
//! `getprop` output. Bounded parsers for hostile text; the first definition of a key wins,
//! as Android's init loads `ro.*` properties once.

use std::collections::BTreeMap;

/// The most properties kept.
pub const MAX_PROPS: usize = 10_000;
const MAX_KEY: usize = 256;
const MAX_VALUE: usize = 4096;

/// Properties by name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Props(BTreeMap<String, String>);

impl Props {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn insert(&mut self, key: &str, value: &str) {
        let (key, value) = (key.trim(), value.trim());
        if key.is_empty()
            || key.len() > MAX_KEY
            || value.len() > MAX_VALUE
            || self.0.len() >= MAX_PROPS
            || self.0.contains_key(key)
        {
            return;
        }
        self.0.insert(key.to_string(), value.to_string());
    }

    /// Adds `key=value` lines (`#` comments, blank lines and `import` lines skipped).
    pub fn add_prop_file(&mut self, text: &str) {
        for line in text.lines() {
            let line = line.trim();
            if line.starts_with('#') || line.starts_with("import ") {
                continue;
            }
            if let Some((key, value)) = line.split_once('=') {
                self.insert(key, value);
            }
        }
    }

    /// Adds `getprop` output: `[key]: [value]` per line.
    pub fn add_getprop(&mut self, text: &str) {
        for line in text.lines() {
            let Some(rest) = line.trim().strip_prefix('[') else {
                continue;
            };
            let Some((key, rest)) = rest.split_once("]: [") else {
                continue;
            };
            if let Some(value) = rest.strip_suffix(']') {
                self.insert(key, value);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_prop_and_getprop_text() {
        let mut props = Props::default();
        props.add_prop_file(
            "# begin build properties\nro.build.tags=test-keys\nro.debuggable = 1\nimport /vendor/x.prop\n\nbroken line\nro.build.tags=release-keys\n",
        );
        props.add_getprop(
            "[ro.kernel.qemu]: [1]\n[ro.hardware]: [ranchu]\n[ro.debuggable]: [0]\nnot a prop\n[half]: [open\n",
        );
        assert_eq!(props.get("ro.build.tags"), Some("test-keys"));
        assert_eq!(props.get("ro.debuggable"), Some("1"));
        assert_eq!(props.get("ro.kernel.qemu"), Some("1"));
        assert_eq!(props.get("ro.hardware"), Some("ranchu"));
        assert_eq!(props.get("half"), None);
        assert_eq!(props.len(), 4);
    }

    #[test]
    fn bounded() {
        let mut props = Props::default();
        let text: String = (0..MAX_PROPS + 50).map(|i| format!("k{i}=v\n")).collect();
        props.add_prop_file(&text);
        assert_eq!(props.len(), MAX_PROPS);
        let mut long = Props::default();
        long.add_prop_file(&format!(
            "k={}\n{}=v\n",
            "v".repeat(MAX_VALUE + 1),
            "k".repeat(300)
        ));
        assert!(long.is_empty());
    }
}
