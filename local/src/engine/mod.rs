//! The scheduler: one thread owns the model and runs continuous batching. Jobs wait in a
//! bounded queue; up to `max_batch` sequences are active at once, and every step runs one
//! decode token of each active sequence plus a chunk of at most one prompt being read, in a
//! single forward pass. A job whose receiver is gone is dropped before the next step.

use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{self, Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rayon::prelude::*;
use sluicegate_wire::Health;

mod job;
mod load;
pub mod sampler;
mod seq;
pub mod stop;

pub use job::{Event, Finish, Job};
use load::{estimated_wait, Load};
pub use sampler::SamplingParams;
use seq::{admit, sample, Seq};

use crate::model::{Llama, Step, WeightFormat};
use crate::tokenizer::GgufTokenizer;
use crate::LocalError;

/// Prompt tokens read per step; bounds how long a new prompt stalls running streams.
const PREFILL_CHUNK: usize = 256;

/// Why a job was not queued.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubmitError {
    QueueFull,
    Stopped,
}

/// The handle to the model thread. Dropping it lets the thread finish its work and exit.
#[derive(Debug)]
pub struct Engine {
    queue: SyncSender<Job>,
    health: Arc<Mutex<Health>>,
    load: Arc<Load>,
    max_batch: usize,
}

/// Scheduler settings.
#[derive(Debug, Clone, Copy)]
pub struct EngineConfig {
    pub max_batch: usize,
    pub queue: usize,
    pub format: WeightFormat,
    /// Context window (capped at the model's own).
    pub context: usize,
    /// Threads of this model's own pool.
    pub threads: usize,
}

impl Engine {
    /// Starts the model thread; it loads the weights, runs a warm-up pass, then serves.
    pub fn start(
        path: &Path,
        tokenizer: Arc<GgufTokenizer>,
        cfg: EngineConfig,
    ) -> Result<Self, LocalError> {
        let (queue, jobs) = mpsc::sync_channel(cfg.queue.max(1));
        let health = Arc::new(Mutex::new(Health::Loading));
        let state = Arc::clone(&health);
        let load = Arc::new(Load::default());
        let counters = Arc::clone(&load);
        let path = path.to_owned();
        std::thread::Builder::new()
            .name("sluicegate-local".into())
            .spawn(move || {
                let set = |h: Health| {
                    if let Ok(mut g) = state.lock() {
                        *g = h;
                    }
                };
                match load_and_warm(&path, cfg) {
                    Ok(model) => {
                        counters.threads.store(model.threads(), Ordering::Relaxed);
                        set(Health::Ready);
                        serve(&model, &tokenizer, jobs, cfg.max_batch.max(1), &counters);
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "local model failed to load");
                        set(Health::Failed(e.to_string()));
                        // Answer whatever was queued meanwhile.
                        for job in jobs {
                            let _ = job.events.send(Event::Failed(e.to_string()));
                        }
                    }
                }
            })
            .map_err(|e| LocalError::Model(format!("cannot start the model thread: {e}")))?;
        Ok(Engine {
            queue,
            health,
            load,
            max_batch: cfg.max_batch.max(1),
        })
    }

    /// Threads of the loaded model's pool (`None` until it is loaded).
    pub fn threads(&self) -> Option<usize> {
        Some(self.load.threads.load(Ordering::Relaxed)).filter(|n| *n > 0)
    }

    pub fn health(&self) -> Health {
        self.health
            .lock()
            .map(|h| h.clone())
            .unwrap_or_else(|_| Health::Failed("model thread panicked".into()))
    }

    /// Queues a job without waiting.
    pub fn submit(&self, job: Job) -> Result<(), SubmitError> {
        self.load.waiting.fetch_add(1, Ordering::Relaxed);
        self.queue.try_send(job).map_err(|e| {
            self.load.waiting.fetch_sub(1, Ordering::Relaxed);
            match e {
                TrySendError::Full(_) => SubmitError::QueueFull,
                TrySendError::Disconnected(_) => SubmitError::Stopped,
            }
        })
    }

    /// How long a job submitted now would wait for a slot ([`estimated_wait`]); zero until
    /// a sequence has finished.
    pub fn estimated_wait(&self) -> Duration {
        let l = &self.load;
        estimated_wait(
            l.waiting.load(Ordering::Relaxed),
            l.active.load(Ordering::Relaxed),
            self.max_batch,
            Duration::from_micros(l.mean_us.load(Ordering::Relaxed)),
        )
    }
}

