//! Strict query-string parsing: an unknown, repeated or malformed
//! parameter is a 400 naming it, never silently ignored.

use std::collections::BTreeMap;

use super::error::ApiError;
use crate::driver::Consistency;

/// The query parameters of one request, checked against what its endpoint
/// accepts.
#[derive(Debug, Default)]
pub struct Params(BTreeMap<String, String>);

impl Params {
    /// Parses `query` (the raw query string) allowing only `allowed` names.
    pub fn parse(query: Option<&str>, allowed: &[&str]) -> Result<Self, ApiError> {
        let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or(""))
            .map_err(|e| {
                ApiError::bad_request("bad_query", format!("malformed query string: {e}"))
            })?;
        let mut params = BTreeMap::new();
        for (name, value) in pairs {
            if !allowed.contains(&name.as_str()) {
                let allowed = if allowed.is_empty() {
                    "none".to_owned()
                } else {
                    allowed.join(", ")
                };
                return Err(ApiError::bad_request(
                    "unknown_parameter",
                    format!("unknown query parameter '{name}' (accepted: {allowed})"),
                ));
            }
            if params.insert(name.clone(), value).is_some() {
                return Err(ApiError::bad_request(
                    "bad_query",
                    format!("query parameter '{name}' is given twice"),
                ));
            }
        }
        Ok(Self(params))
    }

    /// The parameter's text, if given.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.0.get(name).map(String::as_str)
    }

    /// The parameter as an unsigned number, if given.
    pub fn number(&self, name: &str) -> Result<Option<u64>, ApiError> {
        self.text(name)
            .map(|text| {
                text.parse::<u64>().map_err(|_| {
                    ApiError::bad_request(
                        "bad_query",
                        format!(
                            "query parameter '{name}' must be a non-negative integer, not '{text}'"
                        ),
                    )
                })
            })
            .transpose()
    }

    /// A yes/no parameter: `true`, `false`, or absent (false).
    pub fn flag(&self, name: &str) -> Result<bool, ApiError> {
        match self.text(name) {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(other) => Err(ApiError::bad_request(
                "bad_query",
                format!("query parameter '{name}' must be 'true' or 'false', not '{other}'"),
            )),
        }
    }

    /// The `consistency` parameter (default linearizable).
    pub fn consistency(&self) -> Result<Consistency, ApiError> {
        match self.text("consistency") {
            None | Some("linearizable") => Ok(Consistency::Linearizable),
            Some("serializable") => Ok(Consistency::Serializable),
            Some(other) => Err(ApiError::bad_request(
                "bad_query",
                format!("consistency must be 'linearizable' or 'serializable', not '{other}'"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_and_repeated_parameters_are_refused() {
        assert!(Params::parse(Some("prefix=a&limit=3"), &["prefix", "limit"]).is_ok());
        let unknown = Params::parse(Some("prefx=a"), &["prefix"]).unwrap_err();
        assert_eq!(unknown.code, "unknown_parameter");
        assert!(unknown.message.contains("prefx"), "{}", unknown.message);
        let twice = Params::parse(Some("limit=1&limit=2"), &["limit"]).unwrap_err();
        assert!(twice.message.contains("twice"));
    }

    #[test]
    fn numbers_and_consistency_are_checked() {
        let params = Params::parse(
            Some("limit=x&consistency=eventual"),
            &["limit", "consistency"],
        )
        .unwrap();
        assert!(params.number("limit").is_err());
        assert!(params.consistency().is_err());
        let params = Params::parse(Some("consistency=serializable"), &["consistency"]).unwrap();
        assert_eq!(params.consistency().unwrap(), Consistency::Serializable);
    }
}
