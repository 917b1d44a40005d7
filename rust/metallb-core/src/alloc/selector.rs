//! Kubernetes label selectors (matchLabels + matchExpressions), as pools use them to pick services.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use super::ConfigError;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operator {
    In,
    NotIn,
    Exists,
    DoesNotExist,
}

impl Operator {
    pub fn parse(name: &str) -> Option<Operator> {
        match name {
            "In" => Some(Operator::In),
            "NotIn" => Some(Operator::NotIn),
            "Exists" => Some(Operator::Exists),
            "DoesNotExist" => Some(Operator::DoesNotExist),
            _ => None,
        }
    }
}

impl fmt::Display for Operator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Requirement {
    pub key: String,
    pub operator: Operator,
    pub values: Vec<String>,
}

/// A validated selector. An empty selector matches everything, as in Kubernetes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct LabelSelector {
    pub match_labels: BTreeMap<String, String>,
    pub match_expressions: Vec<Requirement>,
}

impl LabelSelector {
    /// `path` names the selector in errors, e.g. `pool "blue": serviceAllocation.namespaceSelectors[0]`.
    pub fn new(
        path: &str,
        match_labels: BTreeMap<String, String>,
        match_expressions: Vec<(String, String, Vec<String>)>,
    ) -> Result<LabelSelector, ConfigError> {
        if let Some(key) = match_labels.keys().find(|k| k.is_empty()) {
            return Err(ConfigError::new(format!("{path}.matchLabels"), format!("empty label key {key:?}")));
        }
        let mut requirements = Vec::with_capacity(match_expressions.len());
        for (i, (key, operator, values)) in match_expressions.into_iter().enumerate() {
            let here = format!("{path}.matchExpressions[{i}]");
            if key.is_empty() {
                return Err(ConfigError::new(here, "key must not be empty"));
            }
            let op = Operator::parse(&operator).ok_or_else(|| {
                ConfigError::new(
                    format!("{here}.operator"),
                    format!("unknown operator {operator:?}; expected In, NotIn, Exists or DoesNotExist"),
                )
            })?;
            let needs_values = matches!(op, Operator::In | Operator::NotIn);
            if needs_values == values.is_empty() {
                let rule = if needs_values { "needs at least one value" } else { "takes no values" };
                return Err(ConfigError::new(format!("{here}.values"), format!("operator {op} {rule}")));
            }
            requirements.push(Requirement { key, operator: op, values });
        }
        Ok(LabelSelector { match_labels, match_expressions: requirements })
    }

    pub fn matches(&self, labels: &HashMap<String, String>) -> bool {
        self.match_labels.iter().all(|(k, v)| labels.get(k) == Some(v))
            && self.match_expressions.iter().all(|r| {
                let value = labels.get(&r.key);
                match r.operator {
                    Operator::In => value.is_some_and(|v| r.values.contains(v)),
                    Operator::NotIn => value.is_none_or(|v| !r.values.contains(v)),
                    Operator::Exists => value.is_some(),
                    Operator::DoesNotExist => value.is_none(),
                }
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    fn selector(ml: &[(&str, &str)], me: &[(&str, &str, &[&str])]) -> Result<LabelSelector, ConfigError> {
        LabelSelector::new(
            "sel",
            ml.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            me.iter()
                .map(|(k, o, vs)| (k.to_string(), o.to_string(), vs.iter().map(|v| v.to_string()).collect()))
                .collect(),
        )
    }

    #[test]
    fn matches_like_kubernetes() {
        let team_a = labels(&[("team", "a"), ("tier", "web")]);
        let none = labels(&[]);
        let cases: Vec<(LabelSelector, &HashMap<String, String>, bool)> = vec![
            (selector(&[], &[]).unwrap(), &none, true),
            (selector(&[("team", "a")], &[]).unwrap(), &team_a, true),
            (selector(&[("team", "b")], &[]).unwrap(), &team_a, false),
            (selector(&[], &[("team", "In", &["a", "b"])]).unwrap(), &team_a, true),
            (selector(&[], &[("team", "In", &["b"])]).unwrap(), &team_a, false),
            (selector(&[], &[("team", "NotIn", &["b"])]).unwrap(), &team_a, true),
            (selector(&[], &[("team", "NotIn", &["b"])]).unwrap(), &none, true),
            (selector(&[], &[("tier", "Exists", &[])]).unwrap(), &team_a, true),
            (selector(&[], &[("tier", "DoesNotExist", &[])]).unwrap(), &team_a, false),
            (selector(&[("team", "a")], &[("tier", "In", &["db"])]).unwrap(), &team_a, false),
        ];
        for (i, (sel, l, want)) in cases.iter().enumerate() {
            assert_eq!(sel.matches(l), *want, "case {i}");
        }
    }

    #[test]
    fn rejects_bad_selectors() {
        let cases: Vec<(Result<LabelSelector, ConfigError>, &str)> = vec![
            (selector(&[], &[("k", "Equals", &["a"])]), "unknown operator \"Equals\""),
            (selector(&[], &[("k", "In", &[])]), "needs at least one value"),
            (selector(&[], &[("k", "Exists", &["a"])]), "takes no values"),
            (selector(&[], &[("", "Exists", &[])]), "key must not be empty"),
            (selector(&[("", "v")], &[]), "empty label key"),
        ];
        for (result, want) in cases {
            let err = result.expect_err(want).to_string();
            assert!(err.contains(want), "{err}");
        }
    }
}
