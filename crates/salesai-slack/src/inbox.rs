//! Group commit for `/slack/events`. Every file event must be in the database before Slack
//! hears "200" (a crash after the answer would lose it, and Slack does not resend what it was
//! told arrived), so each event costs a write transaction — on SQLite one writer for the whole
//! node, shared with the workers. At hundreds of events a second those transactions queue.
//! The inbox takes every event that arrived while the previous transaction was committing in
//! the next one: one transaction for a burst, each request answered when its own delivery is
//! durable. A batch that fails (one bad delivery) is taken again one delivery at a time, so
//! one event cannot refuse the others.

use std::sync::Arc;

use salesai_core::store::{DeliveryTaken, SlackDelivery, Store};
use tokio::sync::{mpsc, oneshot};

/// The most deliveries one transaction takes.
const BATCH: usize = 256;
/// Events waiting beyond this are refused with 503 (Slack retries them) rather than queued
/// in memory without bound.
const WAITING: usize = 8192;

type Reply = oneshot::Sender<Result<DeliveryTaken, String>>;

/// The handle requests take their deliveries through.
#[derive(Clone)]
pub(crate) struct Inbox {
    tx: mpsc::Sender<(SlackDelivery, Reply)>,
}

impl Inbox {
    /// Starts the inbox's writer on the current runtime.
    pub(crate) fn start(store: Arc<dyn Store>) -> Inbox {
        let (tx, mut rx) = mpsc::channel::<(SlackDelivery, Reply)>(WAITING);
        tokio::spawn(async move {
            let mut batch = Vec::with_capacity(BATCH);
            while rx.recv_many(&mut batch, BATCH).await > 0 {
                let (deliveries, replies): (Vec<SlackDelivery>, Vec<Reply>) =
                    batch.drain(..).unzip();
                match store.take_deliveries(&deliveries).await {
                    Ok(taken) => {
                        for (reply, taken) in replies.into_iter().zip(taken) {
                            let _ = reply.send(Ok(taken));
                        }
                    }
                    Err(_) if deliveries.len() > 1 => {
                        for (delivery, reply) in deliveries.into_iter().zip(replies) {
                            let one = store
                                .take_deliveries(std::slice::from_ref(&delivery))
                                .await
                                .map_err(|e| e.to_string())
                                .and_then(|t| {
                                    t.into_iter()
                                        .next()
                                        .ok_or_else(|| "nothing recorded".to_owned())
                                });
                            let _ = reply.send(one);
                        }
                    }
                    Err(err) => {
                        let message = err.to_string();
                        for reply in replies {
                            let _ = reply.send(Err(message.clone()));
                        }
                    }
                }
            }
        });
        Inbox { tx }
    }

    /// Takes one delivery, answering once it is committed.
    pub(crate) async fn take(&self, delivery: SlackDelivery) -> Result<DeliveryTaken, String> {
        let (reply, answer) = oneshot::channel();
        self.tx
            .try_send((delivery, reply))
            .map_err(|_| "too many Slack events are waiting to be recorded".to_owned())?;
        answer
            .await
            .map_err(|_| "the Slack inbox stopped".to_owned())?
    }
}
