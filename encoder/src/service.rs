//! The encoder service: one OS thread owns the [`Encoder`]; callers reach it over a bounded
//! channel with a oneshot reply, and it batches whatever is waiting (dynamic batching).
//!
//! The worker blocks for a first job, then keeps collecting until `max_batch` texts are queued
//! or `max_wait` has passed since that first job, embeds them in one forward pass (packed, no
//! padding), and answers each caller. A full queue is [`ClassifyError::Overloaded`] at once,
//! never a stall; a caller that gave up (timeout) is skipped before its text is embedded.
//!
//! Thread budget: candle's matmuls (gemm) run on the *current* rayon pool, so the worker runs
//! every forward pass inside a dedicated rayon pool of `threads` threads (default
//! `min(2, available cores)`, `SLUICEGATE_CLASSIFIER_THREADS` overrides). That keeps the encoder
//! off the async runtime and off any other rayon user (the local model) and caps its cores.

use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::{oneshot, watch};

use crate::{Classifier, ClassifyError, Encoder, Health, Scorer, Verdict};

/// Tuning of the service.
#[derive(Debug, Clone)]
pub struct ServiceOptions {
    /// Most texts embedded in one forward pass.
    pub max_batch: usize,
    /// How long the worker waits for more jobs after the first one. Zero (the default) takes
    /// only what is already queued: under load, jobs queue up during the previous forward pass
    /// and batch by themselves, and a lone request never waits.
    pub max_wait: Duration,
    /// Jobs that may wait in the queue; beyond this callers get `Overloaded`.
    pub queue: usize,
    /// Per-call deadline, queueing included.
    pub timeout: Duration,
    /// Rayon threads for candle's kernels.
    pub threads: usize,
}

impl Default for ServiceOptions {
    fn default() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, usize::from);
        let threads = std::env::var("SLUICEGATE_CLASSIFIER_THREADS")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|n| *n > 0)
            .unwrap_or(cores.min(2));
        Self {
            max_batch: 32,
            max_wait: Duration::ZERO,
            queue: 256,
            timeout: Duration::from_millis(500),
            threads,
        }
    }
}

type Reply = oneshot::Sender<Result<Vec<Vec<f32>>, ClassifyError>>;

struct Job {
    texts: Vec<String>,
    reply: Reply,
}

/// Builds the scorer once the encoder is loaded (e.g. embeds the policy's class examples).
pub type Setup = Box<dyn FnOnce(&Encoder) -> Result<Arc<dyn Scorer>, ClassifyError> + Send>;

/// A cheap, cloneable handle to the encoder thread. Implements [`Classifier`].
#[derive(Debug, Clone)]
pub struct EncoderHandle {
    jobs: SyncSender<Job>,
    health: watch::Receiver<Health>,
    scorer: Arc<OnceLock<Arc<dyn Scorer>>>,
    timeout: Duration,
}

impl EncoderHandle {
    /// Starts the encoder thread and returns at once; health is `Loading` until the model is
    /// loaded and `setup` has run, then `Ready` (or `Failed`).
    pub fn start(dir: PathBuf, options: ServiceOptions, setup: Setup) -> Self {
        let (tx, rx) = mpsc::sync_channel(options.queue.max(1));
        let (health_tx, health_rx) = watch::channel(Health::Loading);
        let scorer = Arc::new(OnceLock::new());
        let slot = scorer.clone();
        let timeout = options.timeout;
        let spawned = std::thread::Builder::new()
            .name("sluicegate-encoder".into())
            .spawn(move || {
                let reason = match init(&dir, &options, setup, &slot) {
                    Ok((encoder, pool)) => {
                        let _ = health_tx.send(Health::Ready);
                        tracing::info!(dir = %dir.display(), "classifier ready");
                        worker(&encoder, &pool, &options, &rx);
                        "encoder thread stopped".to_owned()
                    }
                    Err(e) => e.to_string(),
                };
                tracing::error!(%reason, "classifier unavailable");
                let _ = health_tx.send(Health::Failed(reason));
            });
        if let Err(e) = spawned {
            tracing::error!(error = %e, "cannot spawn the encoder thread");
        }
        Self {
            jobs: tx,
            health: health_rx,
            scorer,
            timeout,
        }
    }

    /// A receiver that sees every health change.
    pub fn watch_health(&self) -> watch::Receiver<Health> {
        self.health.clone()
    }

    /// The scorer, once the service is ready.
    pub fn scorer(&self) -> Option<&Arc<dyn Scorer>> {
        self.scorer.get()
    }

