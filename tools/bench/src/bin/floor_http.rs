//! `floor-http`: the CPU floor of a Lambda HTTP function. A `lambda_http`
//! handler on a current-thread Tokio runtime that answers every event
//! `200 {"retCode":"SUCCESS"}` without any I/O, logging or signature.
//! `lambda-bench` runs it with the same events as the function under test.

use lambda_http::{run, service_fn, Body, Error, Request, Response};

async fn answer(_request: Request) -> Result<Response<Body>, Error> {
    Ok(Response::builder()
        .status(200)
        .header("content-type", "application/json")
        .body(Body::from(&br#"{"retCode":"SUCCESS"}"#[..]))?)
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Error> {
    run(service_fn(answer)).await
}
