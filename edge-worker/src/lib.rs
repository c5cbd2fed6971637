//! PLACEHOLDER edge worker: a toolchain smoke test, to be replaced by the real
//! Clickstitch edge logic.
//!
//! * `fetch`: answers `302 Location: https://example.com/?c=<cf.country or "none">`.
//!   If the `PROBE_URL` var is set it first does an outbound `GET` to it and
//!   reports the upstream status in `x-probe-status` (proves outbound fetches
//!   to 127.0.0.1 work under workerd). If `CLICK_DELIVERY = "queue"` and a
//!   `CLICK_QUEUE` producer binding exists, it enqueues `{"country": ...}` and
//!   reports `x-queued: 1`.
//! * `queue`: for every message, POSTs its JSON body to `QUEUE_SINK_URL` (if
//!   set), then acks the batch (proves the producer/consumer round trip).

#[cfg(target_arch = "wasm32")]
mod wasm {
    use worker::{
        event, Context, Env, Fetch, Headers, MessageBatch, Method, Request, RequestInit, Response,
        Result,
    };

    #[derive(serde::Serialize)]
    struct QueuedProbe {
        country: String,
    }

    fn var(env: &Env, name: &str) -> Option<String> {
        env.var(name).ok().map(|v| v.to_string())
    }

    #[event(fetch)]
    async fn fetch(req: Request, env: Env, _ctx: Context) -> Result<Response> {
        let country = req
            .cf()
            .and_then(|cf| cf.country())
            .unwrap_or_else(|| "none".to_owned());

        let headers = Headers::new();
        headers.set("location", &format!("https://example.com/?c={country}"))?;

        if let Some(probe) = var(&env, "PROBE_URL") {
            let status = match Fetch::Request(Request::new(&probe, Method::Get)?)
                .send()
                .await
            {
                Ok(resp) => resp.status_code().to_string(),
                Err(e) => format!("error: {e}"),
            };
            headers.set("x-probe-status", &status)?;
        }

        if var(&env, "CLICK_DELIVERY").as_deref() == Some("queue") {
            if let Ok(queue) = env.queue("CLICK_QUEUE") {
                // A derived struct, not `serde_json::json!`: worker's queue `send` goes
                // through serde_wasm_bindgen, which turns JSON maps into JS `Map`s that
                // arrive at the consumer as `{}`.
                queue.send(QueuedProbe { country }).await?;
                headers.set("x-queued", "1")?;
            }
        }

        Ok(Response::empty()?.with_status(302).with_headers(headers))
    }

    #[event(queue)]
    async fn queue(batch: MessageBatch<serde_json::Value>, env: Env, _ctx: Context) -> Result<()> {
        let sink = var(&env, "QUEUE_SINK_URL");
        for message in batch.messages()? {
            if let Some(sink) = &sink {
                let mut init = RequestInit::new();
                init.with_method(Method::Post)
                    .with_body(Some(message.body().to_string().into()));
                Fetch::Request(Request::new_with_init(sink, &init)?)
                    .send()
                    .await?;
            }
        }
        batch.ack_all();
        Ok(())
    }
}