/// Loads the model for `cfg.context` (which picks Phi-3's LongRoPE factors) and warms it up.
fn load_and_warm(path: &Path, cfg: EngineConfig) -> Result<Llama, LocalError> {
    let started = Instant::now();
    let mut file = std::fs::File::open(path)
        .map_err(|e| LocalError::Model(format!("cannot open {}: {e}", path.display())))?;
    let ct = candle_core::quantized::gguf_file::Content::read(&mut file)?;
    let model = Llama::load_for_context(&ct, &mut file, cfg.format, cfg.threads, cfg.context)?;
    drop(ct);
    let mut cache = model.new_cache();
    model.forward(&mut [Step {
        cache: &mut cache,
        tokens: &[1, 2, 3, 4],
    }])?;
    tracing::info!(
        model = %path.display(),
        ms = started.elapsed().as_millis() as u64,
        "local model loaded and warmed up"
    );
    Ok(model)
}

fn serve(model: &Llama, tok: &GgufTokenizer, jobs: Receiver<Job>, max_batch: usize, load: &Load) {
    let context = model.cfg.context;
    let mut active: Vec<Seq> = Vec::new();
    loop {
        let take = |job: Job| {
            load.waiting.fetch_sub(1, Ordering::Relaxed);
            admit(model, job)
        };
        if active.is_empty() {
            match jobs.recv() {
                Ok(job) => active.extend(take(job)),
                Err(_) => return,
            }
        }
        while active.len() < max_batch {
            match jobs.try_recv() {
                Ok(job) => active.extend(take(job)),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) if active.is_empty() => return,
                Err(TryRecvError::Disconnected) => break,
            }
        }
        active.retain(|s| !s.job.events.is_closed());
        load.active.store(active.len(), Ordering::Relaxed);
        if active.is_empty() {
            continue;
        }
        // Which sequences run this step, and how many prompt tokens each reads.
        let mut budget = PREFILL_CHUNK;
        let mut planned: Vec<usize> = Vec::with_capacity(active.len());
        let mut steps: Vec<Step<'_>> = Vec::with_capacity(active.len());
        for (i, s) in active.iter_mut().enumerate() {
            let tokens = if s.prefilling() {
                if budget == 0 {
                    continue;
                }
                let n = (s.job.prompt.len() - s.fed).min(budget);
                budget -= n;
                &s.job.prompt[s.fed..s.fed + n]
            } else {
                &s.tokens[s.tokens.len() - 1..]
            };
            planned.push(i);
            steps.push(Step {
                cache: &mut s.cache,
                tokens,
            });
        }
        let fed: Vec<usize> = steps.iter().map(|s| s.tokens.len()).collect();
        let step_started = Instant::now();
        let result = model.logits(&mut steps);
        drop(steps);
        let step_time = step_started.elapsed();
        let total_fed: usize = fed.iter().sum();
        for (&i, &n) in planned.iter().zip(&fed) {
            active[i].compute += step_time.mul_f64(n as f64 / total_fed.max(1) as f64);
        }
        // Per sequence: `Some(last events)` once it is over.
        let mut ended: Vec<Option<Vec<Event>>> = vec![None; active.len()];
        match result {
            Err(e) => {
                for &i in &planned {
                    ended[i] = Some(vec![Event::Failed(e.to_string())]);
                }
            }
            Ok(mut logits) => {
                // Sequences whose prompt is now read sample a token; several in parallel on
                // the model's threads (a sampler takes tens of microseconds).
                let mut sampling: Vec<(usize, &mut [f32], &mut Seq)> = Vec::new();
                let vocab = logits.len() / planned.len().max(1);
                let rows = logits.chunks_exact_mut(vocab.max(1));
                // `planned` is in increasing order of `active`'s indices.
                let mut by_index = active.iter_mut().enumerate();
                for (row, (&i, &n)) in rows.zip(planned.iter().zip(&fed)) {
                    let Some((_, s)) = by_index.find(|(j, _)| *j == i) else {
                        break;
                    };
                    if s.prefilling() {
                        s.fed += n;
                    }
                    if !s.prefilling() {
                        sampling.push((i, row, s));
                    }
                }
                let tokens: Vec<(usize, u32)> = if sampling.len() > 1 {
                    model.install(|| sampling.par_iter_mut().map(sample).collect())
                } else {
                    sampling.iter_mut().map(sample).collect()
                };
                drop(sampling);
                for (i, token) in tokens {
                    ended[i] = active[i].accept(token, tok, context);
                }
            }
        }
        let mut ended = ended.into_iter();
        active.retain(|s| {
            let Some(Some(last)) = ended.next() else {
                return true;
            };
            // The slot is counted free before the client hears the end.
            load.finished(s.admitted.elapsed());
            load.active.fetch_sub(1, Ordering::Relaxed);
            for event in last {
                s.send(event);
            }
            false
        });
    }
}
