//! [`LocalBackend`]: OpenAI-shaped answers from the in-process model.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use candle_core::quantized::gguf_file;
use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

use sluicegate_wire::{unix_now, ChatRequest, Message, Tool};
use sluicegate_wire::{BackendError, ChatBackend, Health};

use crate::engine::{Engine, EngineConfig, Event, Job, SamplingParams, SubmitError};
use crate::grammar::Constraint;
use crate::params::{self, invalid};
use crate::template::ChatTemplate;
use crate::tokenizer::GgufTokenizer;
use crate::tools::{self, Mode};
use crate::{ContextOverflow, Defaults, LocalError, LocalOptions};

mod chat;

/// A GGUF chat model answering in this process. See the [crate docs](crate).
#[derive(Debug)]
pub struct LocalBackend {
    opts: LocalOptions,
    /// Sampling for fields the request leaves out, and its output cap when it sets none:
    /// the policy's `defaults`, else the GGUF's recommendation, else built-in values.
    sampling: SamplingParams,
    max_tokens: u32,
    prompter: Prompter,
    engine: Engine,
    context: usize,
    ids: AtomicU64,
}

/// Renders conversations into prompt tokens; cheap to clone.
#[derive(Debug, Clone)]
struct Prompter {
    tokenizer: Arc<GgufTokenizer>,
    template: Arc<ChatTemplate>,
    system_prompt: Option<String>,
    /// How the template teaches the model to call tools (`None`: it renders no tools).
    tools: Option<tools::Format>,
}

impl Prompter {
    fn encode(
        &self,
        messages: &[Message],
        tools: Option<&[Tool]>,
    ) -> Result<Vec<u32>, BackendError> {
        let tools = tools.and_then(|t| serde_json::to_value(t).ok());
        let text = self
            .template
            .render(messages, self.system_prompt.as_deref(), tools.as_ref())
            .map_err(|e| invalid("messages", e.to_string()))?;
        self.tokenizer
            .encode(&text)
            .map_err(|e| invalid("messages", e.to_string()))
    }
}

/// A request turned into a job's inputs.
#[derive(Debug, Clone, PartialEq)]
pub struct Prepared {
    pub prompt: Vec<u32>,
    pub sampling: SamplingParams,
    pub max_tokens: usize,
    pub stop: Vec<String>,
}

impl LocalBackend {
    /// Reads the tokenizer and chat template from `opts.gguf` and starts the model thread,
    /// which loads the weights and warms up in the background (`check_available` says
    /// "loading" until then). Fails at once when the file is missing or unusable.
    ///
    /// The model runs on a pool of `opts.threads` threads of its own. candle's CPU thread pool
    /// (used only for weights in float formats) is process-wide and sized once, from
    /// `CANDLE_NUM_THREADS`: unless that variable is already set, it is set here to the first
    /// backend's `opts.threads`.
    pub fn new(opts: LocalOptions) -> Result<Self, LocalError> {
        if !opts.gguf.is_file() {
            return Err(LocalError::Model(format!(
                "model file {} not found: run scripts/fetch-models",
                opts.gguf.display()
            )));
        }
        if std::env::var_os("CANDLE_NUM_THREADS").is_none() {
            std::env::set_var("CANDLE_NUM_THREADS", opts.threads.max(1).to_string());
        }
        let mut file = std::fs::File::open(&opts.gguf)
            .map_err(|e| LocalError::Model(format!("{}: {e}", opts.gguf.display())))?;
        let ct = gguf_file::Content::read(&mut file)
            .map_err(|e| LocalError::Model(format!("{}: {e}", opts.gguf.display())))?;
        let tokenizer = Arc::new(GgufTokenizer::from_gguf(&ct)?);
        let source = ct
            .metadata
            .get("tokenizer.chat_template")
            .and_then(|v| v.to_string().ok());
        let tool_format = source.and_then(|s| tools::Format::detect(s));
        let template = Arc::new(ChatTemplate::new(
            source.map(String::as_str),
            tokenizer.bos_token.as_deref(),
            tokenizer.eos_token.as_deref(),
        )?);
        let model_context = crate::model::Config::from_gguf(&ct)?.context;
        let defaults = opts.defaults.clone().or(Defaults::from_gguf(&ct));
        let context = opts.context.unwrap_or(model_context).min(model_context);
        drop(ct);
        let engine = Engine::start(
            &opts.gguf,
            Arc::clone(&tokenizer),
            EngineConfig {
                max_batch: opts.max_batch,
                queue: opts.queue,
                format: opts.weights,
                context,
                threads: opts.threads.max(1),
            },
        )?;
        let prompter = Prompter {
            tokenizer,
            template,
            system_prompt: opts.system_prompt.clone(),
            tools: tool_format,
        };
        Ok(LocalBackend {
            sampling: defaults.sampling(),
            max_tokens: defaults.max_tokens(),
            opts,
            prompter,
            engine,
            context,
            ids: AtomicU64::new(0),
        })
    }

    pub fn health(&self) -> Health {
        self.engine.health()
    }

    /// Threads of the model's own pool, once it is loaded.
    pub fn threads(&self) -> Option<usize> {
        self.engine.threads()
    }

