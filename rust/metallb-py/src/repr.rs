//! Text for `__repr__`: strings, booleans and optional strings as Python's `repr` shows them.

/// A string as a Python literal that reads back as it, for the plain names and addresses the classes hold:
/// single-quoted, with the backslash and the quote escaped (control characters are not).
pub fn py_str(s: &str) -> String {
    format!("'{}'", s.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// An optional string as Python's repr shows it: `None` or the quoted string.
pub fn py_optional_str(s: Option<&str>) -> String {
    s.map_or_else(|| "None".to_string(), py_str)
}

pub fn py_bool(b: bool) -> &'static str {
    if b {
        "True"
    } else {
        "False"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_read_back_as_python_literals() {
        assert_eq!(py_str("eth0"), "'eth0'");
        assert_eq!(py_str(r"it's a\b"), r"'it\'s a\\b'");
        assert_eq!(py_optional_str(None), "None");
        assert_eq!(py_optional_str(Some("lab")), "'lab'");
        assert_eq!((py_bool(true), py_bool(false)), ("True", "False"));
    }
}
