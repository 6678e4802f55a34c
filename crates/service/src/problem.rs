//! RFC 9457 problem responses.

use bytes::Bytes;
use http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use http::{Response, StatusCode};
use http_body_util::Full;
use medgate_proto::wire::{MEDIA_PROBLEM, Problem};

/// A `application/problem+json` response. The body is built from our own types only, so it
/// never echoes request content.
pub fn response(problem: &Problem) -> Response<Full<Bytes>> {
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::to_vec(problem).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(MEDIA_PROBLEM));
    response
        .headers_mut()
        .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// A JSON response with `Cache-Control: no-store` (tokens and admin data are never cached).
pub fn json<T: serde::Serialize>(status: StatusCode, value: &T) -> Response<Full<Bytes>> {
    match serde_json::to_vec(value) {
        Ok(body) => {
            let mut response = Response::new(Full::new(Bytes::from(body)));
            *response.status_mut() = status;
            response
                .headers_mut()
                .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
            response
                .headers_mut()
                .insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
            response
        }
        Err(_) => response(&Problem::new(
            medgate_proto::wire::problem_type::INTERNAL,
            "Internal error",
            500,
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    #[tokio::test]
    async fn problems_are_problem_json_with_their_status() {
        let problem = Problem::new("urn:x", "Nope", 429).with_detail("slow down");
        let response = response(&problem);
        assert_eq!(response.status(), StatusCode::TOO_MANY_REQUESTS);
        assert_eq!(response.headers()[CONTENT_TYPE], MEDIA_PROBLEM);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let parsed: Problem = serde_json::from_slice(&body).unwrap();
        assert_eq!(parsed, problem);
    }
}