    fn check_ready(&self) -> Result<(), ClassifyError> {
        match &*self.health.borrow() {
            Health::Ready => Ok(()),
            Health::Loading => Err(ClassifyError::Loading),
            Health::Failed(why) => Err(ClassifyError::Failed(why.clone())),
        }
    }
}

fn init(
    dir: &std::path::Path,
    options: &ServiceOptions,
    setup: Setup,
    slot: &OnceLock<Arc<dyn Scorer>>,
) -> Result<(Encoder, rayon::ThreadPool), ClassifyError> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(options.threads.max(1))
        .thread_name(|i| format!("sluicegate-encoder-{i}"))
        .build()
        .map_err(|e| ClassifyError::Model(e.to_string()))?;
    let encoder = Encoder::load(dir)?;
    let scorer = pool.install(|| setup(&encoder))?;
    let _ = slot.set(scorer);
    Ok((encoder, pool))
}

fn worker(
    encoder: &Encoder,
    pool: &rayon::ThreadPool,
    options: &ServiceOptions,
    rx: &Receiver<Job>,
) {
    while let Ok(first) = rx.recv() {
        let deadline = Instant::now() + options.max_wait;
        let mut batch = vec![first];
        let mut texts: usize = batch[0].texts.len();
        while texts < options.max_batch {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(job) => {
                    texts += job.texts.len();
                    batch.push(job);
                }
                Err(RecvTimeoutError::Timeout) => break,
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        // Callers that already gave up are not worth a forward pass.
        batch.retain(|job| !job.reply.is_closed());
        if batch.is_empty() {
            continue;
        }
        let all: Vec<&str> = batch
            .iter()
            .flat_map(|j| j.texts.iter().map(String::as_str))
            .collect();
        let result = pool.install(|| embed_chunked(encoder, &all, options.max_batch));
        match result {
            Ok(vectors) => {
                let mut vectors = vectors.into_iter();
                for job in batch {
                    let mine: Vec<Vec<f32>> = vectors.by_ref().take(job.texts.len()).collect();
                    let _ = job.reply.send(Ok(mine));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "encoder batch failed");
                for job in batch {
                    let _ = job.reply.send(Err(e.clone()));
                }
            }
        }
    }
}

/// Embeds `texts` in chunks of `max_batch`, each sorted by length so padding stays small.
pub fn embed_chunked(
    encoder: &Encoder,
    texts: &[&str],
    max_batch: usize,
) -> Result<Vec<Vec<f32>>, ClassifyError> {
    let ids = texts
        .iter()
        .map(|t| encoder.token_ids(t))
        .collect::<Result<Vec<_>, _>>()?;
    let mut order: Vec<usize> = (0..ids.len()).collect();
    order.sort_by_key(|&i| ids[i].len());
    let mut out = vec![Vec::new(); ids.len()];
    for chunk in order.chunks(max_batch.max(1)) {
        let batch: Vec<Vec<u32>> = chunk.iter().map(|&i| ids[i].clone()).collect();
        for (&i, v) in chunk.iter().zip(encoder.embed_ids(&batch)?) {
            out[i] = v;
        }
    }
    Ok(out)
}

#[async_trait]
impl Classifier for EncoderHandle {
    async fn embed(&self, texts: Vec<String>) -> Result<Vec<Vec<f32>>, ClassifyError> {
        self.check_ready()?;
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let (reply, answer) = oneshot::channel();
        self.jobs
            .try_send(Job { texts, reply })
            .map_err(|e| match e {
                TrySendError::Full(_) => ClassifyError::Overloaded,
                TrySendError::Disconnected(_) => ClassifyError::Closed,
            })?;
        let millis = u64::try_from(self.timeout.as_millis()).unwrap_or(u64::MAX);
        match tokio::time::timeout(self.timeout, answer).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(ClassifyError::Closed),
            Err(_) => Err(ClassifyError::Timeout(millis)),
        }
    }

    async fn classify(&self, text: String) -> Result<Verdict, ClassifyError> {
        let started = Instant::now();
        let mut vectors = self.embed(vec![text]).await?;
        let embedding = vectors.pop().ok_or(ClassifyError::Closed)?;
        let scorer = self.scorer.get().ok_or(ClassifyError::Loading)?;
        let mut verdict = scorer
            .verdict(&embedding)
            .ok_or_else(|| ClassifyError::Failed("the classifier has no classes".into()))?;
        verdict.millis = started.elapsed().as_secs_f64() * 1000.0;
        Ok(verdict)
    }

    fn health(&self) -> Health {
        self.health.borrow().clone()
    }
}
