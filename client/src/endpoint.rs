//! Endpoints: parsing and checking the URLs a [`Client`](crate::Client) is
//! given, and showing them in messages.

use reqwest::Url;

use crate::error::ClientError;

/// Parses and checks one endpoint: an http:// or https:// URL with a host
/// and no query or fragment. The one URL parser of the project: the node
/// checks member URLs and `raftcfg-tools bench` its endpoints with it.
pub fn parse_endpoint(endpoint: &str) -> Result<Url, ClientError> {
    let invalid = |reason: String| ClientError::InvalidEndpoint {
        endpoint: endpoint.to_owned(),
        reason,
    };
    let trimmed = endpoint.trim();
    if !trimmed.contains("://") {
        return Err(invalid(format!(
            "http:// or https:// is missing: use http://{trimmed}"
        )));
    }
    let url = Url::parse(trimmed).map_err(|e| invalid(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(format!(
            "the scheme is {:?}; use http:// or https://",
            url.scheme()
        )));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid("there is no host".to_owned()));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(
            "an endpoint may not have a query or fragment".to_owned(),
        ));
    }
    Ok(url)
}

/// An endpoint as people read it: without the trailing slash Url adds.
pub fn show(url: &Url) -> String {
    url.as_str().trim_end_matches('/').to_owned()
}
