//! Canonical JSON as TUF signs it (securesystemslib's `encode_canonical`, the OLPC form):
//! object keys sorted by code point, no whitespace, strings with only `\` and `"` escaped,
//! integers only. A signature covers these bytes of the `signed` object, whatever spacing or
//! key order the file itself uses.

use serde_json::Value;

/// Why a value has no canonical form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("metadata holds a number canonical JSON cannot encode (only integers)")]
pub struct NotCanonical;

/// The canonical bytes of `value`.
pub fn encode(value: &Value) -> Result<Vec<u8>, NotCanonical> {
    let mut out = Vec::new();
    write(value, &mut out)?;
    Ok(out)
}

fn write(value: &Value, out: &mut Vec<u8>) -> Result<(), NotCanonical> {
    match value {
        Value::Null => out.extend_from_slice(b"null"),
        Value::Bool(true) => out.extend_from_slice(b"true"),
        Value::Bool(false) => out.extend_from_slice(b"false"),
        Value::Number(number) => {
            if let Some(n) = number.as_i64() {
                out.extend_from_slice(n.to_string().as_bytes());
            } else if let Some(n) = number.as_u64() {
                out.extend_from_slice(n.to_string().as_bytes());
            } else {
                return Err(NotCanonical);
            }
        }
        Value::String(text) => string(text, out),
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write(item, out)?;
            }
            out.push(b']');
        }
        Value::Object(map) => {
            // serde_json's map (without `preserve_order`) iterates in key order, which for
            // UTF-8 strings is code-point order, as Python's `sorted` gives.
            out.push(b'{');
            for (i, (key, item)) in map.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                string(key, out);
                out.push(b':');
                write(item, out)?;
            }
            out.push(b'}');
        }
    }
    Ok(())
}

fn string(text: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    for byte in text.bytes() {
        if matches!(byte, b'"' | b'\\') {
            out.push(b'\\');
        }
        out.push(byte);
    }
    out.push(b'"');
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn matches_securesystemslib() {
        // Expected bytes from securesystemslib 1.x `encode_canonical` on the same object.
        let value: Value = serde_json::from_str(
            r#"{"b": [1, -2, true, null], "a": "q\"uo\\te\n", "é": {"z": 0, "y": "ü"}}"#,
        )
        .unwrap();
        assert_eq!(
            String::from_utf8(encode(&value).unwrap()).unwrap(),
            "{\"a\":\"q\\\"uo\\\\te\n\",\"b\":[1,-2,true,null],\"é\":{\"y\":\"ü\",\"z\":0}}"
        );
        assert_eq!(encode(&serde_json::json!({"x": 1.5})), Err(NotCanonical));
    }
}