    /// Blocks until the model is loaded and warm, or fails to load, or `timeout` passes.
    pub fn wait_ready(&self, timeout: Duration) -> Result<(), LocalError> {
        let until = Instant::now() + timeout;
        loop {
            match self.health() {
                Health::Ready => return Ok(()),
                Health::Failed(e) => return Err(LocalError::Model(e)),
                Health::Loading if Instant::now() >= until => {
                    return Err(LocalError::Model("model still loading".into()))
                }
                Health::Loading => std::thread::sleep(Duration::from_millis(20)),
            }
        }
    }

    pub fn tokenizer(&self) -> &GgufTokenizer {
        &self.prompter.tokenizer
    }

    pub fn context(&self) -> usize {
        self.context
    }

    /// Validates the request, renders the chat template and tokenizes the prompt.
    pub fn prepare(&self, request: &ChatRequest) -> Result<Prepared, BackendError> {
        let (sampling, max, stop) = params::settings(request, &self.sampling, &self.ids)?;
        let tools = self.tools_for(request)?.1;
        let prompt = self.prompter.encode(&request.messages, tools.as_deref())?;
        self.fit(prompt, sampling, max, stop)
    }

    /// Checks the prompt against the context and caps the output to the room left.
    fn fit(
        &self,
        prompt: Vec<u32>,
        sampling: SamplingParams,
        max: Option<u32>,
        stop: Vec<String>,
    ) -> Result<Prepared, BackendError> {
        if prompt.len() >= self.context {
            let e = LocalError::ContextExceeded {
                tokens: prompt.len(),
                context: self.context,
            };
            return Err(match self.opts.on_context_overflow {
                ContextOverflow::Reject => BackendError::Upstream {
                    status: 400,
                    retry_after: None,
                    message: format!("{e}; shorten the messages"),
                    code: Some("context_length_exceeded".into()),
                },
                ContextOverflow::Fallback => BackendError::Unavailable(e.to_string()),
            });
        }
        let room = self.context - prompt.len();
        // A request without `max_tokens` gets the backend's cap; one that asks may have up
        // to what the context leaves.
        let max_tokens = (max.unwrap_or(self.max_tokens) as usize).min(room);
        Ok(Prepared {
            prompt,
            sampling,
            max_tokens,
            stop,
        })
    }

    /// The request's tool mode, and the tools to render (none unless the model may call them).
    fn tools_for(&self, request: &ChatRequest) -> Result<(Mode, Option<Vec<Tool>>), BackendError> {
        let mode = tools::mode(
            request.tools.as_deref(),
            request.tool_choice.as_ref(),
            self.prompter.tools,
        )?;
        let rendered = match mode {
            Mode::Off => None,
            _ => request.tools.clone(),
        };
        Ok((mode, rendered))
    }

    /// Prepares the request off the async runtime and queues it.
    async fn start(
        &self,
        request: &ChatRequest,
    ) -> Result<(UnboundedReceiver<Event>, Mode), BackendError> {
        self.check_available()?;
        let (sampling, max, stop) = params::settings(request, &self.sampling, &self.ids)?;
        let (mode, tools) = self.tools_for(request)?;
        let prompter = self.prompter.clone();
        let messages = request.messages.clone();
        // Rendering and tokenizing a long prompt takes milliseconds: not on the runtime.
        let prompt =
            tokio::task::spawn_blocking(move || prompter.encode(&messages, tools.as_deref()))
                .await
                .map_err(|e| failed(format!("prompt preparation failed: {e}")))??;
        let prepared = self.fit(prompt, sampling, max, stop)?;
        if let Some(limit) = self.opts.max_wait {
            let wait = self.engine.estimated_wait();
            if wait > limit {
                return Err(BackendError::Upstream {
                    status: 429,
                    retry_after: Some((wait.as_secs_f64().ceil() as u64).max(1).to_string()),
                    message: format!(
                        "the local model is busy: the estimated wait for a slot ({} ms) is \
                         over this backend's max_wait_ms ({})",
                        wait.as_millis(),
                        limit.as_millis()
                    ),
                    code: Some("local_wait_exceeded".into()),
                });
            }
        }
        let constraint = mode
            .grammar(request.tools.as_deref().unwrap_or_default())
            .map(|g| Constraint::new(Arc::new(g), self.prompter.tokenizer.pieces.clone()));
        let (events, rx) = unbounded_channel();
        let job = Job {
            prompt: prepared.prompt,
            sampling: prepared.sampling,
            max_tokens: prepared.max_tokens,
            stop: prepared.stop,
            constraint,
            events,
        };
        match self.engine.submit(job) {
            Ok(()) => Ok((rx, mode)),
            Err(SubmitError::QueueFull) => Err(BackendError::Upstream {
                status: 429,
                retry_after: Some("1".into()),
                message: format!(
                    "the local model is busy ({} requests queued)",
                    self.opts.queue
                ),
                code: Some("local_queue_full".into()),
            }),
            Err(SubmitError::Stopped) => Err(BackendError::Unavailable(
                "the local model thread has stopped".into(),
            )),
        }
    }

    fn next_id(&self) -> String {
        let n = self.ids.fetch_add(1, Ordering::Relaxed);
        format!("chatcmpl-local-{:x}{n:04x}", unix_now())
    }
}

fn failed(message: String) -> BackendError {
    BackendError::Upstream {
        status: 500,
        retry_after: None,
        message,
        code: None,
    }
}
